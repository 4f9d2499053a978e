"""nl-lossless: property round trips, real data, streaming loss recovery, alphabets, corruption, goldens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolink.codecs import get_codec
from neurolink.codecs.lossless import NlLossless
from neurolink.codecs.testing import (
    check_config_roundtrip,
    check_corruption,
    check_roundtrip,
    check_stream_roundtrip,
)
from neurolink.errors import CodecError, MissingReferenceError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "codecs"
MODES = ["stream", "archive"]


def _codec(mode: str, **kw) -> NlLossless:
    return get_codec({"id": "nl-lossless", "mode": mode, **kw})  # type: ignore[return-value]


@st.composite
def int_arrays(draw):
    dtype = draw(st.sampled_from([np.int16, np.int32]))
    n_ch = draw(st.integers(1, 1024))
    n_s = draw(st.integers(1, max(1, min(65536, 40000 // n_ch))))
    kind = draw(st.sampled_from(["any", "const", "extreme", "small"]))
    info = np.iinfo(dtype)
    if kind == "any":
        return draw(hnp.arrays(dtype, (n_s, n_ch), elements=st.integers(int(info.min), int(info.max))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "const":
        return np.full((n_s, n_ch), draw(st.sampled_from([int(info.min), 0, int(info.max)])), dtype)
    if kind == "extreme":
        return rng.choice(np.array([info.min, info.max, 0, -1], dtype), size=(n_s, n_ch))
    return np.cumsum(rng.integers(-40, 41, (n_s, n_ch)), axis=0).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(x=int_arrays(), mode=st.sampled_from(MODES))
def test_roundtrip_property(x, mode):
    check_roundtrip(_codec(mode), x)


@settings(max_examples=15, deadline=None)
@given(x=int_arrays(), frame=st.integers(1, 64))
def test_stream_property(x, frame):
    check_stream_roundtrip(_codec("stream", keyframe_interval=7), x[:2000], frame=frame)


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_white_noise_and_extremes(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    x = rng.integers(info.min, info.max, (3000, 5), endpoint=True).astype(dtype)
    x[::7] = info.max
    x[3::11] = info.min
    for mode in MODES:
        check_roundtrip(_codec(mode), x)
        check_stream_roundtrip(_codec(mode), x, frame=30)
    check_roundtrip(_codec("archive"), np.zeros((0, 3), dtype))
    check_roundtrip(_codec("archive"), np.zeros((5, 0), dtype))


def test_real_data(recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    arc = _codec("archive")
    check_config_roundtrip(arc)
    check_config_roundtrip(_codec("stream", keyframe_interval=50))
    check_roundtrip(arc, x[:20000])
    check_stream_roundtrip(_codec("stream"), x[:3000], frame=frame)
    check_corruption(arc, x[:300])
    assert x[:20000].nbytes / len(arc.encode(x[:20000])) > 1.8


def test_dropped_frame_recovers_at_keyframe(recording):
    x, _fs = recording
    x = x[:600]
    enc, dec = _codec("stream", keyframe_interval=10), _codec("stream", keyframe_interval=10)
    frames = [enc.encode(x[i : i + 10]) for i in range(0, 600, 10)]
    assert [NlLossless.is_keyframe(b) for b in frames[:21]] == [i % 10 == 0 for i in range(21)]
    for i, blob in enumerate(frames):
        if i == 13:
            continue  # lost in transit
        if 14 <= i < 20:
            with pytest.raises(MissingReferenceError):
                dec.decode(blob)
        else:
            assert np.array_equal(dec.decode(blob), x[i * 10 : i * 10 + 10]), f"frame {i}"


def test_reset_forces_keyframe():
    x = np.arange(200, dtype=np.int16).reshape(100, 2)
    enc = _codec("stream")
    assert NlLossless.is_keyframe(enc.encode(x[:10]))
    assert not NlLossless.is_keyframe(enc.encode(x[10:20]))
    enc.reset()
    assert NlLossless.is_keyframe(enc.encode(x[20:30]))
    with pytest.raises(MissingReferenceError):
        _codec("stream").decode(_stream_frames(x)[1])


def _stream_frames(x: np.ndarray) -> list[bytes]:
    enc = _codec("stream")
    return [enc.encode(x[i : i + 10]) for i in range(0, x.shape[0], 10)]


def _ten_bit(n_s: int, n_ch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    code = np.clip(np.cumsum(rng.integers(-3, 4, (n_s, n_ch)), axis=0) + 512, 0, 1023)
    return (np.round(code * 65535 / 1023) - 32768).astype(np.int16)


def test_alphabet_ten_bit_grid_beats_plain():
    x = _ten_bit(20000, 4)
    code_like = x.nbytes / len(_codec("archive").encode(x))
    assert code_like > 3.5, code_like  # ~2.8 bits/sample of codes, far below the 16-bit view
    enc, dec = _codec("stream", keyframe_interval=20), _codec("stream", keyframe_interval=20)
    sizes = []
    for i in range(0, 20000, 30):
        b = enc.encode(x[i : i + 30])
        sizes.append(len(b))
        assert np.array_equal(dec.decode(b), x[i : i + 30])
    assert np.median(sizes[-100:]) < 0.6 * np.median(sizes[:20])  # learned the grid (keyframes carry it)


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_alphabet_low_bits_zero(dtype):
    rng = np.random.default_rng(2)
    base = np.cumsum(rng.integers(-20, 21, (5000, 3)), axis=0)
    x = (base * 16 + 5).astype(dtype)
    plain = len(_codec("archive").encode(base.astype(dtype)))
    shifted = len(_codec("archive").encode(x))
    assert shifted <= plain + 64
    check_stream_roundtrip(_codec("stream"), x, frame=30)


def test_rejects_float_and_bad_params():
    with pytest.raises(CodecError, match="lossy family"):
        _codec("stream").encode(np.zeros((4, 2), np.float32))
    with pytest.raises(CodecError, match="mode"):
        _codec("fast")
    with pytest.raises(CodecError, match="keyframe_interval"):
        _codec("stream", keyframe_interval=0)


@pytest.mark.parametrize("mode", MODES)
def test_corruption_never_crashes(mode):
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.integers(-50, 51, (400, 6)), axis=0).astype(np.int16)
    check_corruption(_codec(mode), x, trials=150)
    check_corruption(_codec(mode), _ten_bit(400, 3), trials=50)
    blob = _codec(mode).encode(x)
    for cut in range(0, len(blob), max(1, len(blob) // 40)):
        with pytest.raises(CodecError):
            _codec(mode).decode(blob[:cut])
    with pytest.raises(CodecError):
        _codec(mode).decode(blob + b"\x00")


def _golden_cases() -> list[Path]:
    return sorted(FIXTURES.glob("nl-lossless_*.json"))


@pytest.mark.parametrize("cfg_path", _golden_cases(), ids=lambda p: p.stem)
def test_golden_fixtures(cfg_path):
    """Every later version must decode these committed payloads bit-exactly."""
    meta = json.loads(cfg_path.read_text())
    original = np.load(cfg_path.with_suffix(".npy"), allow_pickle=False)
    dec = get_codec(meta["config"])
    blobs = cfg_path.with_suffix(".bin").read_bytes()
    pos = 0
    for i, (length, start, stop) in enumerate(meta["frames"]):
        y = dec.decode(blobs[pos : pos + length])
        pos += length
        assert np.array_equal(y, original[start:stop]), f"{cfg_path.stem} frame {i}"
    assert pos == len(blobs)


def test_golden_fixtures_present():
    assert len(_golden_cases()) >= 3


# --- format version 2: LPC / SELECT predictor kinds, short predicted-frame headers --------------


def _tetrode(n_s: int, seed: int = 4) -> np.ndarray:
    """Near-white, cross-channel correlated (like the locust tetrode): the LPC kind wins here."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 40, (n_s + 3, 4))
    ar = w[3:] + 0.5 * w[2:-1] - 0.2 * w[1:-2] + 0.6 * w[3:, :1]
    return np.round(ar + 1600).astype(np.int16)


def _kind(blob: bytes) -> int:
    from neurolink.codecs.lossless import alphabet
    from neurolink.codecs.lossless.varint import Reader

    rd = Reader(blob, "t", 2)
    alphabet.unpack(rd, rd.uvarint("n_ch", 1 << 20), np.dtype(np.int16))
    rd.uvarint("n_s", 1 << 30)
    return rd.byte("kind")


def test_v2_predictor_kind_choice():
    x = _tetrode(6000)
    assert _kind(_codec("archive").encode(x)) == 1  # LPC beats the fixed predictors on white-ish data
    assert _kind(_codec("archive").encode(x[:50])) == 0  # too short to pay for weights
    # 15 rows x 100 frames per keyframe interval: LPC (v3: low nibble kind, high nibble residual coder)
    assert _kind(_codec("stream").encode(x[:15])) & 15 == 1
    assert _kind(_codec("stream").encode(x[:1])) == 0  # 1-row frames: weights would cost too much


def test_v2_lpc_beats_v1_predictors_on_white_data():
    x = _tetrode(20000)
    ratio = x.nbytes / len(_codec("archive").encode(x))
    assert ratio > 1.02 * x.nbytes / len(_codec("archive").encode(x[:, ::-1].copy())) or ratio > 1.9, ratio


@pytest.mark.parametrize("frame", [1, 15, 30])
def test_v2_stream_loss_recovery_and_short_headers(frame):
    x = _tetrode(60 * frame)
    enc, dec = _codec("stream", keyframe_interval=10), _codec("stream", keyframe_interval=10)
    frames = [enc.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]
    assert all(b[0] & 0x40 for b in frames[1:10])  # same length as the previous frame: no n_samples field
    for i, blob in enumerate(frames):
        if i == 23:
            continue
        if 24 <= i < 30:
            with pytest.raises(MissingReferenceError):
                dec.decode(blob)
        else:
            assert np.array_equal(dec.decode(blob), x[i * frame : (i + 1) * frame]), f"frame {i}"


def test_v2_varying_frame_lengths_and_reset():
    x = _tetrode(3000)
    enc, dec = _codec("stream", keyframe_interval=7), _codec("stream", keyframe_interval=7)
    pos = 0
    for i, n in enumerate([15, 15, 3, 3, 40, 1, 0, 15, 15, 200, 15] * 5):
        if i == 20:
            enc.reset()
        blob = enc.encode(x[pos : pos + n])
        assert np.array_equal(dec.decode(blob), x[pos : pos + n])
        pos += n


@pytest.mark.parametrize("mode", MODES)
def test_v2_corruption_never_crashes(mode):
    x = _tetrode(600)
    check_corruption(_codec(mode), x, trials=150)
    blob = _codec(mode).encode(x)
    for cut in range(0, len(blob), max(1, len(blob) // 40)):
        with pytest.raises(CodecError):
            _codec(mode).decode(blob[:cut])


@pytest.mark.parametrize("mode", MODES)
def test_header_claiming_huge_block_is_rejected_cheaply(mode):
    from neurolink.codecs.lossless.varint import put_uvarint

    head = bytearray([0x80 | (0x40 if mode == "archive" else 0), 0x21])
    put_uvarint(head, 64)  # channels
    head.append(0)  # identity alphabet
    put_uvarint(head, 1 << 20)  # samples: 64 Mi samples claimed by a 12-byte payload
    with pytest.raises(CodecError, match="truncated"):
        _codec(mode).decode(bytes(head) + b"\x00\x00\x00\x00")
