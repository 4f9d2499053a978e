import numpy as np

from neurolink.codecs import get_codec
from neurolink.codecs.testing import stream


def test_learned_basis_exploits_correlated_channels():
    """8 channels driven by 2 sources: after the first window the basis has 2 components and the rate drops."""
    rng = np.random.default_rng(0)
    src = rng.normal(0, 100, (15 * 400, 2))
    x = np.rint(src @ rng.normal(size=(2, 8)) + rng.normal(0, 1, (15 * 400, 8)) + 1000).astype(np.int16)
    y, _ = stream({"id": "nl-pca", "step": 8.0}, x, 15)
    enc = get_codec({"id": "nl-pca", "step": 8.0})
    sizes = [len(enc.encode(x[i : i + 15])) for i in range(0, len(x), 15)]
    assert np.mean(sizes[110:200]) < 0.5 * np.mean(sizes[1:100])  # identity window vs learned basis
    err = (y.astype(float) - x)[15 * 200 :]
    assert 10 * np.log10(np.var(x[15 * 200 :].astype(float), axis=0).sum() / np.mean(err**2) / 8) > 25
