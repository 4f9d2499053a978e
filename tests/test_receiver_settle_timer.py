"""Output held while the clock offset settles is released by a timer, not only by the next frame: a sparse
marker stream may send its next frame minutes later."""

import asyncio

from neurolink.codecs import get_codec
from neurolink.receiver import Receiver
from neurolink.sinks.base import MemorySink
from neurolink.wire import format as w


class _NoTransport:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None


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
