"""Shared contract of the transform families (wavelet, PCA, VQ, CS, autoencoder) through the codec test kit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from neurolink.codecs import get_codec
from neurolink.codecs.testing import (
    check_config_roundtrip,
    check_corruption,
    check_roundtrip,
    check_stream_roundtrip,
)
from neurolink.errors import CodecError, MissingReferenceError

CONFIGS = [
    {"id": "nl-wavelet", "step": 16.0},
    {"id": "nl-pca", "step": 16.0},
    {"id": "nl-vq", "bits": 6},
    {"id": "nl-cs", "m": 8},
    {"id": "nl-ae", "step": 0.2},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
@settings(max_examples=15, deadline=None)
@given(x=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40)))
def test_roundtrip_any_int16(cfg, x):
    check_roundtrip(get_codec(cfg), x)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_float32_1d_and_bad_input(cfg):
    x = np.random.default_rng(0).normal(0, 50, (30, 5)).astype(np.float32)
    y = check_roundtrip(get_codec(cfg), x)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    check_roundtrip(get_codec(cfg), np.arange(15, dtype=np.int16))
    with pytest.raises(CodecError, match="finite"):
        get_codec(cfg).encode(np.full((4, 2), np.nan, np.float32))
    with pytest.raises(CodecError, match="dtype"):
        get_codec(cfg).encode(np.zeros((4, 2), np.int64))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_real_stream_loss_recovery_and_corruption(cfg, recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 230]
    check_config_roundtrip(get_codec(cfg))
    check_stream_roundtrip(get_codec(cfg), x, frame)
    check_corruption(get_codec(cfg), x[: frame * 2], trials=30)
    enc, dec = get_codec(cfg), get_codec(cfg)
    blobs = [enc.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]
    full = get_codec(cfg)
    ref = [full.decode(b) for b in blobs]
    dec.decode(blobs[0])
    with pytest.raises(MissingReferenceError):  # frame 1 lost
        dec.decode(blobs[2])
    for b in blobs[3:100]:
        with pytest.raises(MissingReferenceError):
            dec.decode(b)
    for i in range(100, len(blobs)):  # from the keyframe on: identical to an undisturbed decoder
        assert np.array_equal(dec.decode(blobs[i]), ref[i])
    late = get_codec(cfg)  # a receiver joining at a keyframe
    assert np.array_equal(late.decode(blobs[200]), ref[200])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_corrupt_predicted_frames_never_crash(cfg):
    """Bit flips in frames after a good keyframe (the decoder has state) raise CodecError or decode."""
    rng = np.random.default_rng(1)
    x = np.rint(rng.normal(2000, 60, (15 * 6, 4))).astype(np.int16)
    enc = get_codec(cfg)
    blobs = [enc.encode(x[i : i + 15]) for i in range(0, x.shape[0], 15)]
    for trial in range(20):
        dec = get_codec(cfg)
        dec.decode(blobs[0])
        b = bytearray(blobs[1 + trial % 5])
        for _ in range(3):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        try:
            y = dec.decode(bytes(b))
        except CodecError:
            continue
        assert y.shape == (15, 4)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_rate_falls_with_knob(cfg, recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 200]
    knob = [k for k in cfg if k not in ("id",)][0]
    coarse = {"step": cfg.get("step", 0) * 8, "bits": 3, "m": 2}[knob]
    sizes = []
    for v in (cfg[knob], coarse):
        enc = get_codec({**cfg, knob: v})
        sizes.append(sum(len(enc.encode(x[i : i + frame])) for i in range(0, x.shape[0], frame)))
    if frame == 1 and cfg["id"] == "nl-cs":
        assert sizes[0] == sizes[1]  # one-sample frames carry no measurements: only the mean is sent
    else:
        assert sizes[1] < sizes[0]
