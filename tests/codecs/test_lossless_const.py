"""nl-lossless archive payloads leave channels that are constant over the block out of the bitstream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.codecs import get_codec
from neurolink.codecs.base import CODE_DTYPES
from neurolink.codecs.lossless import alphabet as alph
from neurolink.codecs.lossless import codec as nlc
from neurolink.codecs.lossless.varint import Reader
from neurolink.errors import CodecError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _archive():
    return get_codec({"id": "nl-lossless", "mode": "archive"})


def _kind_offset(blob: bytes) -> int:
    """Offset of the kind byte of a v2 archive payload (the header parsed as the decoder does)."""
    rd = Reader(blob, "test")
    rd.byte("flags")
    vd = rd.byte("version/dtype")
    n_ch = rd.uvarint("n_channels", 1 << 16)
    alph.unpack(rd, n_ch, CODE_DTYPES[vd & 15])
    rd.uvarint("n_samples", 1 << 40)
    return rd.pos


@st.composite
def blocks(draw):
    dtype = draw(st.sampled_from([np.int16, np.int32]))
    n_ch = draw(st.integers(1, 40))
    n_s = draw(st.integers(1, 700))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    info = np.iinfo(dtype)
    x = np.cumsum(rng.integers(-300, 300, (n_s, n_ch)), axis=0)
    if draw(st.booleans()):  # a grid: unused low bits (an AFFINE alphabet)
        x = x * 4
    x = np.clip(x + int(rng.integers(-1000, 1000)), info.min, info.max).astype(dtype)
    const = rng.random(n_ch) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    for c in np.flatnonzero(const):
        x[:, c] = rng.choice(np.array([info.min, info.max, 0, 7, -5], dtype))
    return np.ascontiguousarray(x)


@settings(max_examples=60, deadline=None)
@given(x=blocks())
def test_roundtrip_with_constant_channels(x):
    y = _archive().decode(_archive().encode(x))
    assert y.dtype == x.dtype and np.array_equal(y, x)


def test_a_dead_channel_costs_nothing():
    rng = np.random.default_rng(0)
    live = np.cumsum(rng.integers(-40, 41, (20000, 3)), axis=0).astype(np.int16)
    with_dead = np.concatenate([live[:, :1], np.full((20000, 1), -12, np.int16), live[:, 1:]], axis=1)
    a, b = _archive().encode(live), _archive().encode(with_dead)
    assert _archive().decode(b)[:, 1].tolist() == [-12] * 20000
    assert _archive().decode(b).tobytes() == with_dead.tobytes()
    assert (len(b) - len(a)) * 8 / 20000 < 0.01  # bits per sample of the dead channel (was ~1)
    assert b[_kind_offset(b)] & nlc.KIND_CONST and not a[_kind_offset(a)] & nlc.KIND_CONST


def test_an_idle_amplifier_block_is_tiny():
    x = np.zeros((30000, 64), np.int16)  # 1 s of a disconnected 64-channel headstage at 30 kHz
    blob = _archive().encode(x)
    assert len(blob) < 400 and np.array_equal(_archive().decode(blob), x)


def test_constant_channels_with_the_prefilter():
    rng = np.random.default_rng(3)
    taps = np.sinc(np.arange(-64, 65) / 2) / 2 * np.hanning(129)
    w = rng.normal(0, 60, (12128, 3))
    y = np.stack([np.convolve(w[:, c], taps, "valid") for c in range(3)], axis=1)[:12000]
    x = np.rint(np.concatenate([y[:, :2], np.full((12000, 1), 3.0), y[:, 2:]], axis=1)).astype(np.int16)
    blob = _archive().encode(x)
    k = blob[_kind_offset(blob)]
    assert k & nlc.KIND_CONST and k & nlc.KIND_PREFILTER
    assert np.array_equal(_archive().decode(blob), x)


def _const_blob() -> tuple[bytes, int]:
    rng = np.random.default_rng(5)
    x = rng.integers(-30, 30, (200, 3)).astype(np.int16)  # white: no prefilter table in between
    x[:, 1] = 9
    blob = _archive().encode(x)
    k = _kind_offset(blob)
    assert blob[k] & nlc.KIND_CONST and not blob[k] & nlc.KIND_PREFILTER
    return blob, k + 1  # the constant-channel table: count, (gap, code)


def test_hostile_constant_tables_are_rejected():
    blob, t = _const_blob()
    assert blob[t] == 1 and blob[t + 1] == 1  # one channel, index 1
    for pos, val, what in ((t, 5, "constant channels"), (t + 1, 3, "constant channel 3"), (t + 1, 0x7F, "constant channel")):
        bad = bytearray(blob)
        bad[pos] = val
        with pytest.raises(CodecError, match=what):
            _archive().decode(bytes(bad))
    with pytest.raises(CodecError):
        _archive().decode(blob[: t + 1])


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present (real recordings)")
def test_real_recordings_have_no_constant_channels_to_skip():
    for name in ("locust_tetrode_trial01", "ecog_seizure_78ch_1khz"):
        x = np.ascontiguousarray(np.load(DATA / f"{name}.npy", mmap_mode="r")[:20000])
        blob = _archive().encode(x)
        assert not blob[_kind_offset(blob)] & nlc.KIND_CONST, name
