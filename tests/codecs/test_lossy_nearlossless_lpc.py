"""nl-nearlossless-lpc / nl-dpcm: error bounds, the shared codec kit, loss recovery, corruption, range coder."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolink.codecs import get_codec
from neurolink.codecs.lossy import _rangecoder as rc
from neurolink.codecs.testing import (
    check_bad_input,
    check_corrupt_predicted_frames,
    check_loss_recovery,
    check_roundtrip,
    check_stream_contract,
    encode_frames,
)
from neurolink.errors import CodecError

ID = "nl-nearlossless-lpc"


@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=30)),
       k=st.integers(0, 50))
def test_error_bound_any_int16(x, k):
    """Keyframes and predicted frames (with extreme values: escapes, clamps) keep |error| <= k."""
    enc, dec = get_codec({"id": ID, "k": k}), get_codec({"id": ID, "k": k})
    for part in (x, x[::-1].copy(), x, -x):  # predicted frames too, after fitted weights
        y = dec.decode(enc.encode(part))
        assert y.shape == part.shape and y.dtype == np.int16
        assert np.max(np.abs(y.astype(np.int64) - part), initial=0) <= k


@settings(max_examples=30, deadline=None)
@given(x=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=30)),
       step=st.floats(0.0625, 300))
def test_dpcm_bound_any_int16(x, step):
    """nl-dpcm: |error| <= step/2 (+0.5 rounding to int16; the step has 1/16 resolution)."""
    enc, dec = get_codec({"id": "nl-dpcm", "step": step}), get_codec({"id": "nl-dpcm", "step": step})
    bound = round(step * 16) / 32 + 0.5
    for part in (x, x[::-1].copy(), x):
        y = dec.decode(enc.encode(part))
        assert np.max(np.abs(y.astype(np.float64) - part), initial=0) <= bound + 1e-9


def test_float32_1d_and_bad_input():
    x = np.random.default_rng(0).normal(0, 50, (30, 3)).astype(np.float32)
    y = check_roundtrip(get_codec({"id": ID, "k": 2}), x, max_abs_error=2.5 + 1e-3)
    assert y.dtype == np.float32
    check_roundtrip(get_codec({"id": ID, "k": 2}), np.arange(15, dtype=np.int16), max_abs_error=2)
    check_bad_input({"id": ID})
    with pytest.raises(CodecError, match="'k'"):
        get_codec({"id": ID, "k": -1})
    with pytest.raises(CodecError, match="'step'"):
        get_codec({"id": "nl-dpcm", "step": 0})
    y = check_roundtrip(get_codec({"id": "nl-dpcm", "step": 3.0}), x, max_abs_error=1.5 + 1e-3)
    assert y.dtype == np.float32


@pytest.mark.parametrize("cfg", [{"id": ID, "k": 8}, {"id": "nl-dpcm", "step": 17.0}], ids=lambda c: c["id"])
def test_real_stream_bound_rate_and_loss_recovery(cfg, recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 260]
    blobs = check_stream_contract(cfg, x, frame)
    full = get_codec(cfg)
    ref = [full.decode(b) for b in blobs]
    rec = np.concatenate(ref)
    assert np.max(np.abs(rec.astype(np.float64) - x)) <= cfg.get("k", cfg.get("step", 0) / 2 + 0.5)
    # smaller than the previous-sample near-lossless codec at the same bound (fitted predictor, range coder),
    # both coding the keyframes' DC values the same way (escaped by the adaptive coder: raw_dc off)
    size = sum(map(len, blobs))
    old = {"id": "nl-nearlossless", "k": 8, "raw_dc": False}  # bound 8; nl-dpcm step 17: 9
    assert size < sum(map(len, encode_frames(get_codec(old), x, frame)))
    # against nl-nearlossless as the packaged ladder runs it (level 3, raw_dc on: the DC values coded
    # outside the adaptive coder) this holds with 15 samples a frame (locust, 260 frames: lpc 8223 vs 8342
    # bytes), but NOT on the 1 kHz ECoG (1 sample a frame, 3 keyframes in 260 frames): measured lpc 11414,
    # dpcm 11532 vs 9260 bytes (keyframes 489/528 vs 157 B). Checked as measured, with a little slack.
    shipped = sum(map(len, encode_frames(get_codec({**old, "raw_dc": True}), x, frame)))
    assert size < shipped if frame > 1 else size < 1.3 * shipped
    # frame 1 lost: from the keyframe on identical to an undisturbed decoder; a receiver joining at
    # frame 200 gets the weights fitted by then in that keyframe
    check_loss_recovery(cfg, blobs, ref=ref, join_at=200)


def test_deterministic_bytes():
    """Two encoders given the same frames emit the same bytes (the wire format is a function of the input)."""
    x = np.rint(np.random.default_rng(3).normal(2000, 60, (15 * 150, 4))).astype(np.int16)
    a, b = get_codec({"id": ID, "k": 5}), get_codec({"id": ID, "k": 5})
    for i in range(0, x.shape[0], 15):
        assert a.encode(x[i : i + 15]) == b.encode(x[i : i + 15])


def test_corrupt_predicted_frames_never_crash():
    check_corrupt_predicted_frames({"id": ID, "k": 3}, trials=30)


def test_range_coder_roundtrip_and_short_flush():
    """Adaptive and direct decisions round-trip; the flush costs ~2 bits over the information content."""
    rng = np.random.default_rng(7)
    n = 3000
    ctx = rng.integers(0, 8, n)
    bits = (rng.random(n) < 0.1 + 0.1 * ctx).astype(np.int64)
    direct = rng.random(n) < 0.2
    width = rng.integers(1, 17, n)
    dctx = np.where(direct, -width, ctx).astype(np.int64)
    dbit = np.where(direct, rng.integers(0, 1 << 16, n) & ((1 << width) - 1), bits).astype(np.int64)
    prob, cnt = rc.new_model(8)
    out = np.zeros(4 * n + 16, np.uint8)
    nbytes = rc.enc_finish(*rc.enc_decisions(*rc.enc_init(), out, prob, cnt, dctx, dbit, n), out)
    assert out[0] == 0
    src = out[1:nbytes].copy()
    prob, cnt = rc.new_model(8)
    code, rng_, ip = rc.dec_init(src)
    for i in range(n):
        if dctx[i] < 0:
            code, rng_, ip, v = rc.dec_direct(code, rng_, ip, src, -dctx[i])
        else:
            code, rng_, ip, v = rc.dec_bit(code, rng_, ip, src, prob, cnt, dctx[i])
        assert v == dbit[i], i
    # a single likely decision flushes to at most one byte
    prob, cnt = rc.new_model(1)
    one = rc.enc_finish(*rc.enc_decisions(*rc.enc_init(), out, prob, cnt, np.zeros(1, np.int64),
                                          np.zeros(1, np.int64), 1), out)
    assert one - 1 <= 1


def _golden_input() -> np.ndarray:
    n = np.arange(15 * 6 * 3).reshape(-1, 3)
    x = ((n * 37 % 211) - 105 + 40 * np.sin(n / 5.0).round()).astype(np.int16)
    x[20, 1], x[21, 1] = -32768, 32767  # escapes
    return x


GOLDEN = {  # payloads of version 1 of the format: every later version must decode them bit-exactly
    "nl-nearlossless-lpc": ({"id": ID, "k": 2, "keyframe_interval": 3}, "8ff4aedba7deb555", [
        "810003000f1341b38000179c679e3e8b60286f107ff344737811cbc9fe610ab7802ea33f525d74aedf72f0e6a0de7b90df82fd6397e2b840",
        "0c64171ee5e2272653977ac0321247bd72f5ba97969bf75aeac863c382e724377049b7c3cc2b7011d15311fe730e03",
        "1290b9c5647aac424341b71e2b818c3061c9d9cce530906b179202b67672e171c8b5",
        "810003000f1241835c0016df4000028b202c77137ff16ef3afb6d7c49f1962591ea11daa440e1d69c363a99a6c49af107f7b8228ba0d7b2481d3cc60",
        "0d266ae7a0708a6265d14ad9fd8a91c0e9fe014a67b4b56f5c517210abf5990695c170",
        "14c24dc4090b4659e07b48251d38c352e163bdafc913e2b46906c8c2d69b77b9680c"]),
    "nl-dpcm": ({"id": "nl-dpcm", "step": 7.5, "keyframe_interval": 3}, "e9616f4d2c7f329d", [
        "810003000f234c1a37c00276dc67a03e936402870107fefb8d43b41919f39a1f990cf549b1e35d2838b577dc54d1b2bea5020039dc",
        "0abe1bc1c1715f188ad79fd70c562d74e22eed7805a9736fa548b9587ba9c2cae923a84b198ef2fec937",
        "12fe711f3d5816f6610d9514149cc8ae40be66fe141be63dae90fb94b87780",
        "810003000f2244153580026cdf40000293160287913bfec4473f94b3cb3a3ccca7fd08f39e466d482f480d8a14f44906097dc355dd4c499766c2",
        "0d2f7e989f7e2c0650784c5454d8b800b734d67ff50eb192ffe551e1349b5f2c",
        "15f3fa9d65d945d8ed336ffa3368c4a2a2287e6fbf2b79a5da96f6e55357"]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_payloads(name):
    """Committed payloads decode to the same samples (sha256 prefix) within the bound; the encoder still
    produces them byte for byte but for the frame counter (change the format only with a new codec id or a
    version bump)."""
    import hashlib

    cfg, digest, blobs = GOLDEN[name]
    x = _golden_input()
    dec = get_codec(cfg)
    y = np.concatenate([dec.decode(bytes.fromhex(b)) for b in blobs])
    assert hashlib.sha256(y.tobytes()).hexdigest()[:16] == digest
    bound = cfg.get("k", cfg.get("step", 0) / 2 + 0.5)
    assert np.max(np.abs(y.astype(np.float64) - x)) <= bound
    enc = get_codec(cfg)

    def counter_masked(b: bytes) -> bytes:  # the 4-bit frame counter (byte 0, bits 6..3) runs across keyframes
        return bytes([b[0] & 0x87]) + b[1:]  # since 2026-12-01 (version-1 decoders read either)

    assert [counter_masked(enc.encode(x[i : i + 15])) for i in range(0, x.shape[0], 15)] == [
        counter_masked(bytes.fromhex(b)) for b in blobs]
