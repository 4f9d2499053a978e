"""Security layer: end-to-end frame encryption (aead), key material (keys), ZeroMQ CURVE (curve)."""

from __future__ import annotations

from typing import Any

from neurolink.errors import ConfigError
from neurolink.security.aead import FrameCipher


def cipher_from_config(cfg: dict[str, Any] | None, *, role: str | None = None) -> FrameCipher | None:
    """The ``[security]`` table -> a FrameCipher (``keys_file`` or ``keys_env``; ``aead`` picks the sealing
    algorithm, default "auto"), or None when neither key source is set."""
    from neurolink.security.keys import DEFAULT_ENV, keyring_from_env, load_keyring

    cfg = cfg or {}
    kw: dict[str, Any] = {"role": role}
    if "max_age_s" in cfg:
        kw["max_age_s"] = float(cfg["max_age_s"])
    if "aead" in cfg:
        kw["aead"] = str(cfg["aead"])
    if cfg.get("keys_file"):
        return load_keyring(cfg["keys_file"]).cipher(**kw)
    if cfg.get("keys_env"):
        var = DEFAULT_ENV if cfg["keys_env"] is True else str(cfg["keys_env"])
        kr = keyring_from_env(var)
        if kr is None:
            raise ConfigError("security.keys_env", f"environment variable {var} is not set")
        return kr.cipher(**kw)
    return None


__all__ = ["FrameCipher", "cipher_from_config"]
