"""Key material: frame-encryption keyrings (TOML/JSON file or environment) and ZeroMQ CURVE certificates.

Keyring file (TOML; JSON with the same shape also works), written 0600 by ``neurolink keys generate``::

    active = 2                 # key id used for sealing
    [keys]                     # every id accepted for opening (keep the old id while rotating)
    1 = "hex:9f3c..."          # 32 bytes as hex:..., base64:... or bare 64 hex digits
    2 = "base64:q83v..."

Environment variable (default ``NEUROLINK_KEYS``): ``"2:hex:9f3c...,1:base64:..."``, first entry active.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from neurolink.errors import ConfigError
from neurolink.security.aead import KEY_SIZE, FrameCipher

DEFAULT_ENV = "NEUROLINK_KEYS"


@dataclass
class Keyring:
    """Frame-encryption keys by id; ``active`` seals, all open."""

    keys: dict[int, bytes] = field(default_factory=dict)
    active: int = 1

    def cipher(self, **kw: Any) -> FrameCipher:
        if self.active not in self.keys:
            raise ConfigError("security.active", f"active key id {self.active} is not in the keyring {sorted(self.keys)}")
        return FrameCipher(self.keys[self.active], self.active, keyring=self.keys, **kw)


def generate_key() -> bytes:
    """32 random bytes from the OS CSPRNG."""
    return os.urandom(KEY_SIZE)


def decode_key(text: str, where: str) -> bytes:
    """``hex:..``, ``base64:..`` or bare hex -> 32 bytes (ConfigError naming ``where`` otherwise)."""
    if not isinstance(text, str):
        raise ConfigError(where, f"expected a key string, got {type(text).__name__}")
    t = text.strip()
    try:
        if t.startswith("base64:"):
            key = base64.b64decode(t[7:], validate=True)
        else:
            key = bytes.fromhex(t[4:] if t.startswith("hex:") else t)
    except (ValueError, binascii.Error) as exc:
        raise ConfigError(where, f"not valid hex/base64: {exc}") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(where, f"key must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def _key_id(k: Any, where: str) -> int:
    try:
        kid = int(k)
    except (TypeError, ValueError):
        raise ConfigError(where, f"key id must be an integer, got {k!r}") from None
    if not 0 <= kid < 1 << 32:
        raise ConfigError(where, f"key id must be in [0, 2**32), got {kid}")
    return kid


def keyring_from_dict(d: dict[str, Any], source: str = "<dict>") -> Keyring:
    keys_t = d.get("keys")
    if not isinstance(keys_t, dict) or not keys_t:
        raise ConfigError("keys", "expected a non-empty [keys] table of id = \"hex:...\"", source=source)
    keys = {_key_id(k, f"keys.{k}"): decode_key(v, f"keys.{k}") for k, v in keys_t.items()}
    active = _key_id(d.get("active", max(keys)), "active")
    if active not in keys:
        raise ConfigError("active", f"key id {active} is not in [keys] {sorted(keys)}", source=source)
    return Keyring(keys, active)


def load_keyring(path: str | Path) -> Keyring:
    """Read a keyring TOML or JSON file (warns in the error path only; perms are the operator's job)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("security.keys_file", f"cannot read {p}: {exc.strerror}") from None
    try:
        d = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("security.keys_file", f"invalid {p.suffix.lstrip('.') or 'TOML'}: {exc}", source=str(p)) from None
    return keyring_from_dict(d, source=str(p))


def keyring_from_env(var: str = DEFAULT_ENV) -> Keyring | None:
    """Parse ``"id:key,id:key"`` from ``var`` (first entry active); None when unset."""
    raw = os.environ.get(var)
    if not raw:
        return None
    keys: dict[int, bytes] = {}
    active = None
    for i, item in enumerate(x for x in raw.split(",") if x.strip()):
        kid_s, sep, key_s = item.strip().partition(":")
        if not sep:
            raise ConfigError(f"${var}", f"entry {i} must look like 'ID:hex:KEY', got {item[:8]!r}...")
        kid = _key_id(kid_s, f"${var}[{i}]")
        keys[kid] = decode_key(key_s, f"${var}[{i}]")
        active = kid if active is None else active
    if active is None:
        raise ConfigError(f"${var}", "no keys")
    return Keyring(keys, active)


def keyring_to_toml(kr: Keyring) -> str:
    lines = ["# neurolink frame-encryption keyring: keep secret (0600). `active` seals, every id opens.",
             f"active = {kr.active}", "", "[keys]"]
    lines += [f'{kid} = "hex:{k.hex()}"' for kid, k in sorted(kr.keys.items())]
    return "\n".join(lines) + "\n"


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def write_keyring(path: str | Path, kr: Keyring) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _write_secret(p, keyring_to_toml(kr))
    return p


def rotate_keyring(path: str | Path) -> int:
    """Add a fresh key with the next id and make it active; returns the new id (old ids still open)."""
    kr = load_keyring(path)
    new = max(kr.keys) + 1
    kr.keys[new] = generate_key()
    kr.active = new
    write_keyring(path, kr)
    return new


def write_curve_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """A CURVE keypair as ZeroMQ certificate files: ``NAME.key`` (public) and ``NAME.key_secret`` (0600)."""
    import zmq.auth

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pub, sec = zmq.auth.create_certificates(d, name)
    os.chmod(sec, 0o600)
    return Path(pub), Path(sec)


def load_curve_key(value: str | Path, where: str, *, secret: bool) -> tuple[bytes, bytes | None]:
    """Public (and secret) key from a certificate file, or an inline 40-character Z85 public key."""
    import zmq.auth

    if isinstance(value, str) and len(value) == 40 and not os.path.exists(value) and not secret:
        return value.encode(), None
    p = Path(value)
    if not p.is_file():
        raise ConfigError(where, f"certificate file not found: {p} (create keys with `neurolink keys generate --out DIR`)")
    try:
        pub, sec = zmq.auth.load_certificate(p)
    except (ValueError, OSError) as exc:
        raise ConfigError(where, f"cannot load certificate {p}: {exc}") from None
    if secret and not sec:
        raise ConfigError(where, f"{p} holds no secret key (use the .key_secret file)")
    return pub, sec


def authorize_client(public_cert: str | Path, allowed_dir: str | Path) -> Path:
    """Copy a client's public certificate into the server's allowed-clients directory."""
    d = Path(allowed_dir)
    d.mkdir(parents=True, exist_ok=True)
    dst = d / Path(public_cert).name
    shutil.copyfile(public_cert, dst)
    return dst


__all__ = [
    "Keyring", "generate_key", "decode_key", "keyring_from_dict", "load_keyring", "keyring_from_env",
    "write_keyring", "rotate_keyring", "write_curve_keypair", "load_curve_key", "authorize_client",
]
