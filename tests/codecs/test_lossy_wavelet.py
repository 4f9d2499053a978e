import numpy as np

from neurolink.codecs import get_codec
from neurolink.codecs.lossy.wavelet import _forward, _inverse, _lengths


def test_haar_is_orthonormal_for_any_length():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 15, 16, 30, 37):
        v = rng.normal(size=n)
        w = v.copy()
        ls = _lengths(n)
        _forward(w, np.empty(n), ls, np.zeros(n, np.int64))
        assert np.isclose(np.sum(w**2), np.sum(v**2))
        _inverse(w, np.empty(n), ls)
        assert np.allclose(w, v)


def test_small_step_is_accurate_and_thresholding_drops_noise():
    rng = np.random.default_rng(1)
    x = np.rint(rng.normal(0, 30, (16 * 40, 3))).astype(np.int16)
    for step, bound in ((1.0, 3.0), (400.0, None)):
        enc, dec = get_codec({"id": "nl-wavelet", "step": step}), get_codec({"id": "nl-wavelet", "step": step})
        y = np.concatenate([dec.decode(enc.encode(x[i : i + 16])) for i in range(0, len(x), 16)]).astype(float)
        if bound:
            assert np.abs(y - x).max() <= bound
        else:  # every detail coefficient under the dead zone: each dyadic frame decodes to a constant
            assert np.all(np.ptp(y.reshape(40, 16, 3), axis=1) == 0)
