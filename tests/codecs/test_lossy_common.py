"""Shared contract of the lossy family: shapes, dtypes, streams, keyframes, loss recovery, corruption."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from neurolink.codecs import get_codec
from neurolink.codecs.testing import (
    check_float32_and_1d,
    check_loss_recovery,
    check_roundtrip,
    check_stream_contract,
)
from neurolink.errors import CodecError

CONFIGS = [{"id": "nl-nearlossless", "k": 3}, {"id": "nl-spike", "step": 8.0}]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
@settings(max_examples=25, deadline=None)
@given(x=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40)))
def test_roundtrip_any_int16(cfg, x):
    check_roundtrip(get_codec(cfg), x, max_abs_error=cfg.get("k"))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_float32_and_1d(cfg):
    check_float32_and_1d(cfg, channels=3)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["id"])
def test_real_stream_and_loss_recovery(cfg, recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 250]
    blobs = check_stream_contract(cfg, x, frame)
    # frame 1 lost: no reference until the keyframe after <= 100 frames, where a late joiner recovers too
    y = check_loss_recovery(cfg, blobs)
    assert y.shape == (frame, x.shape[1])


def test_bad_knobs():
    with pytest.raises(CodecError, match="'k'"):
        get_codec({"id": "nl-nearlossless", "k": -1})
    with pytest.raises(CodecError, match="'step'"):
        get_codec({"id": "nl-spike", "step": 0})
    with pytest.raises(CodecError, match="keyframe_interval"):
        get_codec({"id": "nl-spike", "keyframe_interval": 1000})
