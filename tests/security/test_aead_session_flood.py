"""Forged messages with fresh session salts: key derivations are rate-limited and never evict real sessions."""

from __future__ import annotations

import time

import pytest

from neurolink.errors import SecurityError
from neurolink.security.aead import FrameCipher
from neurolink.wire import format as wire

KEY = bytes(range(32))
FORGED_KEY = bytes(32)  # the attacker knows the key id, not the key


def _frame(seq: int) -> bytes:
    return wire.pack_frame(7, seq, 1.0 + seq, 4, 4, "int16", 0, b"\x01\x02" * 16, wire.FLAG_KEYFRAME)


class _Counting(FrameCipher):
    """Counts HKDF derivations (the work a forged fresh-salt message costs before its tag is checked)."""

    derivations = 0

    def _derive(self, version, key_id, salt):
        self.derivations += 1
        return super()._derive(version, key_id, salt)


def _flood(rx: FrameCipher, n: int) -> int:
    attacker = FrameCipher(FORGED_KEY, 1, role="sender")
    rejected = 0
    for i in range(n):
        attacker._new_session()  # a fresh salt per message: every one is an unseen session
        with pytest.raises(SecurityError):
            rx.open(attacker.seal(_frame(i)))
        rejected += 1
    return rejected


def test_fresh_salt_flood_is_rate_limited_and_counted():
    rx = _Counting(KEY, 1, role="receiver", max_sessions=8)
    t0 = time.monotonic()
    assert _flood(rx, 2000) == 2000
    elapsed = time.monotonic() - t0
    # the bucket holds max_sessions tokens and refills at new_sessions_per_s: derivations are bounded by the time
    # the flood took, not by its size (a bound computed from the measured time, not a timing assertion)
    assert rx.derivations <= 8 + rx.new_sessions_per_s * elapsed + 1
    assert rx.derivations < 2000 and rx.sessions_rate_limited == 2000 - rx.derivations
    assert not rx._aead  # nothing forged was cached


def test_flood_does_not_evict_an_established_session_and_it_keeps_streaming():
    tx = FrameCipher(KEY, 1, role="sender")
    rx = _Counting(KEY, 1, role="receiver", max_sessions=4)
    assert rx.open(tx.seal(_frame(0))) == _frame(0)
    assert rx.derivations == 1
    _flood(rx, 500)
    before = rx.derivations
    for i in range(1, 50):  # the real session opens with its cached subkey: no derivation, no token needed
        assert rx.open(tx.seal(_frame(i))) == _frame(i)
    assert rx.derivations == before


def test_new_real_session_is_admitted_once_the_bucket_refills():
    rx = FrameCipher(KEY, 1, role="receiver", max_sessions=4)
    _flood(rx, 100)
    tx = FrameCipher(KEY, 1, role="sender")
    rx._new_at -= 1.0  # one second later (the bucket refills at new_sessions_per_s >= 1)
    assert rx.open(tx.seal(_frame(0))) == _frame(0)


def test_unknown_key_id_costs_no_token():
    rx = FrameCipher(KEY, 1, role="receiver", max_sessions=4)
    stranger = FrameCipher(KEY, 99, role="sender")
    for i in range(20):
        stranger._new_session()
        with pytest.raises(SecurityError, match="unknown key id 99"):
            rx.open(stranger.seal(_frame(i)))
    assert rx.sessions_rate_limited == 0
    assert rx.open(FrameCipher(KEY, 1, role="sender").seal(_frame(0))) == _frame(0)
