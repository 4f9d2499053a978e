"""Archive-frame and ack messages: round trips, strict parsing, and wire v1 types untouched."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from neurolink.errors import WireFormatError
from neurolink.wire import ack as wack
from neurolink.wire import format as wire


def _frame(seq: int = 7, flags: int = wire.FLAG_KEYFRAME) -> bytes:
    return wire.pack_frame(3, seq, 12.5, 2, 1, "int16", 0, b"\x01\x02\x03", flags)


def test_archive_frame_roundtrip():
    af = wack.parse_archive_frame(wack.pack_archive_frame(_frame(), oldest_seq=5))
    assert af.oldest_seq == 5
    assert af.frame.header.seq == 7 and af.frame.header.stream_id == 3 and af.frame.payload == b"\x01\x02\x03"
    assert wire.message_type(wack.pack_archive_frame(_frame(), 0)) == wire.MSG_ARCHIVE_FRAME


def test_retransmit_flag_survives():
    from neurolink.reliable.sender import _mark_retransmit

    af = wack.parse_archive_frame(wack.pack_archive_frame(_mark_retransmit(_frame()), 0))
    assert af.frame.header.flags & wire.FLAG_RETRANSMIT and af.frame.header.keyframe


@given(hs.integers(0, 2**32 - 1), hs.integers(0, 2**64 - 1),
       hs.lists(hs.tuples(hs.integers(0, 2**64 - 1), hs.integers(1, 2**32 - 1)), max_size=wack.MAX_NACK_RANGES))
def test_ack_roundtrip(sid, nxt, ranges):
    a = wack.Ack(sid, nxt, tuple(ranges))
    assert wack.parse_ack(wack.pack_ack(a)) == a


@given(hs.binary(max_size=80))
def test_ack_parser_never_crashes(buf):
    try:
        wack.parse_ack(buf)
    except WireFormatError:
        pass


def test_corruption_names_field():
    msg = bytearray(wack.pack_ack(wack.Ack(1, 10, ((3, 2),))))
    msg[10] ^= 0xFF
    with pytest.raises(WireFormatError, match="crc32"):
        wack.parse_ack(bytes(msg))
    inner = bytearray(_frame())
    inner[-1] ^= 1  # inner CRC broken, outer recomputed: the inner frame is still checked
    with pytest.raises(WireFormatError, match="frame.crc32"):
        wack.parse_archive_frame(wack.pack_archive_frame(bytes(inner), 0))
    with pytest.raises(WireFormatError, match="msg_type"):
        wack.parse_ack(wack.pack_archive_frame(_frame(), 0))
    with pytest.raises(WireFormatError, match="n_ranges"):
        wack.pack_ack(wack.Ack(1, 0, tuple((i, 1) for i in range(wack.MAX_NACK_RANGES + 1))))


def test_ranges_from_missing():
    assert wack.ranges_from_missing([1, 2, 3, 7, 9, 10]) == ((1, 3), (7, 1), (9, 2))
    assert len(wack.ranges_from_missing(list(range(0, 2000, 2)))) == wack.MAX_NACK_RANGES


def test_v1_types_unchanged():
    assert (wire.MSG_STREAM_HEADER, wire.MSG_FRAME, wire.MSG_FEEDBACK, wire.MSG_CLOCK) == (1, 2, 3, 4)
    assert wire.parse_frame(_frame()).header.seq == 7
    assert np.uint8(wire.MSG_ACK) not in (1, 2, 3, 4)
