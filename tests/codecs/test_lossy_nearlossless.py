import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolink.codecs import get_codec


@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=30)),
       k=st.integers(0, 50))
def test_error_bound_property(x, k):
    enc, dec = get_codec({"id": "nl-nearlossless", "k": k}), get_codec({"id": "nl-nearlossless", "k": k})
    for part in (x, x[::-1].copy(), x):  # predicted frames too, not only keyframes
        y = dec.decode(enc.encode(part))
        assert np.max(np.abs(y.astype(np.int64) - part)) <= k


def test_k0_is_lossless_and_rate_falls_with_k(recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 400]
    sizes = []
    for k in (0, 2, 8, 32):
        enc, dec = get_codec({"id": "nl-nearlossless", "k": k}), get_codec({"id": "nl-nearlossless", "k": k})
        total = 0
        for i in range(0, x.shape[0], frame):
            b = enc.encode(x[i : i + frame])
            total += len(b)
            y = dec.decode(b)
            assert np.max(np.abs(y.astype(np.int64) - x[i : i + frame]), initial=0) <= k
        sizes.append(total)
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0] / 2


def test_float_bound():
    x = np.random.default_rng(2).normal(0, 100, (64, 2)).astype(np.float32)
    y = get_codec({"id": "nl-nearlossless", "k": 2}).decode(get_codec({"id": "nl-nearlossless", "k": 2}).encode(x))
    assert np.max(np.abs(y - x)) <= 2.5 + 1e-3
