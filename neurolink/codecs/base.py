"""The codec contract (numcodecs-style): plain JSON config with an ``id``, ``encode``/``decode`` on arrays.

Every payload starts with a small array header so ``decode(blob)`` can return the original shape and
dtype without side information, and so a hostile header cannot make the decoder allocate gigabytes.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from contextvars import ContextVar, Token
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

#: Text budget of a string frame under :func:`frame_decode_limit`: ``TEXT_BYTES_PER_VALUE`` per value, at least
#: ``MIN_TEXT_FRAME_BYTES`` per frame (capped at MAX_DECODED_BYTES). Why these: a string frame's size is not
#: known from its header as a numeric frame's is, and markers are short (event labels, JSON event records of a
#: few hundred bytes); 64 KiB per value and 1 MiB per frame leave a wide margin for long JSON markers while a
#: hostile marker frame costs the receiver at most ~1 MiB of inflation instead of 256 MiB.
TEXT_BYTES_PER_VALUE = 1 << 16
MIN_TEXT_FRAME_BYTES = 1 << 20

# (max decoded bytes, max string values) of the current decode call: see decode_limit
_DECODE_LIMIT: ContextVar[tuple[int, int]] = ContextVar("neurolink_decode_limit",
                                                        default=(MAX_DECODED_BYTES, MAX_STRING_VALUES))


class decode_limit:  # noqa: N801 - used as a function: ``with decode_limit(n): ...``
    """Bound every ``decode`` call inside the block to ``max_bytes`` of decoded array (and, for ``nl-text``,
    ``max_strings`` values; its ``max_bytes`` is then the text's UTF-8 size).

    Why: ``decode(blob)`` alone only knows the global MAX_DECODED_BYTES, so a small hostile payload could make
    a receiver inflate 256 MiB; the receiver knows the frame's size from the wire header and states it here.
    Decoders check it (:func:`current_decode_limit`) before their large allocation or inflation and raise a
    CodecError naming the codec and the limit. Limits only tighten: a nested block cannot raise the bound of
    an outer one, nor above the global limits. Codec intermediates (int64 codes, float64 transforms) may be
    a small constant multiple of the bound; it is the decoded array that is bounded. A contextvar, so threads
    and asyncio tasks each see their own. A class rather than a generator: it runs once per received frame."""

    __slots__ = ("_max_bytes", "_max_strings", "_token")

    def __init__(self, max_bytes: int, max_strings: int | None = None) -> None:
        self._max_bytes = max(0, int(max_bytes))
        self._max_strings = None if max_strings is None else max(0, int(max_strings))
        self._token: Token[tuple[int, int]] | None = None

    def __enter__(self) -> None:
        cur_bytes, cur_strings = _DECODE_LIMIT.get()
        strings = cur_strings if self._max_strings is None else min(cur_strings, self._max_strings)
        self._token = _DECODE_LIMIT.set((min(cur_bytes, self._max_bytes), strings))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _DECODE_LIMIT.reset(self._token)
            self._token = None


def current_decode_limit() -> int:
    """Most bytes the decoded array of the current decode call may hold (MAX_DECODED_BYTES outside
    :func:`decode_limit`)."""
    return _DECODE_LIMIT.get()[0]


def current_string_limit() -> int:
    """Most string values the current ``nl-text`` decode call may return (MAX_STRING_VALUES by default)."""
    return _DECODE_LIMIT.get()[1]


def check_decoded_size(codec_id: str, n_samples: int, n_channels: int, itemsize: int, where: str = "header") -> None:
    """CodecError if ``n_samples x n_channels`` values of ``itemsize`` bytes exceed the current decode limit:
    call it before allocating or inflating for them."""
    limit = current_decode_limit()
    if n_samples * max(n_channels, 1) * itemsize > limit:
        raise CodecError(f"{codec_id}: {where} claims {n_samples}x{n_channels} values of {itemsize} bytes, "
                         f"above the decode limit of {limit} bytes")


def frame_text_limit(n_values: int) -> int:
    """Text bytes a string frame of ``n_values`` values may decode to (see TEXT_BYTES_PER_VALUE)."""
    return min(MAX_DECODED_BYTES, max(MIN_TEXT_FRAME_BYTES, n_values * TEXT_BYTES_PER_VALUE))


_ITEMSIZE = {name: np.dtype(name).itemsize for name in DTYPE_CODES if name != "string"}


def frame_decode_limit(n_samples: int, n_channels: int, channel_format: str) -> decode_limit:
    """The :func:`decode_limit` of one wire frame: its exact size for numeric formats
    (``n_samples x n_channels x itemsize``); for ``string`` exactly ``n_samples x n_channels`` values and
    :func:`frame_text_limit` bytes of text."""
    n = n_samples * n_channels
    if channel_format == "string":
        return decode_limit(frame_text_limit(n), n)
    return decode_limit(n * _ITEMSIZE[channel_format])

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
    limit = current_decode_limit()
    if n_s * max(n_ch, 1) * dtype.itemsize > limit:
        raise CodecError(f"{codec_id}: header claims {n_s}x{n_ch} {dtype.name}, above the decode limit of {limit} bytes")
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
