"""FrameCipher: round trips, tamper/replay/foreign-key rejection, rotation, nonce separation."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolink.errors import SecurityError
from neurolink.security.aead import AEAD_NAMES, DIR_DATA, DIR_FEEDBACK, OVERHEAD, FrameCipher
from neurolink.wire import format as wire

KEY = bytes(range(32))


def _frame(seq: int = 0, payload: bytes = b"\x01\x02\x03\x04" * 8) -> bytes:
    return wire.pack_frame(7, seq, 123.5, 4, 4, "int16", 0, payload, wire.FLAG_KEYFRAME)


def _others() -> list[bytes]:
    h = wire.StreamHeader(7, "secret-name", "EEG", "sid", 1000.0, 4, "int16", desc_xml="<label>Cz</label>")
    fb = wire.Feedback(7, 3, 1.0, 0.5, 1e6, 2.0, 0.1, 0.0, 0.0, -1.0, 10, 0)
    return [wire.pack_stream_header(h), wire.pack_feedback(fb), wire.pack_clock(wire.ClockProbe(7, 0, 1.0, 0, 0)),
            wire.pack_clock(wire.ClockProbe(7, 1, 1.0, 2.0, 3.0))]


def test_roundtrip_every_message_type_and_sealed_frame_is_a_valid_frame():
    tx, rx = FrameCipher(KEY, 1), FrameCipher(KEY, 1)
    for m in [_frame(i) for i in range(3)] + _others():
        s = tx.seal(m)
        assert rx.open(s) == m
        assert len(s) == len(m) + OVERHEAD
    sealed = wire.parse_frame(tx.seal(_frame(9)))  # routers/archives can parse it without keys
    assert sealed.header.flags & wire.FLAG_ENCRYPTED and sealed.header.seq == 9


def test_plaintext_bytes_do_not_appear():
    x = np.random.default_rng(0).integers(-30000, 30000, (64, 16), dtype=np.int16)
    m = wire.pack_frame(1, 0, 0.0, 64, 16, "int16", 0, x.tobytes())
    s = FrameCipher(KEY, 1).seal(m)
    raw = x.tobytes()
    assert not any(raw[i:i + 8] in s for i in range(0, len(raw) - 8, 8))
    h = _others()[0]
    assert b"secret-name" in h and b"secret-name" not in FrameCipher(KEY, 1).seal(h)


def test_replay_duplicate_and_stale_rejected_out_of_order_accepted():
    tx, rx = FrameCipher(KEY, 1), FrameCipher(KEY, 1, replay_window=64)
    sealed = [tx.seal(_frame(i)) for i in range(200)]
    rx.open(sealed[5])
    rx.open(sealed[3])  # late but inside the window: fine
    with pytest.raises(SecurityError, match="replayed"):
        rx.open(sealed[5])
    rx.open(sealed[150])
    with pytest.raises(SecurityError, match="older than the replay window"):
        rx.open(sealed[50])
    rx.open(sealed[120])


def test_tampered_truncated_foreign_and_unencrypted_rejected():
    tx, rx = FrameCipher(KEY, 1), FrameCipher(KEY, 1)
    s = bytearray(tx.seal(_frame()))
    s[wire.FRAME_HEADER_SIZE + 30] ^= 1
    with pytest.raises(SecurityError, match="tampered"):  # CRC catches it first: still a SecurityError
        rx.open(bytes(s))
    with pytest.raises(SecurityError, match="truncated|tampered"):
        rx.open(tx.seal(_frame())[:50])
    with pytest.raises(SecurityError, match="authentication failed"):
        rx.open(FrameCipher(os.urandom(32), 1).seal(_frame()))
    with pytest.raises(SecurityError, match="unknown key id 9"):
        rx.open(FrameCipher(os.urandom(32), 9).seal(_frame()))
    with pytest.raises(SecurityError, match="unencrypted"):
        rx.open(_frame())
    # a forged frame with a recomputed CRC but the old tag still fails authentication
    good = tx.seal(_frame(1))
    forged = bytearray(good[:-4])
    forged[12] ^= 0xFF  # seq in the authenticated header
    with pytest.raises(SecurityError, match="authentication failed"):
        rx.open(bytes(forged) + wire._CRC.pack(zlib.crc32(bytes(forged))))


def test_rotation_old_key_id_still_opens():
    k1, k2 = os.urandom(32), os.urandom(32)
    old_tx = FrameCipher(k1, 1)
    rx = FrameCipher(k1, 1)
    tx = FrameCipher(k1, 1)
    in_flight = tx.seal(_frame(0))
    tx.rotate(2, k2)
    rx.add_key(2, k2)
    new = tx.seal(_frame(1))
    assert rx.open(new) == _frame(1) and rx.open(in_flight) == _frame(0)
    assert rx.open(old_tx.seal(_frame(2))) == _frame(2)
    rx.rotate(2)
    rx.remove_key(1)
    with pytest.raises(SecurityError, match="unknown key id 1"):
        rx.open(old_tx.seal(_frame(3)))
    with pytest.raises(SecurityError, match="active"):
        tx.remove_key(2)


def test_directions_never_share_nonces_and_role_blocks_reflection():
    c = FrameCipher(KEY, 1)
    data = [c.seal(_frame(i)) for i in range(3)]
    fb = [c.seal(m) for m in _others()[1:3]]
    env_off = wire.FRAME_HEADER_SIZE
    dirs_ctr = {(s[env_off + 1], s[env_off + 14:env_off + 22]) for s in data}
    dirs_ctr |= {(s[6 + 1], s[6 + 14:6 + 22]) for s in fb}
    assert len(dirs_ctr) == 5 and {d for d, _ in dirs_ctr} == {DIR_DATA, DIR_FEEDBACK}
    sender = FrameCipher(KEY, 1, role="sender")
    with pytest.raises(SecurityError, match="direction"):
        sender.open(data[0])  # a frame reflected back at the sender
    assert sender.open(fb[0]) == _others()[1]


def test_max_age_rejects_old_messages(monkeypatch):
    tx, rx = FrameCipher(KEY, 1), FrameCipher(KEY, 1, max_age_s=30)
    s = tx.seal(_frame())
    import neurolink.security.aead as aead

    real = aead.time.time
    monkeypatch.setattr(aead.time, "time", lambda: real() + 100)
    with pytest.raises(SecurityError, match="stale"):
        rx.open(s)


def test_bad_keys_rejected():
    with pytest.raises(SecurityError, match="32 bytes"):
        FrameCipher(b"short", 1)
    with pytest.raises(SecurityError, match="key id"):
        FrameCipher(KEY, -1)


_SET = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@_SET
@given(payload=st.binary(max_size=300), seq=st.integers(0, 2**64 - 1), ts=st.floats(-1e9, 1e9),
       n=st.integers(0, 1000), kid=st.integers(0, 2**32 - 1), aead=st.sampled_from(sorted(AEAD_NAMES)))
def test_property_frame_roundtrip(payload, seq, ts, n, kid, aead):
    m = wire.pack_frame(3, seq, ts, n, 2, "int16", 1, payload)
    c = FrameCipher(KEY, kid, aead=aead)
    assert c.open(c.seal(m)) == m


_SEALED = [FrameCipher(KEY, 4, aead=a).seal(m) for a in AEAD_NAMES for m in [_frame()] + _others()]


@_SET
@given(which=st.integers(0, len(_SEALED) - 1), data=st.data())
def test_property_any_bit_flip_raises_security_error(which, data):
    s = _SEALED[which]
    bit = data.draw(st.integers(0, 8 * len(s) - 1))
    b = bytearray(s)
    b[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SecurityError):
        FrameCipher(KEY, 4).open(bytes(b))


@_SET
@given(blob=st.binary(max_size=200))
def test_property_garbage_raises_security_error_only(blob):
    with pytest.raises(SecurityError):
        FrameCipher(KEY, 1).open(blob)
