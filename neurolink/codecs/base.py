"""The codec contract (numcodecs-style): plain JSON config with an ``id``, ``encode``/``decode`` on arrays.

Every payload starts with a small array header so ``decode(blob)`` can return the original shape and
dtype without side information, and so a hostile header cannot make the decoder allocate gigabytes.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from neurolink.errors import CodecError

#: dtype <-> one-byte code, shared with the wire format. ``string`` (LSL cf_string: markers, events) has no
#: fixed-size numpy dtype: its samples are object arrays of ``str``, coded only by ``nl-text``.
DTYPE_CODES: dict[str, int] = {"int16": 1, "int32": 2, "float32": 3, "float64": 4, "int8": 5, "int64": 6,
                               "string": 7}
#: numeric codes only: a numeric codec's array header with the string code is rejected as unknown.
CODE_DTYPES: dict[int, np.dtype] = {v: np.dtype(k) for k, v in DTYPE_CODES.items() if k != "string"}
STRING_CODE = DTYPE_CODES["string"]
#: Most string values (samples x channels) in one frame: each becomes a Python object on decode (~50 bytes
#: plus its text, ~0.5 us), so the bound is on the count, beside MAX_DECODED_BYTES on the text itself. A marker
#: frame holds one sample (at most 65535 channels); 2^18 bounds what a 60-byte hostile payload (zstd of empty
#: values) costs a receiver to ~0.15 s of CPU.
MAX_STRING_VALUES = 1 << 18

#: Largest array any decoder will allocate (bounded allocations on hostile input).
MAX_DECODED_BYTES = 1 << 28  # 256 MiB
MAX_CHANNELS = 65535

_ARRAY_HEADER = struct.Struct("<BBHI")  # dtype code, codec-private flags, n_channels, n_samples
ARRAY_HEADER_SIZE = _ARRAY_HEADER.size


def pack_array_header(x: np.ndarray, flags: int = 0) -> bytes:
    """Header carrying dtype and shape of a 2-D (samples, channels) array."""
    return _ARRAY_HEADER.pack(DTYPE_CODES[x.dtype.name], flags & 0xFF, x.shape[1], x.shape[0])


def unpack_array_header(blob: bytes | memoryview, codec_id: str) -> tuple[np.dtype, int, int, int]:
    """Parse and bound-check an array header: returns (dtype, flags, n_samples, n_channels)."""
    if len(blob) < ARRAY_HEADER_SIZE:
        raise CodecError(f"{codec_id}: payload of {len(blob)} bytes is shorter than its {ARRAY_HEADER_SIZE}-byte header")
    code, flags, n_ch, n_s = _ARRAY_HEADER.unpack_from(blob, 0)
    if code not in CODE_DTYPES:
        raise CodecError(f"{codec_id}: unknown dtype code {code} at offset 0")
    dtype = CODE_DTYPES[code]
    if n_s * max(n_ch, 1) * dtype.itemsize > MAX_DECODED_BYTES:
        raise CodecError(f"{codec_id}: header claims {n_s}x{n_ch} {dtype.name}, above the {MAX_DECODED_BYTES} byte limit")
    return dtype, flags, n_s, n_ch


def as_2d(x: Any, codec_id: str, allowed: tuple[str, ...]) -> np.ndarray:
    """Validate encoder input: a 2-D (samples, channels) array of an allowed dtype, C-contiguous."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise CodecError(f"{codec_id}: expected a 2-D (samples, channels) array, got shape {x.shape}")
    if x.dtype.name not in allowed:
        hint = " (quantisation belongs to the lossy family)" if x.dtype.kind == "f" else ""
        raise CodecError(f"{codec_id}: dtype {x.dtype.name} not supported, expected one of {list(allowed)}{hint}")
    if x.shape[1] > MAX_CHANNELS:
        raise CodecError(f"{codec_id}: {x.shape[1]} channels exceed the limit of {MAX_CHANNELS}")
    if x.nbytes > MAX_DECODED_BYTES:
        raise CodecError(f"{codec_id}: {x.nbytes} bytes exceed the {MAX_DECODED_BYTES} byte limit per call")
    return np.ascontiguousarray(x)


class Codec(ABC):
    """Base class of every codec.

    Subclasses set ``codec_id`` and ``lossless`` and implement ``encode``/``decode``/``get_config``.
    Streaming codecs (``streaming = True``) carry state across calls and emit keyframes; their
    decoders raise :class:`~neurolink.errors.MissingReferenceError` until they see a keyframe after a
    loss, so a receiver can always recover.
    """

    codec_id: ClassVar[str]
    lossless: ClassVar[bool] = True
    streaming: ClassVar[bool] = False
    #: dtypes accepted by ``encode``.
    dtypes: ClassVar[tuple[str, ...]] = ("int16", "int32")

    @abstractmethod
    def encode(self, x: np.ndarray) -> bytes:
        """Compress a (samples, channels) array."""

    @abstractmethod
    def decode(self, blob: bytes) -> np.ndarray:
        """Decompress to the same shape and dtype (bit-exact for lossless codecs)."""

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Plain JSON dict with an ``id`` key; ``get_codec(codec.get_config())`` round-trips."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        params = {k: v for k, v in config.items() if k != "id"}
        try:
            return cls(**params)
        except TypeError as exc:
            raise CodecError(f"codec {cls.codec_id!r}: bad parameters {sorted(params)}: {exc}") from exc

    def reset(self) -> None:  # noqa: B027 - optional hook, stateless codecs have nothing to reset
        """Forget cross-frame state (streaming codecs); the next encoded frame is a keyframe."""

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe (a receiver lost the reference). Codecs with learned
        state worth keeping (predictor fits) override this to keep it; the default forgets everything."""
        self.reset()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.get_config().items())))
