"""nl-lossless archive prefilter (prefilter.py): exact inverse, when it engages, what it saves, hostile tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.codecs import get_codec
from neurolink.codecs.lossless import codec as nlc
from neurolink.codecs.lossless import prefilter as pfm
from neurolink.errors import CodecError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _archive():
    return get_codec({"id": "nl-lossless", "mode": "archive"})


def oversampled(n: int, n_ch: int, seed: int = 0, noise: float = 0.0, dtype=np.int16, gain: float = 1.0) -> np.ndarray:
    """A 30 kHz-like recording: white noise through a sharp low-pass at a quarter of the sampling rate
    (an anti-alias filter at 7.5 kHz), a DC offset per channel, optional white noise after it (ADC)."""
    rng = np.random.default_rng(seed)
    taps = np.sinc(np.arange(-64, 65) / 2) / 2 * np.hanning(129)
    w = rng.normal(0, 60, (n + 128, n_ch))
    y = np.stack([np.convolve(w[:, c], taps, "valid") for c in range(n_ch)], axis=1)[:n]
    y = y * gain + rng.integers(-3000, 3000, n_ch) + rng.normal(0, noise, (n, n_ch))
    info = np.iinfo(dtype)
    return np.clip(np.rint(y), info.min, info.max).astype(dtype)


def _kind_offset(blob: bytes) -> int:
    """Offset of the kind byte of a v2 self-contained payload with an all-identity alphabet (byte 2 =
    n_channels < 128, byte 3 = 0, then the n_samples varint)."""
    assert blob[3] == 0, "test helper expects an identity alphabet"
    i = 4
    while blob[i] & 0x80:
        i += 1
    return i + 1


def _kind(blob: bytes) -> int:
    return blob[_kind_offset(blob)]


def _without_prefilter(monkeypatch, x: np.ndarray) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(pfm, "plan", lambda codes: None)
        return _archive().encode(x)


# --- the filter is its own exact inverse --------------------------------------------------------

@st.composite
def filters(draw):
    dtype = draw(st.sampled_from([np.int16, np.int32]))
    n_ch = draw(st.integers(1, 40))
    n_s = draw(st.integers(1, 300))
    info = np.iinfo(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["rails", "walk", "any"]))
    if kind == "rails":  # predictions past the rails: the wrap-around must invert
        x = rng.choice(np.array([info.min, info.max, info.min + 1, info.max - 1, 0], dtype), (n_s, n_ch))
    elif kind == "walk":
        x = np.clip(np.cumsum(rng.integers(-900, 900, (n_s, n_ch)), axis=0), info.min, info.max).astype(dtype)
    else:
        x = rng.integers(info.min, info.max, (n_s, n_ch), dtype=dtype, endpoint=True)
    orders = rng.integers(0, pfm.MAX_ORDER + 1, n_ch).astype(np.uint8)
    q = rng.integers(-pfm.MAX_Q + 1, pfm.MAX_Q, (n_ch, pfm.MAX_ORDER))
    q[np.arange(pfm.MAX_ORDER)[None, :] >= orders[:, None]] = 0
    big_bias = draw(st.booleans())  # above FLOAT_BIAS: the int64 path also for int16
    bias = rng.integers(-(pfm.MAX_BIAS - 1) if big_bias else -pfm.FLOAT_BIAS + 1,
                        pfm.MAX_BIAS if big_bias else pfm.FLOAT_BIAS, n_ch)
    mean = rng.integers(info.min, info.max, n_ch, endpoint=True)
    return x, pfm.Prefilter(orders, q, bias, mean)


@settings(max_examples=60, deadline=None)
@given(case=filters())
def test_filter_inverts_exactly_at_any_weights(case):
    x, pf = case
    info = np.iinfo(x.dtype)
    lo, hi = int(info.min), int(info.max)
    # as the dtype itself, and as int64 codes (what a non-identity alphabet hands over): the filtered
    # codes must stay inside the dtype's range either way, not just wrap on a cast
    for codes in (x, x.astype(np.int64)):
        y = pfm.apply(codes, pf, lo, hi)
        assert y.dtype == codes.dtype and y.shape == codes.shape
        assert y.size == 0 or (int(y.min()) >= lo and int(y.max()) <= hi)
        assert np.array_equal(pfm.apply(y, pf, lo, hi, inverse=True), codes)


def test_float_and_integer_paths_agree():
    """int16 runs in float64 (exact below 2^53), int32 in int64: the same prediction on the same codes."""
    x = oversampled(3000, 6)
    pf = pfm.plan(x)
    assert pf is not None and pf.active
    y16 = pfm.apply(x, pf, -32768, 32767)
    lo, hi = -32768, 32767
    ref = np.empty_like(x)
    pfm._run64(x, ref, pf.q, pf.bias, pf.mean, pf.orders.astype(np.int64), lo, hi, False)
    assert np.array_equal(y16, ref)


# --- when it engages, and what it saves -----------------------------------------------------------

@pytest.mark.parametrize("n_ch,noise,dtype", [(4, 0.0, np.int16), (4, 1.0, np.int16), (24, 0.0, np.int16),
                                              (3, 0.0, np.int32)])
def test_oversampled_blocks_get_the_prefilter_and_shrink(monkeypatch, n_ch, noise, dtype):
    x = oversampled(12000, n_ch, seed=n_ch, noise=noise, dtype=dtype, gain=40.0 if dtype == np.int32 else 1.0)
    blob = _archive().encode(x)
    assert _kind(blob) & nlc.KIND_PREFILTER
    assert np.array_equal(_archive().decode(blob), x)
    plain = _without_prefilter(monkeypatch, x)
    assert not _kind(plain) & nlc.KIND_PREFILTER
    assert len(blob) < 0.93 * len(plain), (len(blob), len(plain))


def test_white_data_and_short_blocks_are_left_alone(monkeypatch):
    rng = np.random.default_rng(1)
    white = rng.normal(0, 50, (8000, 8)).round().astype(np.int16)
    assert pfm.plan(white) is None
    short = oversampled(100, 4)
    assert pfm.plan(short) is None
    for x in (white, short):
        blob = _archive().encode(x)
        assert blob == _without_prefilter(monkeypatch, x)


def test_alphabet_blocks_filter_the_codes():
    """A grid (unused low bits): the prefilter runs on the dense codes, the alphabet maps them back."""
    x = (oversampled(8000, 4, seed=5).astype(np.int32) * 4).clip(-32768, 32767).astype(np.int16)
    blob = _archive().encode(x)
    assert np.array_equal(_archive().decode(blob), x)


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present (real recordings)")
@pytest.mark.parametrize("name,rows", [("locust_tetrode_trial01", 30000), ("ecog_seizure_78ch_1khz", 21658)])
def test_real_recordings_at_their_rate_are_unchanged(monkeypatch, name, rows):
    """Near-white 15 kHz tetrodes and 1 kHz ECoG gain nothing from a long predictor: the payload must
    be byte-identical to the codec without the prefilter (the estimate or the trial says no)."""
    x = np.ascontiguousarray(np.load(DATA / f"{name}.npy", mmap_mode="r")[:rows])
    assert _archive().encode(x) == _without_prefilter(monkeypatch, x)


# --- hostile tables -------------------------------------------------------------------------------

def _pf_blob() -> tuple[bytes, int]:
    """A prefilter payload and the offset of its table (the byte after the kind byte)."""
    blob = _archive().encode(oversampled(6000, 2, seed=9))
    assert _kind(blob) & nlc.KIND_PREFILTER
    return blob, _kind_offset(blob) + 1


def test_order_above_the_maximum_is_rejected():
    blob, t = _pf_blob()
    bad = bytearray(blob)
    bad[t] = pfm.MAX_ORDER + 1
    with pytest.raises(CodecError, match="prefilter order"):
        _archive().decode(bytes(bad))


def test_truncated_or_out_of_range_table_is_rejected():
    blob, t = _pf_blob()
    with pytest.raises(CodecError, match="prefilter"):
        _archive().decode(blob[: t + 5])
    pf, end = pfm.unpack(blob, t, 2, -32768, 32767, "nl-lossless")
    tab = bytearray()
    huge = pfm.Prefilter(pf.orders, pf.q.copy(), pf.bias, pf.mean)
    huge.q[0, 0] = pfm.MAX_Q  # one past the limit
    pfm.pack(huge, tab)
    with pytest.raises(CodecError, match="out of range in field 'prefilter weights'"):
        pfm.unpack(bytes(tab), 0, 2, -32768, 32767, "nl-lossless")
    off = pfm.Prefilter(pf.orders, pf.q, pf.bias, pf.mean.copy())
    off.mean[1] = 40000  # outside int16
    tab = bytearray()
    pfm.pack(off, tab)
    with pytest.raises(CodecError, match="out of range"):
        pfm.unpack(bytes(tab), 0, 2, -32768, 32767, "nl-lossless")


def test_flipped_weight_never_decodes_silently_wrong():
    """Archive payloads carry no checksum of their own (the wire CRC does): a changed weight changes
    the decoded samples or raises, it never crashes."""
    blob, t = _pf_blob()
    x = _archive().decode(blob)
    bad = bytearray(blob)
    bad[t + 2 + 4] ^= 0x01  # inside the first channel's varints
    try:
        y = _archive().decode(bytes(bad))
    except CodecError:
        return
    assert y.shape == x.shape


def test_stream_keyframes_do_not_accept_the_flag():
    """The prefilter is archive-only: a stream decoder treats the kind bit as an unknown kind."""
    x = np.repeat(np.arange(5, dtype=np.int16)[:, None], 2, axis=1)  # steps of 1: identity alphabet
    enc = get_codec({"id": "nl-lossless", "mode": "stream"})
    first = enc.encode(x)  # 5-row frames x interval 100 < 1000 rows: a v2 SELECT keyframe
    assert json.dumps(enc.get_config())
    i = _kind_offset(first)
    bad = bytearray(first)
    bad[i] |= nlc.KIND_PREFILTER
    with pytest.raises(CodecError, match="unknown predictor kind"):
        get_codec({"id": "nl-lossless", "mode": "stream"}).decode(bytes(bad))


# --- streams: planned once from the first rows, table in full keyframes, history reset at keyframes --

@pytest.fixture(autouse=True)
def _short_switch(monkeypatch):
    """Streams switch the prefilter on PREFILTER_SWITCH_FRAMES after planning (1 s by default, time for
    the bulk thread); 60 frames keep these tests short, the logic is the same."""
    monkeypatch.setattr(nlc, "PREFILTER_SWITCH_FRAMES", 60)


STREAM = {"id": "nl-lossless", "mode": "stream", "keyframe_interval": 40}  # 40 x 30 rows >= LPC_MIN_ROWS: v4


def _frames(x: np.ndarray, frame: int = 30) -> list[np.ndarray]:
    return [np.ascontiguousarray(x[i : i + frame]) for i in range(0, x.shape[0] - frame + 1, frame)]


def _v3_kind(blob: bytes) -> int | None:
    """Kind byte of a v3/v4 keyframe with an identity alphabet (None for predicted frames)."""
    if not blob[0] & nlc.KEY_BIT or blob[1] >> 4 < 3:
        return None
    return blob[_kind_offset(blob)]


def _switch(frame: int = 30) -> int:
    """The frame at which a stream switches its prefilter on: the frame completing the planning rows,
    plus the fixed delay that lets the plan run on a bulk thread (independent of thread timing)."""
    return -(-nlc.PREFILTER_PLAN_ROWS // frame) - 1 + nlc.PREFILTER_SWITCH_FRAMES


def _encode(frames: list[np.ndarray], config: dict = STREAM) -> list[bytes]:
    """Frame by frame, the planning thread settled after each (frames faster than real time)."""
    enc = get_codec(config)
    out = []
    for f in frames:
        out.append(enc.encode(f))
        enc.settle()
    return out


def test_stream_switches_the_prefilter_on_and_stays_exact(monkeypatch):
    x = oversampled(12000, 4, seed=2)
    frames = _frames(x)
    blobs = _encode(frames)
    dec = get_codec(STREAM)
    for f, b in zip(frames, blobs, strict=True):
        assert np.array_equal(dec.decode(b), f)
    kinds = [(i, _v3_kind(b)) for i, b in enumerate(blobs) if _v3_kind(b) is not None]
    on = [i for i, k in kinds if k & nlc.KIND_V3_PREFILTER]
    switch = _switch()
    assert on and on[0] == switch, (on[:3], switch)
    assert kinds[-1][1] & nlc.KIND_V3_PREFILTER  # and it stays on
    # full keyframes carry the table; the others only name it
    full = [i for i, k in kinds if k & nlc.KIND_V3_PREFILTER and k & 7 == nlc.KIND_LPC]
    assert full[0] == switch and len(full) < len(on)
    with monkeypatch.context() as m:
        m.setattr(nlc, "PREFILTER_PLAN_ROWS", 10**9)
        plain = _encode(frames)
    after = slice(switch + 1, None)
    assert sum(map(len, blobs[after])) < 0.9 * sum(map(len, plain[after]))


def test_stream_loss_and_late_joiners():
    x = oversampled(21000, 3, seed=4)  # 700 frames: a full keyframe 10 x 40 frames after the switch
    frames = _frames(x)
    blobs = _encode(frames)
    switch = _switch()
    ref = get_codec(STREAM)
    ref_out = [ref.decode(b) for b in blobs]
    # lose the switch keyframe (it carries the table): nothing decodes until a full keyframe
    dec = get_codec(STREAM)
    for b in blobs[:switch]:
        dec.decode(b)
    resumed = None
    for i in range(switch + 1, len(blobs)):
        try:
            y = dec.decode(blobs[i])
        except Exception as err:  # MissingReferenceError until a keyframe with the table (or its set)
            assert type(err).__name__ == "MissingReferenceError", err
            assert resumed is None, f"frame {i} failed after decoding resumed at {resumed}"
            continue
        resumed = i if resumed is None else resumed
        assert np.array_equal(y, ref_out[i]) and np.array_equal(y, frames[i])
    assert resumed is not None and _v3_kind(blobs[resumed]) & 7 == nlc.KIND_LPC
    # a receiver joining at a later full keyframe decodes exactly from there
    kinds = {i: _v3_kind(b) for i, b in enumerate(blobs)}
    j = [i for i, k in kinds.items() if k is not None and k & 7 == nlc.KIND_LPC and i > switch + 40][0]
    late = get_codec(STREAM)
    for i in range(j, len(blobs)):
        assert np.array_equal(late.decode(blobs[i]), frames[i])


def test_reset_keeps_the_plan_and_a_fresh_decoder_follows():
    """The sender resets its codec on every level switch: the plan survives, the first keyframe after the
    reset carries the table and decodes on a decoder that never saw the stream."""
    x = oversampled(12000, 2, seed=6)
    frames = _frames(x)
    enc = get_codec(STREAM)
    at = _switch() + 30
    for f in frames[:at]:
        enc.encode(f)
        enc.settle()
    enc.reset()
    first = enc.encode(frames[at])
    assert _v3_kind(first) & nlc.KIND_V3_PREFILTER and _v3_kind(first) & 7 == nlc.KIND_LPC
    dec = get_codec(STREAM)
    assert np.array_equal(dec.decode(first), frames[at])
    for f in frames[at + 1 :]:
        assert np.array_equal(dec.decode(enc.encode(f)), f)


def test_shape_change_drops_the_prefilter():
    enc = get_codec(STREAM)
    dec = get_codec(STREAM)
    seen = set()
    for f in _frames(oversampled(9000, 4, seed=7)):
        b = enc.encode(f)
        enc.settle()
        seen.add(_v3_kind(b))
        assert np.array_equal(dec.decode(b), f)
    assert any(k is not None and k & nlc.KIND_V3_PREFILTER for k in seen)  # on before the change
    other = _frames(oversampled(600, 5, seed=8))
    for f in other:
        b = enc.encode(f)
        k = _v3_kind(b)
        assert k is None or not k & nlc.KIND_V3_PREFILTER  # 600 rows: not planned yet for 5 channels
        assert np.array_equal(dec.decode(b), f)


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present (real recordings)")
def test_real_tetrode_stream_is_unchanged(monkeypatch):
    """15 kHz tetrodes: no prefilter, so the stream's bytes are those of the codec without it."""
    x = np.ascontiguousarray(np.load(DATA / "locust_tetrode_trial01.npy", mmap_mode="r")[:9000])
    frames = _frames(x, 15)
    cfg = {"id": "nl-lossless", "mode": "stream", "keyframe_interval": 100}
    with_pf = _encode(frames, cfg)
    with monkeypatch.context() as m:
        m.setattr(nlc, "PREFILTER_PLAN_ROWS", 10**9)
        assert _encode(frames, cfg) == with_pf


def test_stream_keyframe_tampering():
    x = oversampled(9000, 2, seed=10)
    frames = _frames(x)
    blobs = _encode(frames)
    kinds = {i: _v3_kind(b) for i, b in enumerate(blobs)}
    full = [i for i, k in kinds.items() if k is not None and k & nlc.KIND_V3_PREFILTER and k & 7 == nlc.KIND_LPC][0]
    ref = [i for i, k in kinds.items() if k is not None and k & nlc.KIND_V3_PREFILTER and k & 7 == nlc.KIND_LPC_REF][0]
    # a reference keyframe before any table: wait for a full keyframe
    with pytest.raises(Exception, match="weight set"):
        get_codec(STREAM).decode(blobs[ref])
    # the same keyframe without the prefilter bit names another set
    dec = get_codec(STREAM)
    dec.decode(blobs[full])
    bad = bytearray(blobs[ref])
    bad[_kind_offset(blobs[ref])] &= ~nlc.KIND_V3_PREFILTER
    with pytest.raises(Exception, match="weight set"):
        dec.decode(bytes(bad))
    # a changed byte in the table: the signature no longer matches (or a field is out of range)
    b = bytearray(blobs[full])
    k = _kind_offset(blobs[full])
    n_weights_end = len(b) - len(blobs[full]) + k + 4  # kind, 3 signature bytes, then the weights
    for pos in range(n_weights_end, min(len(b), n_weights_end + 40)):
        t = bytearray(b)
        t[pos] ^= 0x04
        try:
            y = get_codec(STREAM).decode(bytes(t))
        except CodecError:
            continue
        assert y.shape == frames[full].shape


def test_a_late_plan_is_not_waited_for(monkeypatch):
    """The live path never blocks on the planning thread: a plan not done at its switch frame is looked
    at again PREFILTER_SWITCH_FRAMES later, and the stream stays exact meanwhile."""
    from concurrent.futures import Future

    import neurolink.runtime as rt

    pending: Future = Future()
    jobs: list = []

    class Held:
        def submit(self, fn, *args):
            jobs.append((fn, args))
            return pending

    monkeypatch.setattr(rt, "plan_executor", lambda: Held())
    frames = _frames(oversampled(15000, 2, seed=12))
    enc, dec = get_codec(STREAM), get_codec(STREAM)
    switch = _switch()
    kinds = []
    for i, f in enumerate(frames):
        if i == switch + 10:  # done only after its first due frame
            pending.set_result(jobs[0][0](*jobs[0][1]))
        b = enc.encode(f)
        kinds.append(_v3_kind(b))
        assert np.array_equal(dec.decode(b), f)
    on = [i for i, k in enumerate(kinds) if k is not None and k & nlc.KIND_V3_PREFILTER]
    assert len(jobs) == 1 and on and on[0] == switch + nlc.PREFILTER_SWITCH_FRAMES
