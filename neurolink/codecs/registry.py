"""Codec registry: config dict ``{"id": ..., **params}`` -> codec instance.

Third parties extend it through the ``neurolink.codecs`` entry-point group (as numcodecs does).
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from neurolink.codecs.base import Codec
from neurolink.errors import CodecError, ConfigError

log = logging.getLogger(__name__)

_REGISTRY: dict[str, type[Codec]] = {}
_ENTRY_POINTS_LOADED = False


def register_codec(cls: type[Codec], codec_id: str | None = None) -> type[Codec]:
    """Register a codec class (usable as a decorator)."""
    cid = codec_id or cls.codec_id
    if not isinstance(cid, str) or not cid:
        raise CodecError(f"codec class {cls.__name__} has no codec_id")
    _REGISTRY[cid] = cls
    return cls


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group="neurolink.codecs"):
        if ep.name in _REGISTRY:
            continue
        try:
            register_codec(ep.load(), ep.name)
        except Exception as exc:  # a broken plugin must not break the built-in codecs
            log.warning("codec plugin %s failed to load: %s", ep.name, exc)


def list_codecs() -> list[str]:
    """Ids of every registered codec."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_codec(config: dict[str, Any]) -> Codec:
    """Instantiate a codec from its config dict."""
    if not isinstance(config, dict):
        raise ConfigError("codec", f"expected a table/dict with an 'id' key, got {type(config).__name__}")
    cid = config.get("id")
    if not isinstance(cid, str):
        raise ConfigError("codec.id", f"expected a string codec id, got {cid!r}")
    if cid not in _REGISTRY:
        _load_entry_points()
    if cid not in _REGISTRY:
        raise ConfigError("codec.id", f"unknown codec {cid!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[cid].from_config(dict(config))
