"""Receiver edge cases, offline (frames handed to ``Receiver.handle``, no sockets): a loss as long as a
codec's frame-counter period must not decode against a stale reference; output held while the clock
settles is released by a timer, not only by the next frame (a sparse marker stream may be silent for
minutes)."""

import asyncio

import numpy as np

from neurolink.codecs import get_codec
from neurolink.receiver import COUNTER_SAFE_GAP, Receiver
from neurolink.sinks.base import MemorySink
from neurolink.wire import format as w


class _NoTransport:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None


def test_a_16_frame_burst_is_concealed_not_decoded_against_a_stale_reference():
    cfg = {"id": "nl-nearlossless", "k": 2, "keyframe_interval": 100}
    x = np.cumsum(np.random.default_rng(0).integers(-50, 51, (15 * 60, 4)), axis=0).astype(np.int16)
    enc = get_codec(cfg)
    blobs = [enc.encode(x[i * 15:(i + 1) * 15]) for i in range(60)]
    sink = MemorySink()
    rx = Receiver(_NoTransport(), lambda h: [sink], conceal="zeros", clock_settle_s=0.0)
    rx.handle(w.pack_stream_header(w.StreamHeader(1, "s", "EEG", "sid", 15000.0, 4, "int16", "", cfg, [cfg], 15, "h")))
    lost = range(10, 10 + COUNTER_SAFE_GAP)  # exactly one counter period: the codec alone cannot see it
    for i, b in enumerate(blobs):
        if i not in lost:
            rx.handle(w.pack_frame(1, i, 1.0 + i * 0.001, 15, 4, "int16", 0, b, 0))
    st = rx.streams[1].stats
    assert st.frames_lost == COUNTER_SAFE_GAP
    assert st.frames_undecodable == 60 - 10 - COUNTER_SAFE_GAP  # no keyframe before the end: all concealed
    y = sink.data()
    assert y.shape == x.shape and not y[15 * 10:].any()  # concealed (zeros), nothing decoded from a stale state


def test_a_lone_marker_is_delivered_once_the_settle_time_is_over():
    async def run():
        sink = MemorySink()
        rx = Receiver(_NoTransport(), lambda h: [sink], clock_settle_s=0.3)
        lad = [{"id": "nl-text"}]
        rx.handle(w.pack_stream_header(w.StreamHeader(1, "m", "Markers", "sid", 0.0, 1, "string", "", lad[0], lad, 1, "h")))
        blob = get_codec({"id": "nl-text"}).encode([["experiment start"]])
        rx.handle(w.pack_frame(1, 0, 100.0, 1, 1, "string", 0, blob, w.FLAG_KEYFRAME))
        held = sink.data() is None or len(sink.data()) == 0  # the clock is not settled yet: held
        await asyncio.sleep(0.6)
        return held, sink.data()

    held, data = asyncio.run(run())
    assert held
    assert data is not None and data.tolist() == [["experiment start"]]
