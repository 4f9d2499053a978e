"""A loss as long as a codec's frame counter period (16 frames for the lossy family) must not let the next
frame decode against the pre-loss reference: the receiver restarts its decoders on such gaps."""

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
