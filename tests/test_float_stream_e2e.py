"""A float32 LSL stream (how most EEG amplifiers publish, in µV) through the whole bridge: real liblsl,
real ZeroMQ, the packaged ladder. Before nl-float the sender died on its first frame."""

import asyncio

import numpy as np
import pytest
from test_e2e_lsl import _bridge

from neurolink.sources.replay import Recording


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_stream_bit_exact_through_lsl_zmq_lsl(recording, source_id, dtype):
    x, fs = recording
    f = (x[: int(1.5 * fs)] * 0.195).astype(dtype)  # Intan's µV per count
    f[5, 0] = np.nan  # a NaN (a dropped-out channel) passes too
    rec = Recording(f, fs, [f"c{i}" for i in range(x.shape[1])], "nl-float-e2e", "EEG", "uV")
    outlet, sender, receiver, mem, checker = asyncio.run(_bridge(rec, source_id, 1.0))
    n = outlet.samples_pushed
    src = rec.data[:n]
    assert mem.data().dtype == dtype
    assert np.array_equal(mem.data().view(np.uint8), np.ascontiguousarray(src).view(np.uint8))
    got = np.concatenate(checker.parts)
    assert got.dtype == dtype and np.array_equal(got.view(np.uint8), np.ascontiguousarray(src).view(np.uint8))
    tx = sender.streams[1]
    assert tx.ladder[0]["id"] == "nl-float" and tx.stats.codec_ratio > 1.5  # the integer path carried it
    rx = receiver.streams[1].stats
    assert rx.frames_lost == 0 and rx.samples_concealed == 0 and receiver.bad_messages == 0


def test_float_stream_lossy_levels_code_the_counts():
    """The packaged ladder on a float32 µV stream: each lossy level runs nl-float with that level's codec on
    the recovered counts, so its error bound holds in counts (k LSB = k x 0.195 µV here)."""
    from neurolink.codecs import get_codec, load_ladder
    from neurolink.codecs.dtype_ladder import resolve_ladder

    q = np.cumsum(np.random.default_rng(8).integers(-60, 61, (3000, 4)), axis=0)
    f = (q * 0.195).astype(np.float32)
    ladder, levels = load_ladder(), resolve_ladder(list(load_ladder()), "float32", explicit=False)
    sizes = []
    for orig, cfg in zip(ladder, levels, strict=True):
        enc, dec = get_codec(cfg), get_codec(cfg)
        blobs = [enc.encode(f[i:i + 15]) for i in range(0, len(f), 15)]
        y = np.concatenate([dec.decode(b) for b in blobs])
        sizes.append(sum(map(len, blobs)))
        if orig["id"] == "nl-nearlossless":  # error bound k counts, after the first fit (64 rows raw, exact)
            ulp = float(np.spacing(np.abs(f)).max())  # the float32 output's own rounding
            assert np.abs(y.astype(np.float64) - f)[64:].max() <= orig["k"] * 0.195 + ulp
    assert sizes[-1] < sizes[3] < sizes[0]  # the ladder still lowers the rate
