"""nl-lossless format v3 (LPC streams): header-less predicted frames with a tail frame check,
weight-set references in keyframes, prefix-coded quotients; loss detection and recovery."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.codecs import get_codec
from neurolink.codecs.lossless import NlLossless, huff
from neurolink.codecs.lossless import codec as nl
from neurolink.codecs.testing import check_corruption, check_stream_roundtrip
from neurolink.errors import CodecError, MissingReferenceError


def _codec(**kw) -> NlLossless:
    return get_codec({"id": "nl-lossless", "mode": "stream", **kw})  # type: ignore[return-value]


def _tetrode(n_s: int, seed: int = 4, n_ch: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 40, (n_s + 3, n_ch))
    ar = w[3:] + 0.5 * w[2:-1] - 0.2 * w[1:-2] + 0.6 * w[3:, :1]
    return np.round(ar + 1600).astype(np.int16)


def _kind(blob: bytes) -> int:
    """v3 keyframe kind byte (low nibble kind, high nibble coder); -1 for a predicted frame."""
    from neurolink.codecs.lossless import alphabet
    from neurolink.codecs.lossless.varint import Reader

    if not blob[0] & 0x80:
        return -1
    assert blob[1] >> 4 == 3
    rd = Reader(blob, "t", 2)
    alphabet.unpack(rd, rd.uvarint("n_ch", 1 << 20), np.dtype(np.int16))
    rd.uvarint("n_s", 1 << 30)
    return rd.byte("kind")


def _frames(x: np.ndarray, frame: int, **kw) -> list[bytes]:
    enc = _codec(**kw)
    return [enc.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]


def test_v3_predicted_frames_are_headerless_and_prefix_coded():
    x = _tetrode(15 * 300)
    frames = _frames(x, 15, keyframe_interval=70)
    kinds = [_kind(b) for b in frames]
    assert kinds[0] == 0x11  # full LPC weights, prefix coder (60-sample frames)
    assert 0x12 in kinds  # later keyframes name the weight set instead of resending it
    assert all(not b[0] & 0x80 for i, b in enumerate(frames) if i % 70)
    dec = _codec(keyframe_interval=70)
    for i, b in enumerate(frames):
        assert np.array_equal(dec.decode(b), x[15 * i : 15 * i + 15])


def test_v3_wide_frames_use_rice():
    x = _tetrode(16 * 30, n_ch=300)
    frames = _frames(x, 16, keyframe_interval=70)
    assert _kind(frames[0]) == 0x01  # 16 x 300 samples > PREFIX_MAX_SAMPLES: plain Rice
    check_stream_roundtrip(_codec(keyframe_interval=70), x, frame=16)


@pytest.mark.parametrize("gap", list(range(1, 1 << nl.CHECK_MIN)))
def test_v3_every_short_gap_is_detected(gap):
    x = _tetrode(15 * 60)
    frames = _frames(x, 15, keyframe_interval=70)
    dec = _codec(keyframe_interval=70)
    for i in range(5):
        dec.decode(frames[i])
    with pytest.raises(MissingReferenceError):
        dec.decode(frames[5 + gap])
    with pytest.raises(MissingReferenceError):  # stays waiting for a keyframe
        dec.decode(frames[6 + gap])


def test_v3_loss_recovers_at_next_keyframe():
    x = _tetrode(15 * 250)
    frames = _frames(x, 15, keyframe_interval=70)
    dec = _codec(keyframe_interval=70)
    for i, b in enumerate(frames):
        if i == 90:
            continue
        if 91 <= i < 140:
            with pytest.raises(MissingReferenceError):
                dec.decode(b)
        else:
            assert np.array_equal(dec.decode(b), x[15 * i : 15 * i + 15]), f"frame {i}"


def test_v3_lost_full_keyframe_waits_for_the_next_full_one(monkeypatch):
    monkeypatch.setattr(nl, "FULL_EVERY", 2)
    x = _tetrode(15 * 70 * 11)
    frames = _frames(x, 15, keyframe_interval=70)
    kinds = [_kind(b) for b in frames]
    full = [i for i, k in enumerate(kinds) if k == 0x11]
    lost = full[3]  # a later full keyframe (the first three keyframes always carry weights)
    nxt = full[4]
    assert any(kinds[i] == 0x12 for i in range(lost, nxt))
    dec = _codec(keyframe_interval=70)
    for i, b in enumerate(frames):
        if i == lost:
            continue
        if lost < i < nxt:
            with pytest.raises(MissingReferenceError):
                dec.decode(b)
        else:
            assert np.array_equal(dec.decode(b), x[15 * i : 15 * i + 15]), f"frame {i}"


def test_v3_frame_length_change_starts_a_keyframe():
    x = _tetrode(4000)
    enc, dec = _codec(keyframe_interval=100), _codec(keyframe_interval=100)
    pos = 0
    for n in [15] * 5 + [20, 20, 0, 0, 15, 15, 1000, 15, 15]:
        blob = enc.encode(x[pos : pos + n])
        if n == 20 and pos == 75 or n == 15 and pos == 120:
            assert NlLossless.is_keyframe(blob)
        assert np.array_equal(dec.decode(blob), x[pos : pos + n])
        pos += n


def test_v3_int32_and_extremes():
    rng = np.random.default_rng(7)
    x = (np.cumsum(rng.integers(-(2**24), 2**24, (1500, 3)), axis=0)).astype(np.int32)
    x[::37] = np.iinfo(np.int32).max
    x[5::41] = np.iinfo(np.int32).min
    check_stream_roundtrip(_codec(keyframe_interval=70), x, frame=15)
    y = rng.integers(-32768, 32768, (1500, 4)).astype(np.int16)
    check_stream_roundtrip(_codec(keyframe_interval=70), y, frame=15)


def test_v3_corrupt_predicted_frames_never_crash():
    x = _tetrode(15 * 40)
    frames = _frames(x, 15, keyframe_interval=70)
    check_corruption(_codec(keyframe_interval=70), x[:15], trials=60)
    rng = np.random.default_rng(5)
    for trial in range(120):
        dec = _codec(keyframe_interval=70)
        dec.decode(frames[0])
        b = bytearray(frames[1 + trial % 30])
        if trial % 3 == 0:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 7))
        for i in range(1, 1 + trial % 30):
            dec.decode(frames[i])
        try:
            y = dec.decode(bytes(b))
        except CodecError:
            continue
        assert y.shape == (15, 4)


def test_prefix_code_tables_are_consistent():
    for t in range(huff.LENGTHS.shape[0]):
        assert (2.0 ** -huff.LENGTHS[t].astype(float)).sum() <= 1.0
        for s in range(huff.N_SYM):
            ent = int(huff.ENC[(t << 6) | s])
            code, ln = ent >> 4, ent & 15
            assert 1 <= ln <= huff.MAXLEN
            d = int(huff.DEC[(t << huff.MAXLEN) | (code << (huff.MAXLEN - ln))])
            assert (d >> 4, d & 15) == (s, ln)


@st.composite
def _lpc_streams(draw):
    """Arrays and frame sizes that take the v3 LPC path (frame x interval 70 >= 1000 rows)."""
    dtype = draw(st.sampled_from([np.int16, np.int32]))
    n_ch = draw(st.integers(1, 300))
    frame = draw(st.integers(15, 40))
    n_s = draw(st.integers(frame, max(frame, min(3000, 60000 // n_ch))))
    info = np.iinfo(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["any", "walk", "const", "extreme"]))
    if kind == "any":
        x = rng.integers(info.min, info.max, (n_s, n_ch), endpoint=True)
    elif kind == "walk":
        x = np.clip(np.cumsum(rng.integers(-2000, 2001, (n_s, n_ch)), axis=0), info.min, info.max)
    elif kind == "const":
        x = np.full((n_s, n_ch), draw(st.sampled_from([int(info.min), 0, int(info.max)])))
    else:
        x = rng.choice(np.array([info.min, info.max, 0, -1]), size=(n_s, n_ch))
    return x.astype(dtype), frame


@settings(max_examples=15, deadline=None)
@given(case=_lpc_streams())
def test_v3_stream_property(case):
    x, frame = case
    check_stream_roundtrip(_codec(keyframe_interval=70), x, frame=frame)


def test_v3_code_chosen_per_channel():
    """Gaussian-like residuals take the prefix code, heavy-tailed ones keep Rice (chosen per keyframe
    from both codes' cost on the frames before it)."""
    rng = np.random.default_rng(8)
    n = 15 * 420
    x = np.concatenate([rng.normal(0, 50, (n, 2)), rng.laplace(0, 40, (n, 2))], axis=1)
    x = np.round(x + 1000).astype(np.int16)
    enc, dec = _codec(keyframe_interval=70), _codec(keyframe_interval=70)
    for i in range(0, n, 15):
        assert np.array_equal(dec.decode(enc.encode(x[i : i + 15])), x[i : i + 15])
    assert enc._enc.pfx.tolist() == [1, 1, 0, 0]  # type: ignore[union-attr]
    assert dec._dec.pfx.tolist() == [1, 1, 0, 0]  # type: ignore[union-attr]


def test_v3_reference_to_unknown_weight_set_waits():
    """A keyframe that reuses weights names them by signature: a decoder holding another stream's
    (or an outdated) set must not use it."""
    a, b = _tetrode(15 * 70 * 6, seed=1), _tetrode(15 * 70 * 6, seed=2)
    fa, fb = _frames(a, 15, keyframe_interval=70), _frames(b, 15, keyframe_interval=70)
    ref = next(i for i, f in enumerate(fb) if _kind(f) == 0x12)
    dec = _codec(keyframe_interval=70)
    for f in fa[: ref + 1]:
        dec.decode(f)
    with pytest.raises(MissingReferenceError, match="weight set"):
        dec.decode(fb[ref])
