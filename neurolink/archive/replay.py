"""Replay an archive as a live LSL stream, paced by its own timestamps (not as fast as possible).

The outlet carries the archived header (name, type, channel count, rate, format, ``desc()``) with a
``source_id`` suffix; sample times keep the archive's spacing (gaps included) shifted to start now. String
(marker) archives replay as a ``cf_string`` outlet; an irregular stream's samples are pushed one at a time, each
at its own (shifted) time stamp.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from neurolink.archive.reader import open_archive
from neurolink.lsl import pylsl
from neurolink.sinks.lsl_outlet import LSLOutletSink
from neurolink.wire.format import StreamHeader

log = logging.getLogger(__name__)


def replay_archive(path: str, *, speed: float = 1.0, block_s: float = 0.01, source_id_suffix: str = "@replay",
                   wait_consumer_s: float = 0.0, start: int = 0, stop: int | None = None,
                   should_stop: Callable[[], bool] = lambda: False, linger_s: float = 1.0) -> int:
    """Publish samples [start, stop) in real time (``speed`` x); returns the number of samples pushed."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    a = open_archive(path)
    h = dict(a.header)
    sink = LSLOutletSink(source_id_suffix=source_id_suffix, wait_consumer_s=wait_consumer_s)
    sink.open(StreamHeader(stream_id=int(a.meta.get("stream_id", 1)), **h))
    stop = a.n_samples if stop is None else min(stop, a.n_samples)
    step = max(1, int(round(a.fs * block_s))) if a.fs > 0 else 1  # irregular (markers): each at its own time
    wall0 = pylsl.local_clock()
    t_first: float | None = None
    pushed = 0
    for i in range(start, stop, 50 * step):  # read a few hundred ms at a time, push in block_s pieces
        x, ts = a.read(i, min(i + 50 * step, stop))
        if t_first is None and ts.size:
            t_first = float(ts[0])
        for j in range(0, x.shape[0], step):
            if should_stop():
                sink.close()
                return pushed
            xs, tss = x[j:j + step], ts[j:j + step]
            t_out = wall0 + (tss - t_first) / speed
            delay = float(t_out[-1]) - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            sink.push(np.ascontiguousarray(xs), t_out)
            pushed += xs.shape[0]
    if sink.outlet is not None and sink.outlet.have_consumers():
        time.sleep(linger_s)  # destroying the outlet at once would drop samples still in flight to inlets
    sink.close()
    return pushed
