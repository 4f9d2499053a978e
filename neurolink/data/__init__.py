"""Locating the shared real recordings and traces (``../shared`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path | None:
    """``$NEUROLINK_SHARED`` if set, else ``../shared`` next to the repository (or the CWD); None if absent."""
    candidates = []
    if os.environ.get("NEUROLINK_SHARED"):
        candidates.append(Path(os.environ["NEUROLINK_SHARED"]))
    candidates += [_REPO.parent / "shared", Path.cwd().parent / "shared", Path.cwd() / "shared"]
    for c in candidates:
        if (c / "data").is_dir() or (c / "traces").is_dir():
            return c.resolve()
    return None
