"""Which channels a fidelity score may use: dead (flat) and saturated (clipped) channels are excluded.

A flat or clipped channel reconstructs trivially or never, whatever the codec, so leaving it in the
average would swamp the score with a property of the electrode rather than of the codec.
"""

from __future__ import annotations

import numpy as np

#: A channel sitting at its own extreme value for at least this fraction of samples is clipped.
SATURATION_FRACTION = 0.05


def classify_channels(x: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """Return (usable mask, dead channel indices, saturated channel indices) for a (samples, channels) array."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        return np.zeros(x.shape[1], bool), list(range(x.shape[1])), []
    lo, hi = x.min(axis=0), x.max(axis=0)
    dead = hi == lo
    at_edge = np.maximum((x == lo).mean(axis=0), (x == hi).mean(axis=0))
    saturated = ~dead & (at_edge >= SATURATION_FRACTION)
    usable = ~dead & ~saturated
    return usable, np.flatnonzero(dead).tolist(), np.flatnonzero(saturated).tolist()
