import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolink.codecs import get_codec
from neurolink.codecs.testing import (
    check_config_roundtrip,
    check_corruption,
    check_roundtrip,
    check_stream_roundtrip,
)
from neurolink.errors import CodecError


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.int16, np.int32]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=64),
    )
)
def test_roundtrip_property(x):
    check_roundtrip(get_codec({"id": "delta-zstd"}), x)


def test_real_data(recording):
    x, _fs = recording
    codec = get_codec({"id": "delta-zstd", "level": 3})
    check_config_roundtrip(codec)
    check_roundtrip(codec, x)
    check_stream_roundtrip(codec, x[:3000], frame=15)
    check_corruption(codec, x[:300])


def test_rejects_float():
    with pytest.raises(CodecError, match="lossy family"):
        get_codec({"id": "delta-zstd"}).encode(np.zeros((4, 2), np.float32))


def test_bad_level():
    with pytest.raises(CodecError, match="level"):
        get_codec({"id": "delta-zstd", "level": 99})
