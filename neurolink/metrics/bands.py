"""Relative band-power error in the classic LFP/EEG bands (Welch periodogram, per channel)."""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

#: Band edges in Hz (lower inclusive, upper exclusive).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 80.0),
    "high_gamma": (80.0, 200.0),
}

#: Welch segment length in seconds: 4 s gives 0.25 Hz bins, enough to resolve the 1-4 Hz delta band.
SEGMENT_S = 4.0


def band_power_errors(x: np.ndarray, y: np.ndarray, fs: float) -> dict[str, float]:
    """Per band: mean over channels of |P_rec - P_orig| / P_orig (NaN when the band has no usable bins).

    Bands above Nyquist, bands without a frequency bin at this resolution, and channels with no power
    in a band are skipped rather than reported as 0 or inf.
    """
    n = x.shape[0]
    out = {b: float("nan") for b in BANDS}
    if n < 8:
        return out
    nperseg = int(min(n, max(8, round(SEGMENT_S * fs))))
    f, px = welch(np.asarray(x, np.float64), fs=fs, nperseg=nperseg, axis=0)
    _, py = welch(np.asarray(y, np.float64), fs=fs, nperseg=nperseg, axis=0)
    total = px.sum(axis=0)
    for name, (lo, hi) in BANDS.items():
        m = (f >= lo) & (f < min(hi, fs / 2))
        if not m.any():
            continue
        po, pr = px[m].sum(axis=0), py[m].sum(axis=0)
        ok = po > 1e-12 * np.maximum(total, 1e-300)
        if ok.any():
            out[name] = float(np.mean(np.abs(pr[ok] - po[ok]) / po[ok]))
    return out
