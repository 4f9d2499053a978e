"""nl-float: float32/float64 streams, bit-exact (NaN payloads, -0.0, infinities included), with the integer
path engaged on data that acquisition software computes from ADC counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zstandard
from conftest import SHARED, recordings
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolink.bench.codecs import published_float32, sidecar_scale_offset
from neurolink.codecs import get_codec
from neurolink.codecs.float_lossless import F_INT, F_PARAMS, F_PREF, fit_affine, reconstruct
from neurolink.codecs.testing import check_config_roundtrip, check_corruption, encode_frames
from neurolink.errors import CodecError, MissingReferenceError

CFG = {"id": "nl-float", "keyframe_interval": 20}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def _stream(x: np.ndarray, frame: int, cfg: dict = CFG) -> tuple[int, object]:
    """x through one encoder and one decoder in frames; asserts every frame bit-exact; (bytes, encoder)."""
    enc, dec = get_codec(cfg), get_codec(cfg)
    total = 0
    for i in range(0, x.shape[0], frame):
        part = x[i : i + frame]
        blob = enc.encode(part)
        total += len(blob)
        y = dec.decode(blob)
        assert y.dtype == part.dtype and y.shape == part.shape
        assert np.array_equal(_bits(y), _bits(part)), f"frame at row {i} not bit-exact"
    return total, enc


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
        elements=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=32),
    ),
    st.integers(1, 9),
)
def test_any_floats_roundtrip_bit_exact(x, frame):
    _stream(x, frame)


def test_counts_times_scale_take_the_integer_path():
    """Sources publishing counts x scale + offset, with scales, offsets and amplitudes drawn at random (in
    float64 or float32 arithmetic; a NaN and a -0.0 thrown in): bit-exact always, and nearly every channel
    on the integer path. Deterministic cases (a ratio heuristic must not make CI flaky). Limits, where a
    channel takes the raw path (still exact): a float64 stream is reproduced bit for bit only by the
    source's own constants (scales written as short decimals are found, an arbitrary float64 offset is
    not); in float32 arithmetic an offset is found within half a step; counts that are all multiples of
    one odd number read as a coarser scale; a step under 10 float spacings (a count
    barely resolved by the float format) is not attempted."""
    rng = np.random.default_rng(2026)
    on, total = 0, 0
    for case in range(36):
        dtype = (np.float32, np.float32, np.float64)[case % 3]
        f32_arith = case % 6 == 1
        scale = 10 ** rng.uniform(-3, 1)
        offset = rng.uniform(-300, 300) if case % 4 else 0.0
        if dtype == np.float64:
            scale, offset = float(f"{scale:.4g}"), 0.0
        elif f32_arith:
            offset = float(rng.uniform(-0.5, 0.5) * scale)
        q = np.cumsum(rng.integers(-40, 41, (600, 3)), axis=0) * 2 ** int(rng.integers(0, 3))
        if f32_arith:
            x = q.astype(np.float32) * np.float32(scale) + np.float32(offset)
        else:
            x = (q * scale + offset).astype(dtype)
        if dtype == np.float32 and np.spacing(np.float32(np.abs(x).max())) > 0.05 * scale:
            continue  # counts barely resolved by float32: not attempted (see above)
        x[300, 0] = np.nan
        x[301, 1] = -0.0
        _, enc = _stream(x, 10)
        on += int(enc._mask.sum())
        total += 3
    assert total >= 60 and on >= 0.9 * total, f"integer path on {on}/{total} channels"


def _float_versions(x: np.ndarray, meta: dict) -> dict[str, np.ndarray]:
    """How acquisition software publishes these counts: in the sidecar's unit, in float32 or float64
    arithmetic."""
    scale, offset = sidecar_scale_offset(meta, x.shape[1])
    return {
        "f32 from float64 math": published_float32(x, meta),
        "f32 from float32 math": x.astype(np.float32) * scale.astype(np.float32) + offset.astype(np.float32),
        "f64": x * scale + offset,
    }


@pytest.mark.parametrize("path", [p.name for p in recordings()] or ["<missing>"])
def test_real_recordings_as_floats(path):
    if path == "<missing>":
        pytest.skip("../shared/data not found beside the checkout (set NEUROLINK_SHARED to its folder)")
    assert SHARED is not None
    meta = json.loads((SHARED / "data" / path).with_suffix(".json").read_text())
    x = np.load(SHARED / "data" / path, mmap_mode="r")[:4000]
    frame = max(1, int(round(meta["sampling_rate_hz"] / 1000)))  # 1 ms frames, as the daemon cuts them
    cz = zstandard.ZstdCompressor(level=3)
    for name, f in _float_versions(np.asarray(x), meta).items():
        total, enc = _stream(f, frame)
        zstd = sum(len(cz.compress(f[i : i + 1000].tobytes())) for i in range(0, f.shape[0], 1000))
        ratio, zratio = f.nbytes / total, f.nbytes / zstd
        if name == "f64":  # exact (asserted above); see test_counts_times_scale_take_the_integer_path
            continue
        # the integer path must carry most channels and beat zstd over whole 1000-row blocks
        assert enc._mask.mean() >= 0.8, f"{path} {name}: integer path on {enc._mask.sum()}/{f.shape[1]} channels"
        assert ratio > 1.3 * zratio, f"{path} {name}: ratio {ratio:.2f} vs zstd {zratio:.2f}"


def test_true_floats_take_the_raw_path_and_stay_exact():
    x = np.random.default_rng(3).standard_normal((400, 5)).astype(np.float32)
    _, enc = _stream(x, 8)
    assert not enc._mask.any()


def test_gain_change_midstream():
    """The amplifier's gain (the scale) changes: still bit-exact, and the new scale is found."""
    rng = np.random.default_rng(4)
    q = np.cumsum(rng.integers(-30, 31, (3000, 4)), axis=0)
    x = np.concatenate([(q[:1500] * 0.195).astype(np.float32), (q[1500:] * 0.05).astype(np.float32)])
    _, enc = _stream(x, 15)
    assert enc._mask.all() and np.allclose(np.abs(enc._scale), 0.05, rtol=1e-6)


def test_fit_affine_finds_scale_and_offset():
    q = np.cumsum(np.random.default_rng(5).integers(-9, 10, (256, 2)), axis=0) + 3000
    w = (q * np.array([0.5316759501409504, 0.1]) + np.array([0.566675950141871, -3.2])).astype(np.float32)
    s, o, frac = fit_affine(w)
    assert np.all(frac >= 0.95)
    assert np.allclose(np.abs(s), [0.5316759501409504, 0.1], rtol=1e-6)
    y = reconstruct(np.round((w.astype(np.float64) - o) / np.abs(s)), s, o, w.dtype)
    assert (y == w).mean() >= 0.95


def test_loss_waits_for_keyframe_then_exact():
    """A lost frame: MissingReferenceError until the next keyframe (one that names its parameter set
    will do: the decoder holds them), then exact; a late joiner needs a keyframe with the parameters."""
    q = np.cumsum(np.random.default_rng(6).integers(-20, 21, (15 * 80, 3)), axis=0)
    x = (q * 0.195).astype(np.float32)
    blobs = encode_frames(get_codec(CFG), x, 15)
    keys = [i for i, b in enumerate(blobs) if b[0] & (F_PARAMS | F_PREF) and b[0] & F_INT]
    k = next(i for i in keys if i > 30)  # a keyframe of the integer path (after the first fit)
    dec = get_codec(CFG)
    for i in range(0, 25):
        dec.decode(blobs[i])
    errors = 0
    for i in range(26, k):  # frame 25 lost
        try:
            y = dec.decode(blobs[i])
            assert np.array_equal(_bits(y), _bits(x[15 * i : 15 * i + 15]))  # only raw-path frames may decode
        except MissingReferenceError:
            errors += 1
    assert errors > 0
    for i in range(k, len(blobs)):
        assert np.array_equal(_bits(dec.decode(blobs[i])), _bits(x[15 * i : 15 * i + 15]))
    late = get_codec(CFG)  # a receiver joining at a keyframe with the parameters
    k = next(i for i in keys if get_codec(CFG).is_keyframe(blobs[i]))
    assert np.array_equal(_bits(late.decode(blobs[k])), _bits(x[15 * k : 15 * k + 15]))


def test_hostile_payloads_raise_codec_error():
    x = (np.cumsum(np.random.default_rng(7).integers(-9, 10, (600, 4)), axis=0) * 0.195).astype(np.float32)
    blobs = encode_frames(get_codec(CFG), x, 30)
    check_config_roundtrip(get_codec(CFG))
    check_corruption(get_codec(CFG), x[:30])
    for b in (blobs[0], blobs[5]):  # raw-path keyframe, integer-path keyframe
        for cut in range(len(b)):
            with pytest.raises(CodecError):
                get_codec(CFG).decode(b[:cut])
    with pytest.raises(CodecError, match="dtype"):
        get_codec(CFG).decode(bytes([1, 1, 1, 1, 0]))  # int16 dtype code
    with pytest.raises(CodecError, match="exceeds"):
        get_codec(CFG).decode(bytes([1, 3, 4]) + bytes([0xFF, 0xFF, 0xFF, 0x7F]))  # 268M samples claimed
    with pytest.raises(CodecError, match="not supported"):
        get_codec(CFG).encode(np.zeros((4, 2), np.int16))


def test_reset_restarts_the_coders_but_keeps_the_fit():
    """The sender resets a level's codec at every switch to it: the next frame is a keyframe a fresh
    decoder reads, already on the integer path (no 64 raw rows after each switch)."""
    x = (np.cumsum(np.random.default_rng(9).integers(-20, 21, (900, 4)), axis=0) * 0.195).astype(np.float32)
    enc = get_codec(CFG)
    for i in range(0, 600, 15):
        enc.encode(x[i:i + 15])
    assert enc._mask.all()
    enc.reset()
    blob = enc.encode(x[600:615])
    assert get_codec(CFG).is_keyframe(blob) and enc._mask.all()
    assert np.array_equal(_bits(get_codec(CFG).decode(blob)), _bits(x[600:615]))
    raw = get_codec(CFG).encode(x[600:615])  # a fresh encoder has no fit yet: raw path
    assert len(blob) < len(raw)
