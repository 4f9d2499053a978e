import numpy as np
import pytest

from neurolink.codecs import get_codec
from neurolink.codecs.lossy._common import MODELS_DIR
from neurolink.codecs.lossy.vq import DIM, MAX_BITS, MIN_BITS
from neurolink.errors import CodecError


def test_codebooks_ship_as_plain_npy():
    for bits in range(MIN_BITS, MAX_BITS + 1):
        cb = np.load(MODELS_DIR / f"vq_d{DIM}_b{bits}.npy", allow_pickle=False)
        assert cb.shape == (1 << bits, DIM) and cb.dtype == np.float32 and np.all(np.isfinite(cb))


def test_more_bits_is_more_accurate():
    rng = np.random.default_rng(0)
    x = np.rint(np.cumsum(rng.normal(0, 10, (15 * 100, 6)), axis=0)).astype(np.int16)
    errs = []
    for bits in (3, 8):
        enc, dec = get_codec({"id": "nl-vq", "bits": bits}), get_codec({"id": "nl-vq", "bits": bits})
        y = np.concatenate([dec.decode(enc.encode(x[i : i + 15])) for i in range(0, len(x), 15)])
        errs.append(np.mean((y.astype(float) - x) ** 2))
    assert errs[1] < errs[0]
    with pytest.raises(CodecError, match="'bits'"):
        get_codec({"id": "nl-vq", "bits": 9})
