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
