import numpy as np
import pytest

from neurolink.codecs import get_codec
from neurolink.codecs.lossy.cs import matrices
from neurolink.errors import CodecError


def test_matrix_is_seeded_not_sent():
    assert np.array_equal(matrices(15, 8, 0)[0], matrices(15, 8, 0)[0])
    assert not np.array_equal(matrices(15, 8, 0)[0], matrices(15, 8, 1)[0])


def test_recovers_a_sparse_spike():
    """A frame holding one spike atom is recovered from 8 of 15 measurements."""
    x = np.full((15 * 3, 2), 100, np.int16)
    x[15 + 7, 0] += 400
    enc, dec = get_codec({"id": "nl-cs", "m": 8, "qstep": 1.0}), get_codec({"id": "nl-cs", "m": 8, "qstep": 1.0})
    y = np.concatenate([dec.decode(enc.encode(x[i : i + 15])) for i in range(0, len(x), 15)])
    assert np.argmax(y[15:30, 0]) == 7 and abs(int(y[22, 0]) - 500) < 40
    with pytest.raises(CodecError, match="exceed"):
        get_codec({"id": "nl-cs"}).encode(np.zeros((1000, 1), np.int16))
