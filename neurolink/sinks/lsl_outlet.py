"""Republish a received stream as a normal LSL outlet: same name, type, channel count, rate, format and
``desc()`` metadata, so LabRecorder, mne-lsl and decoders see the original stream.

The source_id gets a ``@neurolink`` suffix so a sender on the same machine never mistakes the copy for the
original when it recovers by source_id.
"""

from __future__ import annotations

import logging

import numpy as np

from neurolink.lsl import make_info, pylsl
from neurolink.sinks.base import Sink
from neurolink.wire.format import StreamHeader

log = logging.getLogger(__name__)


class LSLOutletSink(Sink):
    def __init__(self, name_suffix: str = "", source_id_suffix: str = "@neurolink", wait_consumer_s: float = 0.0):
        self.name_suffix = name_suffix
        self.source_id_suffix = source_id_suffix
        self.wait_consumer_s = wait_consumer_s
        self.outlet: pylsl.StreamOutlet | None = None
        self.samples_out = 0
        self.source_id = ""
        self.text = False

    def open(self, header: StreamHeader) -> None:
        self.source_id = header.source_id + self.source_id_suffix
        self.text = header.channel_format == "string"
        info = make_info(
            header.name + self.name_suffix, header.type, header.channel_count, header.nominal_srate,
            header.channel_format, self.source_id, desc=header.desc_xml,
        )
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)
        if self.wait_consumer_s > 0 and not self.outlet.wait_for_consumers(self.wait_consumer_s):
            log.warning("outlet %r: no consumer after %.1f s", header.name, self.wait_consumer_s)

    def push(self, data: np.ndarray, timestamps: np.ndarray, *, concealed: bool = False) -> None:
        if self.outlet is None or data.shape[0] == 0:
            return
        if self.text:
            # markers: pylsl takes str values as one flat (sample-major) list, and every sample keeps its own
            # timestamp (irregular streams have no rate to derive them from)
            self.outlet.push_chunk(data.ravel().tolist(), timestamp=timestamps.tolist())
        else:
            # one timestamp for the last sample: liblsl derives the rest from the nominal rate (t0 + i/fs)
            self.outlet.push_chunk(data, timestamp=float(timestamps[-1]))
        self.samples_out += data.shape[0]

    def close(self) -> None:
        self.outlet = None
