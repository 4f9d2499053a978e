"""The ladder: controller level -> codec config. Level 0 is lossless; higher levels are smaller."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomllib

from neurolink.errors import ConfigError

DEFAULT_LADDER = Path(__file__).resolve().parent.parent / "data" / "ladder.toml"


class Ladder(Sequence):
    """An immutable list of codec configs, with the name of each level for logs and plots."""

    def __init__(self, levels: list[dict[str, Any]], names: list[str] | None = None, source: str = "<dict>"):
        if not levels:
            raise ConfigError("level", "a ladder needs at least one level", source=source)
        self._levels = [dict(c) for c in levels]
        self.names = names or [str(c.get("id")) for c in levels]
        self.source = source

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._levels[i]
        return dict(self._levels[i])

    def __len__(self) -> int:
        return len(self._levels)

    def codecs(self) -> list:
        from neurolink.codecs.registry import get_codec

        return [get_codec(c) for c in self._levels]


def load_ladder(path: str | Path | None = None, *, validate: bool = True) -> Ladder:
    """Load a ladder TOML (``[[level]]`` tables with a ``codec`` table each); default: the packaged one."""
    p = Path(path) if path is not None else DEFAULT_LADDER
    src = str(p)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("ladder", f"file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("ladder", f"invalid TOML: {exc}", source=src) from None
    levels = data.get("level")
    if not isinstance(levels, list) or not levels:
        raise ConfigError("level", "expected one or more [[level]] tables", source=src)
    configs, names = [], []
    for i, lvl in enumerate(levels):
        if not isinstance(lvl, dict) or not isinstance(lvl.get("codec"), dict):
            raise ConfigError(f"level[{i}].codec", "expected a codec table with an 'id'", source=src)
        configs.append(dict(lvl["codec"]))
        names.append(str(lvl.get("name", lvl["codec"].get("id"))))
    ladder = Ladder(configs, names, source=src)
    if validate:
        from neurolink.codecs.registry import get_codec

        for i, cfg in enumerate(configs):
            try:
                codec = get_codec(cfg)
            except Exception as exc:
                raise ConfigError(f"level[{i}].codec", str(exc), source=src) from None
            if i == 0 and not codec.lossless:
                raise ConfigError("level[0].codec", f"level 0 must be lossless, got {cfg['id']!r}", source=src)
    return ladder
