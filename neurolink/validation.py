"""Validation helpers whose messages name the parameter, the allowed values and what was given."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from neurolink.errors import ConfigError


def check_type(key: str, value: Any, types: type | tuple[type, ...], *, source: str | None = None) -> Any:
    """Return ``value`` if it is an instance of ``types`` (bool is never accepted as a number)."""
    tt = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in tt:
        ok = False
    else:
        ok = isinstance(value, tt)
    if not ok:
        names = " or ".join(t.__name__ for t in tt)
        raise ConfigError(key, f"expected {names}, got {type(value).__name__} {value!r}", source=source)
    return value


def check_range(
    key: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    source: str | None = None,
) -> Any:
    """Return a number within [lo, hi]."""
    check_type(key, value, (int, float), source=source)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else repr(lo)
        hi_s = "inf" if hi is None else repr(hi)
        raise ConfigError(key, f"expected a value in [{lo_s}, {hi_s}], got {value!r}", source=source)
    return value


def check_choice(key: str, value: Any, allowed: Iterable[Any], *, source: str | None = None) -> Any:
    """Return ``value`` if it is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(key, f"expected one of {allowed}, got {value!r}", source=source)
    return value


def check_keys(
    section: str, mapping: Mapping[str, Any], allowed: Iterable[str], *, source: str | None = None
) -> None:
    """Reject unknown keys (typos must not be silently ignored)."""
    allowed = set(allowed)
    for k in mapping:
        if k not in allowed:
            key = f"{section}.{k}" if section else k
            raise ConfigError(key, f"unknown key; allowed keys are {sorted(allowed)}", source=source)
