"""nl-lossless through numcodecs and Zarr v3; read back in a fresh interpreter with plain zarr."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numcodecs
import numpy as np
import pytest

zarr = pytest.importorskip("zarr")


def test_numcodecs_registry_roundtrip():
    codec = numcodecs.get_codec({"id": "neurolink.lossless"})
    x = np.cumsum(np.random.default_rng(0).integers(-9, 10, (500, 7)), axis=0).astype(np.int16)
    assert np.array_equal(codec.decode(codec.encode(x)), x)
    assert codec.get_config() == {"id": "neurolink.lossless"}


def test_zarr_v3_write_read_subprocess(tmp_path, recording):
    from neurolink.codecs.numcodecs_adapter import NeurolinkLosslessZarr

    x, _fs = recording
    x = x[:4000]
    path = tmp_path / "rec.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = zarr.create_array(str(path), shape=x.shape, chunks=(1500, 40), dtype="int16",
                              serializer=NeurolinkLosslessZarr(), compressors=None)
        z[:] = x
        assert np.array_equal(zarr.open_array(str(path))[:], x)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, zarr; "
        f"a = zarr.open_array({str(path)!r})[:]; x = np.load({str(tmp_path / 'x.npy')!r}); "
        "sys.exit(0 if np.array_equal(a, x) else 3)"
    )
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
