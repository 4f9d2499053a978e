"""The envelope's AEAD choice: AES-256-GCM and ChaCha20-Poly1305 both seal; every endpoint opens both."""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from neurolink.config import validate_sender
from neurolink.errors import ConfigError, SecurityError
from neurolink.security import cipher_from_config
from neurolink.security.aead import (
    AEAD_NAMES,
    ENV_AESGCM,
    ENV_CHACHA,
    FrameCipher,
    hardware_aes,
    resolve_aead,
)
from neurolink.security.keys import Keyring, write_keyring
from neurolink.wire import format as wire

KEY = os.urandom(32)


def _frame(seq: int = 0) -> bytes:
    return wire.pack_frame(3, seq, 10.0, 2, 4, "int16", 0, bytes(range(16)), 0)


def _version(sealed: bytes) -> int:
    return sealed[wire.FRAME_HEADER_SIZE]  # first byte of the envelope header


@pytest.mark.parametrize("tx_alg", sorted(AEAD_NAMES))
@pytest.mark.parametrize("rx_alg", ["auto", *sorted(AEAD_NAMES)])
def test_each_algorithm_opens_at_every_receiver(tx_alg, rx_alg):
    tx, rx = FrameCipher(KEY, 1, aead=tx_alg), FrameCipher(KEY, 1, aead=rx_alg, role="receiver")
    sealed = tx.seal_frame(3, 0, 10.0, 2, 4, "int16", 0, bytes(range(16)))
    assert _version(sealed) == AEAD_NAMES[tx_alg] and tx.algorithm == tx_alg
    assert rx.open(sealed) == _frame()
    fr = rx.open_parsed(tx.seal(_frame(1)))
    assert isinstance(fr, wire.Frame) and fr.payload == bytes(range(16)) and fr.header.seq == 1
    assert not fr.header.flags & wire.FLAG_ENCRYPTED and fr.header.payload_len == 16


def test_version_byte_is_authenticated_and_subkeys_differ():
    # relabelling an AES-GCM message as ChaCha (or back) must fail: the byte is associated data and each
    # algorithm has its own subkey, so neither a downgrade nor a cross-algorithm replay opens
    for alg, other in (("aes-256-gcm", ENV_CHACHA), ("chacha20-poly1305", ENV_AESGCM)):
        b = bytearray(FrameCipher(KEY, 1, aead=alg).seal(_frame()))
        b[wire.FRAME_HEADER_SIZE] = other
        body = bytes(b[:-4])
        with pytest.raises(SecurityError, match="authentication failed"):
            FrameCipher(KEY, 1).open(body + struct.pack("<I", zlib.crc32(body)))


def test_unknown_version_and_bad_names_rejected():
    b = bytearray(FrameCipher(KEY, 1).seal(_frame()))
    b[wire.FRAME_HEADER_SIZE] = 9
    body = bytes(b[:-4])
    with pytest.raises(SecurityError, match="unsupported envelope version 9"):
        FrameCipher(KEY, 1).open(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(SecurityError, match="aead must be"):
        resolve_aead("rot13")
    with pytest.raises(SecurityError, match="aead must be"):
        FrameCipher(KEY, 1, aead="aes-128-cbc")


def test_auto_follows_the_cpu():
    assert resolve_aead("auto") == (ENV_AESGCM if hardware_aes() else ENV_CHACHA)
    assert isinstance(hardware_aes(), bool)


def test_config_key_is_validated_and_reaches_the_cipher(tmp_path):
    path = write_keyring(tmp_path / "k.toml", Keyring({1: KEY}, 1))
    stream = [{"id": 1, "source": {"kind": "lsl", "type": "EEG"}}]
    with pytest.raises(ConfigError, match="security.aead"):
        validate_sender({"security": {"keys_file": str(path), "aead": "des"}, "stream": stream})
    cfg = validate_sender({"security": {"keys_file": str(path), "aead": "chacha20-poly1305"}, "stream": stream})
    c = cipher_from_config(cfg["security"], role="sender")
    assert c is not None and c.algorithm == "chacha20-poly1305"
    assert cipher_from_config({"keys_file": str(path)}, role="sender").version == resolve_aead("auto")


def test_receiver_answers_in_its_senders_algorithm_and_in_chacha_before_hearing_one():
    # an upgraded receiver must not cut off an older sender (which opens version 1 only)
    tx, rx = FrameCipher(KEY, 1, aead="aes-256-gcm", role="sender"), FrameCipher(KEY, 1, aead="aes-256-gcm", role="receiver")
    probe = wire.pack_clock(wire.ClockProbe(3, 0, 1.0, 0, 0))
    assert rx.seal(probe)[6] == ENV_CHACHA  # nothing heard yet: the version every release opens
    rx.open(tx.seal(_frame()))
    sealed = rx.seal(probe)
    assert sealed[6] == ENV_AESGCM and tx.open(sealed) == probe
    old_style = FrameCipher(KEY, 1, aead="chacha20-poly1305", role="sender")
    rx.open(old_style.seal(_frame(5)))
    assert rx.seal(probe)[6] == ENV_CHACHA


def test_new_bytes_under_a_known_key_id_replace_the_cached_subkeys():
    k2 = os.urandom(32)
    tx, rx = FrameCipher(KEY, 1), FrameCipher(KEY, 1)
    rx.open(tx.seal(_frame(0)))  # the session's subkey is cached on both ends
    tx.add_key(1, k2)
    rx.add_key(1, k2)  # e.g. a leaked key replaced in place: live sessions must stop using it
    rx.open(tx.seal(_frame(1)))
    with pytest.raises(SecurityError, match="authentication failed"):
        rx.open(FrameCipher(KEY, 1).seal(_frame(2)))


def test_sessions_rekey_after_their_message_budget_and_in_a_forked_child(monkeypatch):
    from neurolink.security import aead as mod

    monkeypatch.setattr(mod, "REKEY_MESSAGES", 3)
    tx, rx = FrameCipher(KEY, 1), FrameCipher(KEY, 1)
    salts = set()
    for i in range(7):
        s = tx.seal(_frame(i))
        salts.add(s[wire.FRAME_HEADER_SIZE + 6:wire.FRAME_HEADER_SIZE + 14])
        assert rx.open(s) == _frame(i)
    assert len(salts) == 3  # 3 + 3 + 1 messages
    monkeypatch.setattr(mod, "REKEY_MESSAGES", 1 << 24)
    before = tx.salt
    monkeypatch.setattr(mod.os, "getpid", lambda: -1)  # as in a child after fork(): never the parent's nonces
    rx.open(tx.seal(_frame(8)))
    assert tx.salt != before


def test_the_same_message_opened_from_two_threads_passes_once():
    import threading

    tx = FrameCipher(KEY, 1)
    for _ in range(50):
        rx, msg, ok = FrameCipher(KEY, 1), tx.seal(_frame()), []
        go = threading.Barrier(2)

        def open_it(rx=rx, msg=msg, ok=ok, go=go):
            go.wait()
            try:
                rx.open(msg)
                ok.append(1)
            except SecurityError:
                pass

        ts = [threading.Thread(target=open_it) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(ok) == 1
