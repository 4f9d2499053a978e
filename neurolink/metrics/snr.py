"""Waveform-level scores: SNR in dB and Pearson correlation."""

from __future__ import annotations

import numpy as np


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    """10 log10(signal AC power / error power), pooled over channels; ``inf`` when identical.

    The signal power is taken about each channel's mean, so a large ADC offset does not inflate the score.
    """
    x = np.asarray(x, np.float64)
    err = float(np.sum((np.asarray(y, np.float64) - x) ** 2))
    sig = float(np.sum((x - x.mean(axis=0)) ** 2))
    if err == 0.0:
        return float("inf")
    if sig == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(sig / err))


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over channels of Pearson r between original and reconstruction (NaN if undefined everywhere)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    den = np.sqrt(np.sum(xc * xc, axis=0) * np.sum(yc * yc, axis=0))
    ok = den > 0
    if not ok.any():
        return float("nan")
    return float(np.mean(np.sum(xc * yc, axis=0)[ok] / den[ok]))
