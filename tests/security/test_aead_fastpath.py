"""FrameCipher fast paths used by the daemons: seal_frame and open_parsed match seal/open byte for byte."""

from __future__ import annotations

import os
import zlib

import pytest

import neurolink.security.aead as aead
from neurolink.errors import SecurityError
from neurolink.security.aead import FrameCipher
from neurolink.wire import format as wire

KEY = bytes(range(32))
FIELDS = (7, 41, 123.5, 30, 64, "int16", 2)


@pytest.fixture
def frozen_time(monkeypatch):
    monkeypatch.setattr(aead.time, "time", lambda: 1_700_000_000.0)


def _pair() -> tuple[FrameCipher, FrameCipher]:
    a, b = FrameCipher(KEY, 1), FrameCipher(KEY, 1)
    b.salt = a.salt  # same session and counters: both must produce identical bytes
    return a, b


@pytest.mark.parametrize("flags", [0, wire.FLAG_KEYFRAME])
@pytest.mark.parametrize("payload", [b"", b"\x01\x02\x03", os.urandom(30_000)])
def test_seal_frame_equals_seal_of_packed_frame(frozen_time, flags, payload):
    a, b = _pair()
    for _ in range(3):  # counters advance alike
        assert a.seal_frame(*FIELDS, payload, flags) == b.seal(wire.pack_frame(*FIELDS, payload, flags))


def test_open_parsed_matches_open_and_parse(frozen_time):
    tx = FrameCipher(KEY, 1, role="sender")
    payload = os.urandom(2000)
    sealed = tx.seal_frame(*FIELDS, payload, wire.FLAG_KEYFRAME)
    assert wire.parse_frame(sealed).header.flags & wire.FLAG_ENCRYPTED  # still a valid wire-v1 frame
    f = FrameCipher(KEY, 1, role="receiver").open_parsed(sealed)
    ref = wire.parse_frame(FrameCipher(KEY, 1, role="receiver").open(sealed))
    assert isinstance(f, wire.Frame) and f == ref and f.payload == payload
    assert not f.header.flags & wire.FLAG_ENCRYPTED and f.header.payload_len == len(payload)
    # other message types come back as plaintext wire bytes, as with open()
    clock = wire.pack_clock(wire.ClockProbe(7, 1, 1.0, 2.0, 3.0))
    assert FrameCipher(KEY, 1, role="receiver").open_parsed(tx.seal(clock)) == clock


def test_open_parsed_rejects_tampering_and_replay():
    tx, rx = FrameCipher(KEY, 1, role="sender"), FrameCipher(KEY, 1, role="receiver")
    sealed = tx.seal_frame(*FIELDS, b"x" * 100)
    bad = bytearray(sealed)
    bad[60] ^= 1
    body = bytes(bad[:-4])
    with pytest.raises(SecurityError, match="authentication failed"):
        rx.open_parsed(body + wire._CRC.pack(zlib.crc32(body)))
    rx.open_parsed(sealed)
    with pytest.raises(SecurityError, match="replayed"):
        rx.open_parsed(sealed)
    with pytest.raises(SecurityError, match="already sealed"):
        tx.seal_frame(*FIELDS, b"x", wire.FLAG_ENCRYPTED)
