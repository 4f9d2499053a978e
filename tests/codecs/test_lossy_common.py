"""Shared contract of the lossy family: shapes, dtypes, streams, keyframes, loss recovery, corruption."""

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

CONFIGS = [{"id": "nl-nearlossless", "k": 3}, {"id": "nl-spike", "step": 8.0}]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
@settings(max_examples=25, deadline=None)
@given(x=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40)))
def test_roundtrip_any_int16(cfg, x):
    check_roundtrip(get_codec(cfg), x, max_abs_error=cfg.get("k"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_float32_and_1d(cfg):
    x = np.random.default_rng(0).normal(0, 50, (30, 3)).astype(np.float32)
    y = check_roundtrip(get_codec(cfg), x)
    assert y.dtype == np.float32
    check_roundtrip(get_codec(cfg), np.arange(15, dtype=np.int16))
    with pytest.raises(CodecError, match="finite"):
        get_codec(cfg).encode(np.full((4, 2), np.nan, np.float32))
    with pytest.raises(CodecError, match="dtype"):
        get_codec(cfg).encode(np.zeros((4, 2), np.int64))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_real_stream_and_loss_recovery(cfg, recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 250]
    codec = get_codec(cfg)
    check_config_roundtrip(codec)
    check_stream_roundtrip(codec, x, frame)
    check_corruption(get_codec(cfg), x[: frame * 2])
    enc, dec = get_codec(cfg), get_codec(cfg)
    blobs = [enc.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]
    dec.decode(blobs[0])
    with pytest.raises(MissingReferenceError):  # frame 1 lost: frame 2 has no reference
        dec.decode(blobs[2])
    for b in blobs[3:100]:  # still waiting for a keyframe
        with pytest.raises(MissingReferenceError):
            dec.decode(b)
    y = dec.decode(blobs[100])  # keyframe after <= 100 frames
    assert y.shape == (frame, x.shape[1])
    # A fresh decoder (a receiver joining late) recovers at the same keyframe.
    late = get_codec(cfg)
    assert np.array_equal(late.decode(blobs[100]), y)


def test_bad_knobs():
    with pytest.raises(CodecError, match="'k'"):
        get_codec({"id": "nl-nearlossless", "k": -1})
    with pytest.raises(CodecError, match="'step'"):
        get_codec({"id": "nl-spike", "step": 0})
    with pytest.raises(CodecError, match="keyframe_interval"):
        get_codec({"id": "nl-spike", "keyframe_interval": 1000})
