"""Archive blocks: exact samples and per-frame timestamps back; malformed payloads are typed errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from neurolink.codecs import get_codec
from neurolink.errors import CodecError, WireFormatError
from neurolink.framer import RawFrame
from neurolink.reliable.block import pack_block, unpack_block
from neurolink.sinks.archive import ARCHIVE_CODEC

CODEC = get_codec(ARCHIVE_CODEC)


def _frames(sizes, ch=3, fs=1000.0, seed=0):
    rng = np.random.default_rng(seed)
    out, t = [], 100.0
    for i, n in enumerate(sizes):
        out.append(RawFrame(i, t + 0.0003 * (i % 3), rng.integers(-500, 500, (n, ch)).astype(np.int16)))
        t += n / fs
    return out


def test_roundtrip_keeps_each_frames_t0(recording):
    x, fs = recording
    frames = [RawFrame(i, 7.0 + i * 0.01 + (0.0002 if i == 3 else 0.0), np.ascontiguousarray(x[i * 10:(i + 1) * 10])) for i in range(8)]
    data, payload = pack_block(frames, CODEC)
    y, ts = unpack_block(payload, 80, x.shape[1], CODEC, fs)
    assert np.array_equal(y, x[:80])
    expect = np.concatenate([f.timestamp + np.arange(10) / fs for f in frames])
    assert np.array_equal(ts, expect)


@settings(max_examples=30, deadline=None)
@given(hs.lists(hs.integers(1, 40), min_size=1, max_size=12))
def test_roundtrip_uneven_frames(sizes):
    frames = _frames(sizes)
    data, payload = pack_block(frames, CODEC)
    y, ts = unpack_block(payload, sum(sizes), 3, CODEC, 1000.0)
    assert np.array_equal(y, data) and ts.shape == (sum(sizes),) and ts[0] == frames[0].timestamp


@settings(max_examples=60, deadline=None)
@given(hs.binary(max_size=200))
def test_garbage_is_a_typed_error(buf):
    try:
        unpack_block(buf, 10, 3, CODEC, 1000.0)
    except (WireFormatError, CodecError):
        pass


def test_inconsistent_table_rejected():
    _d, payload = pack_block(_frames([5, 5]), CODEC)
    with pytest.raises(WireFormatError, match="sums to 10"):
        unpack_block(payload, 11, 3, CODEC, 1000.0)
    with pytest.raises(WireFormatError, match="frame table"):
        unpack_block(b"\xff\xff\xff\xff" + payload[4:], 10, 3, CODEC, 1000.0)
