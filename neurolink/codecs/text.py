"""nl-text: lossless codec for LSL string streams (cf_string: event markers, JSON, stimulus labels).

Why a codec of its own: markers are Python ``str`` objects (an object array), not numbers, so none of
the numeric codecs apply; and they must arrive exact (a marker is its text), so only a lossless coding
will do. Markers are short and rare, so the layout is plain and linear rather than clever:

    array header (8 bytes, the numeric layout: dtype code ``string``, flags, n_channels u16, n_samples u32)
    body: one LEB128 varint per value (its UTF-8 byte length, sample-major order), then the UTF-8 bytes

Flag bit 0: the body is one zstd frame (only when that is smaller; typically regular-rate string streams or
long JSON markers). Decoding is strict: wrong dtype code, unknown flags, a header above MAX_STRING_VALUES
values, lengths that do not add up to the body, trailing bytes, invalid UTF-8 or a zstd frame declaring more
than MAX_DECODED_BYTES all raise :class:`~neurolink.errors.CodecError` before anything large is allocated.
Under :func:`~neurolink.codecs.base.decode_limit` (the receiver states each frame's) the value count and the
text size (UTF-8 body, as declared by its zstd frame) are bounded by that call's limits instead.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import zstandard

from neurolink.codecs.base import (
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    MAX_STRING_VALUES,
    STRING_CODE,
    Codec,
    current_decode_limit,
    current_string_limit,
)
from neurolink.codecs.lossless.varint import Reader, put_uvarint
from neurolink.errors import CodecError

_HEAD = struct.Struct("<BBHI")  # dtype code, flags, n_channels, n_samples: the layout of base.pack_array_header
FLAG_ZSTD = 1
KNOWN_FLAGS = FLAG_ZSTD
ZSTD_MIN_BODY = 64  # below this a zstd frame (>= 9 bytes of overhead) never pays
_MAX_WINDOW = 1 << 24  # our encoder's windows are far smaller; a hostile frame header must not ask for more


def as_text_2d(x: Any, codec_id: str = "nl-text") -> np.ndarray:
    """Encoder input as a 2-D (samples, channels) object array of ``str``.

    Accepts object arrays, numpy unicode arrays and (nested) lists; a 1-D input is one channel. Lists go
    through ``dtype=object`` so no value is truncated or padded (a ``<U`` array drops trailing NULs)."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "U":
            x = x.astype(object)
        elif x.dtype != object:
            raise CodecError(f"{codec_id}: dtype {x.dtype.name} not supported, expected str values (object array)")
    else:
        try:
            x = np.array(x, dtype=object)
        except ValueError as exc:
            raise CodecError(f"{codec_id}: input is not a (samples, channels) table of str: {exc}") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise CodecError(f"{codec_id}: expected a 2-D (samples, channels) array, got shape {x.shape}")
    if x.shape[1] > MAX_CHANNELS:
        raise CodecError(f"{codec_id}: {x.shape[1]} channels exceed the limit of {MAX_CHANNELS}")
    if x.size > MAX_STRING_VALUES:
        raise CodecError(f"{codec_id}: {x.size} values exceed the limit of {MAX_STRING_VALUES} per call")
    return x


def text_nbytes(x: np.ndarray) -> int:
    """UTF-8 size of a string frame's text (its "raw bytes" for ratios: an object array's nbytes counts pointers)."""
    return sum(len(v.encode("utf-8", "surrogatepass")) for v in x.ravel().tolist())


class NlText(Codec):
    """Stateless: every frame decodes on its own (a lost marker never spoils the next one)."""

    codec_id = "nl-text"
    lossless = True
    dtypes = ("string",)

    def __init__(self, level: int = 3) -> None:
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 22:
            raise CodecError(f"nl-text: 'level' must be an int in [1, 22], got {level!r}")
        self.level = level
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._dctx = zstandard.ZstdDecompressor(max_window_size=_MAX_WINDOW)

    def encode(self, x: Any) -> bytes:
        a = as_text_2d(x, self.codec_id)
        n_s, n_ch = a.shape
        lens = bytearray()
        parts = []
        for i, v in enumerate(a.ravel().tolist()):
            if not isinstance(v, str):
                raise CodecError(f"nl-text: value {i} (sample {i // n_ch}, channel {i % n_ch}) is "
                                 f"{type(v).__name__}, expected str")
            try:
                b = v.encode("utf-8")
            except UnicodeEncodeError as exc:  # lone surrogates: no UTF-8 form, the receiver could not rebuild it
                raise CodecError(f"nl-text: value {i} (sample {i // n_ch}, channel {i % n_ch}) is not encodable "
                                 f"as UTF-8: {exc.reason}") from None
            put_uvarint(lens, len(b))
            parts.append(b)
        body = bytes(lens) + b"".join(parts)
        if len(body) > MAX_DECODED_BYTES:
            raise CodecError(f"nl-text: {len(body)} bytes of text exceed the {MAX_DECODED_BYTES} byte limit per call")
        flags = 0
        if len(body) >= ZSTD_MIN_BODY:
            packed = self._cctx.compress(body)  # writes the content size: the decoder bounds on it
            if len(packed) < len(body):
                body, flags = packed, FLAG_ZSTD
        return _HEAD.pack(STRING_CODE, flags, n_ch, n_s) + body

    def decode(self, blob: bytes) -> np.ndarray:
        if len(blob) < _HEAD.size:
            raise CodecError(f"nl-text: payload of {len(blob)} bytes is shorter than its {_HEAD.size}-byte header")
        code, flags, n_ch, n_s = _HEAD.unpack_from(blob, 0)
        if code != STRING_CODE:
            raise CodecError(f"nl-text: dtype code {code} at offset 0 is not string ({STRING_CODE})")
        if flags & ~KNOWN_FLAGS:
            raise CodecError(f"nl-text: unknown flag bits {flags & ~KNOWN_FLAGS:#04x} at offset 1")
        n = n_s * n_ch
        max_values = current_string_limit()
        if n > max_values or n_s > MAX_STRING_VALUES:
            raise CodecError(f"nl-text: header claims {n_s}x{n_ch} values, above the limit of {max_values} values")
        body = bytes(blob[_HEAD.size:])
        if flags & FLAG_ZSTD:
            body = self._inflate(body)
        elif len(body) > current_decode_limit():
            raise CodecError(f"nl-text: {len(body)} bytes of text, above the decode limit of {current_decode_limit()} bytes")
        vals = np.empty(n, dtype=object)
        # lengths: one varint per value, each bounded by what is left of the body
        rd = Reader(body, self.codec_id)
        end = len(body)
        lens = [rd.uvarint("value length", end - rd.pos) for _ in range(n)]
        pos = rd.pos
        if sum(lens) != end - pos:
            raise CodecError(f"nl-text: lengths add up to {sum(lens)} bytes, the body holds {end - pos} after them "
                             f"(truncated or trailing bytes)")
        for i, ln in enumerate(lens):
            try:
                vals[i] = body[pos:pos + ln].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CodecError(f"nl-text: value {i} (sample {i // max(n_ch, 1)}, channel {i % max(n_ch, 1)}) at body "
                                 f"offset {pos} is not valid UTF-8: {exc.reason}") from None
            pos += ln
        return vals.reshape(n_s, n_ch)

    def _inflate(self, packed: bytes) -> bytes:
        """One complete zstd frame, no bytes after it, declaring at most the decode limit (MAX_DECODED_BYTES
        by default): checked before inflating."""
        limit = current_decode_limit()
        try:
            declared = zstandard.frame_content_size(packed)
            if declared < 0 or declared > limit:
                raise CodecError(f"nl-text: zstd frame at offset {_HEAD.size} declares {declared} bytes "
                                 f"(must be known and within the decode limit of {limit} bytes)")
            dobj = self._dctx.decompressobj()
            body = dobj.decompress(packed)
        except zstandard.ZstdError as exc:
            raise CodecError(f"nl-text: corrupt zstd body at offset {_HEAD.size}: {exc}") from None
        if not dobj.eof or dobj.unused_data or len(body) != declared:
            raise CodecError(f"nl-text: zstd body at offset {_HEAD.size} is truncated or has trailing bytes "
                             f"({len(body)} of {declared} bytes, {len(dobj.unused_data)} left over)")
        return body

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "level": self.level}
