"""Wire messages of the reliable archive path: archive frames (sender -> receiver) and acks (receiver -> sender).

Same conventions as wire v1 (``NLNK`` magic, version byte, type byte, little-endian, CRC32 of everything
before it, strict parsing naming the field and offset). See docs/wire-format.md.

* ``archive_frame`` (type 5) wraps one *complete* v1 frame message (its own header and CRC) so the archive
  copy of a frame can travel beside the live copy under the same stream id without a live receiver mistaking
  it for live data. ``oldest_seq`` tells the receiver the oldest sequence number the sender can still
  retransmit: anything older that it is missing is lost for good (spool overflow) and recorded as a gap;
  ``end_seq`` is one past the newest frame produced, so a receiver also learns of a lost tail.
* ``ack`` (type 6): cumulative ``next_seq`` (every frame below it is durably archived, the sender may free
  it) plus up to :data:`MAX_NACK_RANGES` NACK ranges ``(first_seq, count)`` to retransmit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from neurolink.errors import WireFormatError
from neurolink.wire import format as wire
from neurolink.wire.crc import crc32
from neurolink.wire.format import MAGIC, MSG_ACK, MSG_ARCHIVE_FRAME, WIRE_VERSION

MAX_NACK_RANGES = 256
_CRC = struct.Struct("<I")
_AF = struct.Struct("<4sBBQQ")  # prefix | oldest_seq u64 | end_seq u64 || inner frame message || crc32
_ACK = struct.Struct("<4sBBIQH")  # prefix | stream_id u32 | next_seq u64 | n_ranges u16 || ranges || crc32
_RANGE = struct.Struct("<QI")  # first_seq u64 | count u32


def _check(buf: bytes | memoryview, mtype: int, end: int) -> None:
    got = wire.message_type(buf)
    if got != mtype:
        raise WireFormatError("msg_type", 5, f"expected {wire.MSG_TYPES[mtype]} ({mtype}), got {wire.MSG_TYPES[got]} ({got})")
    if len(buf) < end + 4:
        raise WireFormatError("crc32", end, f"message truncated: {len(buf)} bytes, need {end + 4}")
    (crc,) = _CRC.unpack_from(buf, len(buf) - 4)
    actual = crc32(memoryview(buf)[:-4])
    if crc != actual:
        raise WireFormatError("crc32", len(buf) - 4, f"checksum mismatch (stored {crc:#010x}, computed {actual:#010x})")


# ------------------------------------------------------------------------------------- archive frame
@dataclass(frozen=True, slots=True)
class ArchiveFrame:
    oldest_seq: int
    end_seq: int  # one past the newest frame the sender has produced: lets the receiver NACK a lost tail
    frame: wire.Frame


def pack_archive_frame(frame_msg: bytes, oldest_seq: int, end_seq: int = 0) -> bytes:
    """Wrap a complete v1 frame message (already packed, flags included); end_seq 0 = not announced."""
    body = _AF.pack(MAGIC, WIRE_VERSION, MSG_ARCHIVE_FRAME, oldest_seq, end_seq) + frame_msg
    return body + _CRC.pack(crc32(body))


def parse_archive_frame(buf: bytes | memoryview) -> ArchiveFrame:
    _check(buf, MSG_ARCHIVE_FRAME, _AF.size + wire.FRAME_HEADER_SIZE + 4)
    (_m, _v, _t, oldest, end) = _AF.unpack_from(buf, 0)
    inner = memoryview(buf)[_AF.size:len(buf) - 4]
    try:
        fr = wire.parse_frame(inner)
    except WireFormatError as exc:  # re-base the offset onto the outer message
        raise WireFormatError(f"frame.{exc.field}", _AF.size + exc.offset, str(exc)) from None
    if oldest > fr.header.seq or (end and end <= fr.header.seq):
        raise WireFormatError("oldest_seq", 6, f"frame {fr.header.seq} outside the announced spool [{oldest}, {end})")
    return ArchiveFrame(oldest, end, fr)


# ----------------------------------------------------------------------------------------------- ack
@dataclass(frozen=True, slots=True)
class Ack:
    stream_id: int
    next_seq: int  # every frame with seq < next_seq is durably archived
    nacks: tuple[tuple[int, int], ...] = ()  # (first_seq, count) ranges to retransmit


def pack_ack(a: Ack) -> bytes:
    if len(a.nacks) > MAX_NACK_RANGES:
        raise WireFormatError("n_ranges", 18, f"{len(a.nacks)} NACK ranges exceed {MAX_NACK_RANGES}")
    body = _ACK.pack(MAGIC, WIRE_VERSION, MSG_ACK, a.stream_id, a.next_seq, len(a.nacks))
    body += b"".join(_RANGE.pack(s, n) for s, n in a.nacks)
    return body + _CRC.pack(crc32(body))


def parse_ack(buf: bytes | memoryview) -> Ack:
    _check(buf, MSG_ACK, _ACK.size)
    (_m, _v, _t, sid, nxt, n) = _ACK.unpack_from(buf, 0)
    if n > MAX_NACK_RANGES:
        raise WireFormatError("n_ranges", 18, f"{n} NACK ranges exceed {MAX_NACK_RANGES}")
    end = _ACK.size + n * _RANGE.size
    if len(buf) != end + 4:
        raise WireFormatError("ranges", _ACK.size, f"{n} ranges need {end + 4} bytes, message has {len(buf)}")
    ranges = []
    for i in range(n):
        s, c = _RANGE.unpack_from(buf, _ACK.size + i * _RANGE.size)
        if c == 0:
            raise WireFormatError("ranges", _ACK.size + i * _RANGE.size + 8, "empty NACK range")
        ranges.append((s, c))
    return Ack(sid, nxt, tuple(ranges))


def ranges_from_missing(missing: list[int] | tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Compress sorted missing sequence numbers into (first, count) ranges (at most MAX_NACK_RANGES)."""
    out: list[tuple[int, int]] = []
    for s in missing:
        if out and out[-1][0] + out[-1][1] == s:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        elif len(out) < MAX_NACK_RANGES:
            out.append((s, 1))
        else:
            break
    return tuple(out)
