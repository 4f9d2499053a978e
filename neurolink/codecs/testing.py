"""Shared codec test kit: every codec's tests call these (as numcodecs' ``tests/common.py``).

Third-party codecs can use it too: ``from neurolink.codecs.testing import check_roundtrip``.
"""

from __future__ import annotations

import json

import numpy as np

from neurolink.codecs.base import Codec
from neurolink.codecs.registry import get_codec
from neurolink.errors import CodecError


def check_config_roundtrip(codec: Codec) -> None:
    cfg = codec.get_config()
    assert isinstance(cfg.get("id"), str)
    assert json.loads(json.dumps(cfg)) == cfg, "config must be plain JSON"
    again = get_codec(cfg)
    assert again.get_config() == cfg


def check_roundtrip(codec: Codec, x: np.ndarray, *, max_abs_error: float | None = None) -> np.ndarray:
    """Encode then decode with a *fresh* decoder instance; lossless codecs must be bit-exact."""
    blob = codec.encode(x)
    assert isinstance(blob, (bytes, bytearray)), "encode must return bytes"
    dec = get_codec(codec.get_config())
    y = dec.decode(bytes(blob))
    x2 = x if x.ndim == 2 else x[:, None]
    assert y.shape == x2.shape, f"shape {y.shape} != {x2.shape}"
    assert y.dtype == x2.dtype, f"dtype {y.dtype} != {x2.dtype}"
    if codec.lossless:
        assert np.array_equal(y, x2), "lossless codec is not bit-exact"
    elif max_abs_error is not None:
        err = np.max(np.abs(y.astype(np.float64) - x2.astype(np.float64))) if x2.size else 0.0
        assert err <= max_abs_error, f"max abs error {err} > {max_abs_error}"
    return y


def check_stream_roundtrip(codec: Codec, x: np.ndarray, frame: int) -> None:
    """Streaming use: consecutive frames through one encoder and one decoder stay exact (lossless)."""
    enc = get_codec(codec.get_config())
    dec = get_codec(codec.get_config())
    for start in range(0, x.shape[0], frame):
        part = x[start : start + frame]
        y = dec.decode(enc.encode(part))
        if codec.lossless:
            assert np.array_equal(y, part), f"frame at {start} not bit-exact"
        else:
            assert y.shape == part.shape


def check_corruption(codec: Codec, x: np.ndarray, *, seed: int = 0, trials: int = 50) -> None:
    """Truncated or bit-flipped payloads raise CodecError or decode to the right shape: never crash."""
    rng = np.random.default_rng(seed)
    blob = bytearray(codec.encode(x))
    cases: list[bytes] = [b"", bytes(blob[:1]), bytes(blob[: len(blob) // 2]), bytes(blob[:-1])]
    for _ in range(trials):
        b = bytearray(blob)
        if b:
            for _k in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        cases.append(bytes(b))
    for case in cases:
        dec = get_codec(codec.get_config())
        try:
            y = dec.decode(case)
        except CodecError:
            continue
        assert isinstance(y, np.ndarray) and y.ndim == 2
