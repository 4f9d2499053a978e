"""nl-lossless format v3 (LPC streams): header-less predicted frames with a tail frame check,
weight-set references in keyframes, prefix-coded quotients; loss detection and recovery."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert blob[1] >> 4 == nl.VERSION  # 4: v3's bitstream, predicted-frame index running on from the keyframe
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


# --- frame kernels (lpc.encode_frame / decode_frame): pure speed work, the bytes must not change ------


FIXTURES = Path(__file__).parents[1] / "fixtures" / "codecs"


@pytest.mark.parametrize("cfg_path", sorted(FIXTURES.glob("nl-lossless_v4_*.json")), ids=lambda p: p.stem)
def test_v3_encoder_reproduces_the_fixtures(cfg_path):
    """The v3/v4 encoder still writes the committed payloads byte for byte (prefix and Rice coders,
    weight-set references, a learned alphabet, int32, a frame-length change); the v3 fixtures, written
    before the index ran on across keyframes, are decoded by test_lossless.py's golden test."""
    meta = json.loads(cfg_path.read_text())
    x = np.load(cfg_path.with_suffix(".npy"), allow_pickle=False)
    enc = get_codec(meta["config"])
    blobs = b"".join(enc.encode(x[start:stop]) for _, start, stop in meta["frames"])
    assert blobs == cfg_path.with_suffix(".bin").read_bytes()


def test_rice_k_closed_form_matches_the_stepping_rule():
    """update_k computes the LOCO-I k from (A, N) directly; the v1/v2 rule stepped k up/down."""
    from neurolink.codecs.lossless.rice import update_k

    def stepping(k, a, n):
        while k < 50 and (n << k) < a:
            k += 1
        while k > 0 and (n << (k - 1)) >= a:
            k -= 1
        return k

    rng = np.random.default_rng(3)
    cases = [(a, n) for n in (1, 2, 3, 4, 31, 32, 33, 63, 64, 1025) for a in range(0, 300)]
    big = zip(rng.integers(0, 2**46, 3000), rng.integers(1, 1100, 3000), strict=True)
    cases += [(int(a), int(n)) for a, n in big]
    cases += [((1 << e) + d, n) for e in range(1, 47) for d in (-1, 0, 1) for n in (1, 5, 64)]
    for a, n in cases:
        for k0 in (0, 7, 40):
            assert update_k(k0, a, n) == stepping(k0, a, n), (k0, a, n)


def test_int32_and_int64_prediction_paths_agree():
    """int16 streams predict in int32 when no sum can leave it (lpc.transpose); both paths agree."""
    from neurolink.codecs.lossless import lpc

    rng = np.random.default_rng(11)
    x = rng.integers(-32768, 32768, (40, 97)).astype(np.int16)
    x[::5] = 32767
    x[2::7] = -32768
    for scale in (1, 8):  # sum |w| * 2^15 + |b| just below / far above 2^31
        coefs = rng.integers(-4000 * scale, 4000 * scale, (1, 97, lpc.N_COEF))
        coefs[..., lpc.N_W] = rng.integers(-(2**20), 2**20, (1, 97))
        wt, wt32, fast32 = lpc.transpose(coefs, np.dtype(np.int16))
        assert bool(fast32[0]) == (scale == 1)
        out = []
        for f32 in (np.array([True]), np.array([False])):
            if not f32[0] or fast32[0]:
                e = np.empty((40, 97), np.int64)
                lpc.residuals(x, np.zeros((97, 3), np.int64), wt, wt32, f32, 40, True, -32768, 32767, e)
                out.append(e)
        assert all(np.array_equal(out[0], o) for o in out)
    assert not lpc.transpose(coefs, np.dtype(np.int32))[2][0]


def test_v3_wide_frames_with_escapes_and_truncation():
    """1024-channel frames with outliers (escape codes, slow paths of the writer and reader) round
    trip; a truncated or padded predicted frame is reported, never decoded."""
    rng = np.random.default_rng(12)
    x = _tetrode(30 * 12, n_ch=1024)
    x[rng.integers(0, x.shape[0], 200), rng.integers(0, 1024, 200)] = rng.choice([-32768, 32767], 200)
    frames = _frames(x, 30, keyframe_interval=100)
    dec = _codec(keyframe_interval=100)
    for i, b in enumerate(frames[:6]):
        assert np.array_equal(dec.decode(b), x[30 * i : 30 * i + 30])
    for bad in (frames[6][:-1], frames[6][: len(frames[6]) // 2], frames[6] + b"\x00"):
        d2 = _codec(keyframe_interval=100)
        for b in frames[:6]:
            d2.decode(b)
        with pytest.raises(MissingReferenceError):
            d2.decode(bad)
    y = rng.integers(-(2**31), 2**31, (30 * 8, 1024)).astype(np.int32)
    check_stream_roundtrip(_codec(keyframe_interval=100), y, frame=30)


def test_request_keyframe_gives_a_self_contained_keyframe_without_forgetting():
    """After a loss the receiver asks for a keyframe: the next payload must decode on a fresh decoder (it
    carries the weights), and the encoder keeps its learned state (no ratio dip as after reset())."""
    rng = np.random.default_rng(3)
    x = (np.cumsum(rng.integers(-40, 41, (15 * 400, 6)), axis=0) % 3000).astype(np.int16)
    frames = [x[i : i + 15] for i in range(0, len(x), 15)]
    enc = get_codec({"id": "nl-lossless", "mode": "stream", "keyframe_interval": 100})
    blobs = [enc.encode(f) for f in frames[:250]]
    fitted = enc._fitter
    enc.request_keyframe()
    kf = enc.encode(frames[250])
    assert NlLossless.is_keyframe(kf) and enc._fitter is fitted
    fresh = get_codec({"id": "nl-lossless", "mode": "stream", "keyframe_interval": 100})
    assert np.array_equal(fresh.decode(kf), frames[250])
    for f in frames[251:300]:
        assert np.array_equal(fresh.decode(enc.encode(f)), f)
    assert len(blobs) == 250


def test_keyframes_reuse_state_and_pack_weights_ahead(monkeypatch):
    """Keyframes update the v3 state in place (encoder and decoder) and the weights of a full keyframe are
    packed over the preceding frames: the bytes must equal the unpacked path's (weights solved, rounded and
    serialised at the keyframe), also with requested keyframes mid-interval, frame lengths that switch the
    residual coder (prefix <-> Rice) and an unpacked decoder-side weight set."""
    x = np.tile(_tetrode(40 * 450, seed=9, n_ch=8), (1, 16))  # 128 channels
    rng = np.random.default_rng(5)
    lens = [40] * 300 + [int(n) for n in rng.integers(25, 40, 60)] + [30] * 90  # 30 x 128 <= 4096 < 40 x 128
    frames, pos = [], 0
    for n in lens:
        frames.append(x[pos : pos + n])
        pos += n

    def run(pack: bool) -> list[bytes]:
        enc, dec = _codec(keyframe_interval=50), _codec(keyframe_interval=50)
        if not pack:
            monkeypatch.setattr(nl._Fitter, "take_packed", lambda self, dt: None)
        out = []
        for i, f in enumerate(frames):
            if i in (77, 260, 261, 400):
                enc.request_keyframe()
            out.append(enc.encode(f))
            assert np.array_equal(dec.decode(out[-1]), f)
        monkeypatch.undo()
        return out

    packed, plain = run(True), run(False)
    assert packed == plain
    kinds = [_kind(b) for b in packed if b[0] & 0x80]
    assert {k & 15 for k in kinds} == {nl.KIND_LPC, nl.KIND_LPC_REF} and {k >> 4 for k in kinds} == {0, 1}


def test_v3_keyframe_rice_k_out_of_range_is_rejected_and_decoder_recovers():
    """The k bytes are read inside the frame kernel: a k > MAX_K still raises, and the reused state
    decodes the next keyframe exactly."""
    x = np.tile(_tetrode(30 * 401, seed=2), (1, 16))  # 64 channels: one-byte varint, k bytes at offset 9
    enc, dec = _codec(keyframe_interval=100), _codec(keyframe_interval=100)
    blobs = [enc.encode(x[30 * i : 30 * i + 30]) for i in range(401)]
    for b in blobs[:300]:
        dec.decode(b)
    assert _kind(blobs[300]) & 15 == nl.KIND_LPC_REF
    bad = bytearray(blobs[300])
    bad[9 + 5] = 45
    with pytest.raises(CodecError, match="Rice parameter 45"):
        dec.decode(bytes(bad))
    with pytest.raises(MissingReferenceError):
        dec.decode(blobs[301])
    assert np.array_equal(dec.decode(blobs[300]), x[9000:9030])
    assert np.array_equal(dec.decode(blobs[301]), x[9030:9060])
