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


PREFERRED_RECORDING = "locust_tetrode_trial01.npy"


def default_recording(data_dir: Path | None = None) -> Path | None:
    """The real recording the demo and the throughput benches play: the locust tetrode when present, else
    the shared recording with the highest sampling rate (spike-band data exercises the codecs hardest),
    so any folder of ``.npy`` + JSON sidecars works; None if there is none."""
    if data_dir is None:
        sh = shared_dir()
        data_dir = sh / "data" if sh is not None else None
    if data_dir is None or not data_dir.is_dir():
        return None
    if (data_dir / PREFERRED_RECORDING).exists():
        return data_dir / PREFERRED_RECORDING
    best: tuple[float, str] | None = None
    for f in sorted(data_dir.glob("*.npy")):
        try:
            import json

            fs = float(json.loads(f.with_suffix(".json").read_text())["sampling_rate_hz"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if best is None or fs > best[0]:
            best = (fs, str(f))
    return Path(best[1]) if best else None
