"""Delta + zstd: the simple, dependable lossless baseline (first difference per channel, then zstd)."""

from __future__ import annotations

from typing import Any

import numpy as np
import zstandard

from neurolink.codecs._zstd import inflate_exact
from neurolink.codecs.base import ARRAY_HEADER_SIZE, Codec, as_2d, pack_array_header, unpack_array_header
from neurolink.errors import CodecError


class DeltaZstd(Codec):
    """Stateless per call: every frame decodes on its own."""

    codec_id = "delta-zstd"
    lossless = True
    dtypes = ("int8", "int16", "int32", "int64")

    def __init__(self, level: int = 3, delta: bool = True) -> None:
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 22:
            raise CodecError(f"delta-zstd: 'level' must be an int in [1, 22], got {level!r}")
        self.level = level
        self.delta = bool(delta)
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._dctx = zstandard.ZstdDecompressor()

    def encode(self, x: np.ndarray) -> bytes:
        x = as_2d(x, self.codec_id, self.dtypes)
        t = np.ascontiguousarray(x.T)  # channel-major: each channel's samples are adjacent
        if self.delta and t.shape[1] > 1:
            d = t.copy()
            d[:, 1:] = t[:, 1:] - t[:, :-1]  # wraps modulo 2^bits: exact inverse by cumsum
            t = d
        return pack_array_header(x) + self._cctx.compress(t.tobytes())

    def decode(self, blob: bytes) -> np.ndarray:
        dtype, _flags, n_s, n_ch = unpack_array_header(blob, self.codec_id)
        expected = n_s * n_ch * dtype.itemsize
        raw = inflate_exact(self._dctx, bytes(blob[ARRAY_HEADER_SIZE:]), expected,
                            f"delta-zstd: payload at offset {ARRAY_HEADER_SIZE}")
        t = np.frombuffer(raw, dtype=dtype).reshape(n_ch, n_s)
        if self.delta and n_s > 1:
            t = np.cumsum(t, axis=1, dtype=dtype)
        return np.ascontiguousarray(t.T)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "level": self.level, "delta": self.delta}
