"""Gap concealment: what the receiver writes in place of samples lost on the way (counted, never hidden)."""

from __future__ import annotations

import numpy as np

from neurolink.errors import ConfigError

MODES = ("hold", "zeros", "nan", "linear")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError("receiver.conceal", f"expected one of {list(MODES)}, got {mode!r}")
    return mode


def conceal(mode: str, n: int, n_channels: int, dtype: np.dtype, last: np.ndarray | None, nxt: np.ndarray | None) -> np.ndarray:
    """``n`` filler samples between ``last`` (previous sample) and ``nxt`` (next real sample, if known).

    ``nan`` needs a float stream; integer streams fall back to zeros. ``linear`` falls back to ``hold``
    when the next sample is not known yet.
    """
    dtype = np.dtype(dtype)
    if mode == "nan" and dtype.kind == "f":
        return np.full((n, n_channels), np.nan, dtype=dtype)
    if mode in ("zeros", "nan") or last is None:
        return np.zeros((n, n_channels), dtype=dtype)
    if mode == "linear" and nxt is not None:
        w = (np.arange(1, n + 1, dtype=np.float64) / (n + 1))[:, None]
        y = last.astype(np.float64)[None, :] * (1 - w) + nxt.astype(np.float64)[None, :] * w
        if dtype.kind in "iu":
            y = np.rint(y)
        return y.astype(dtype)
    return np.repeat(last[None, :].astype(dtype), n, axis=0)
