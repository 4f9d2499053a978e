"""Byte-level helpers for headers: LEB128 varints with bounds checks that raise CodecError."""

from __future__ import annotations

from neurolink.errors import CodecError


def put_uvarint(out: bytearray, v: int) -> None:
    if v < 0:
        raise ValueError("uvarint must be >= 0")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def put_svarint(out: bytearray, v: int) -> None:
    put_uvarint(out, (v << 1) if v >= 0 else ((-v) << 1) - 1)


class Reader:
    """Cursor over a header; every read checks the remaining length and names the field."""

    def __init__(self, blob: bytes | memoryview, codec_id: str, pos: int = 0) -> None:
        self.blob = blob
        self.pos = pos
        self.codec_id = codec_id

    def byte(self, field: str) -> int:
        if self.pos >= len(self.blob):
            raise CodecError(f"{self.codec_id}: payload truncated in field {field!r} at offset {self.pos}")
        b = self.blob[self.pos]
        self.pos += 1
        return b

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.blob):
            raise CodecError(f"{self.codec_id}: payload truncated in field {field!r} at offset {self.pos}")
        b = bytes(self.blob[self.pos : self.pos + n])
        self.pos += n
        return b

    def uvarint(self, field: str, max_value: int) -> int:
        start = self.pos
        v = 0
        shift = 0
        while True:
            b = self.byte(field)
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise CodecError(f"{self.codec_id}: varint too long in field {field!r} at offset {start}")
        if v > max_value:
            raise CodecError(f"{self.codec_id}: field {field!r} = {v} at offset {start} exceeds {max_value}")
        return v

    def svarint(self, field: str, max_abs: int) -> int:
        u = self.uvarint(field, 2 * max_abs + 1)
        return (u >> 1) if not u & 1 else -((u + 1) >> 1)
