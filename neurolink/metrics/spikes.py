"""Spike detection agreement: would a spike sorter see the same spikes in the reconstruction?

Both signals are band-passed (300-6000 Hz, zero-phase ``sosfiltfilt``); spikes are negative threshold
crossings below -4.5 x the MAD noise estimate of the ORIGINAL (the same threshold is applied to the
reconstruction, so a codec cannot win by changing the noise level), with a 1 ms refractory period.
An original and a reconstructed spike match when they lie within +-0.5 ms of each other.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

BAND_HZ = (300.0, 6000.0)
THRESHOLD_MAD = 4.5
TOLERANCE_S = 0.5e-3
REFRACTORY_S = 1.0e-3
WAVEFORM_S = 1.0e-3  # half-width of the waveform window for the shape correlation
#: The upper edge is clipped to this fraction of Nyquist; below ``MIN_BAND_RATIO`` x 300 Hz there is no spike band.
NYQUIST_FRACTION = 0.9
MIN_BAND_RATIO = 2.0


def spike_band(fs: float) -> tuple[float, float] | None:
    """Band edges usable at this sampling rate, or None when fs is too low for a spike band."""
    hi = min(BAND_HZ[1], NYQUIST_FRACTION * fs / 2)
    if hi < MIN_BAND_RATIO * BAND_HZ[0]:
        return None
    return BAND_HZ[0], hi


def bandpass(x: np.ndarray, fs: float, band: tuple[float, float]) -> np.ndarray:
    sos = butter(3, band, btype="bandpass", fs=fs, output="sos")
    padlen = min(x.shape[0] - 1, 3 * (2 * len(sos) + 1))
    return sosfiltfilt(sos, np.asarray(x, np.float64), axis=0, padlen=max(padlen, 0))


def mad_sigma(f: np.ndarray) -> np.ndarray:
    """Robust per-channel noise sigma: median(|x - median|) / 0.6745."""
    return np.median(np.abs(f - np.median(f, axis=0)), axis=0) / 0.6745


def detect(f: np.ndarray, thr: float, refractory: int) -> np.ndarray:
    """Sample indices of downward crossings of ``thr`` (negative), with a refractory period."""
    below = f < thr
    onsets = np.flatnonzero(below[1:] & ~below[:-1]) + 1
    if onsets.size < 2 or refractory <= 0:
        return onsets
    # Keep an onset only if it is >= refractory after the last KEPT one: a short scan over events, not samples.
    keep = np.ones(onsets.size, bool)
    last = onsets[0]
    close = np.flatnonzero(np.diff(onsets) < refractory) + 1
    if close.size == 0:
        return onsets
    for i in range(1, onsets.size):
        if onsets[i] - last < refractory:
            keep[i] = False
        else:
            last = onsets[i]
    return onsets[keep]


def match(a: np.ndarray, b: np.ndarray, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one nearest matches between sorted event times a and b within +-tol samples."""
    if a.size == 0 or b.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    j = np.clip(np.searchsorted(b, a), 1, b.size - 1) if b.size > 1 else np.zeros(a.size, np.int64)
    if b.size > 1:
        left = b[j - 1]
        right = b[j]
        j = np.where(np.abs(a - left) <= np.abs(right - a), j - 1, j)
    ok = np.abs(b[j] - a) <= tol
    ia, jb = np.flatnonzero(ok), j[ok]
    _, first = np.unique(jb, return_index=True)  # a reconstructed spike may match only one original
    return ia[first], jb[first]


def spike_scores(x: np.ndarray, y: np.ndarray, fs: float) -> dict[str, float | int | str | None]:
    """spike_f1 (pooled over channels), precision, recall, counts and waveform correlation of matched spikes."""
    band = spike_band(fs)
    if band is None:
        return {
            "spike_f1": float("nan"),
            "spike_f1_reason": f"fs={fs:g} Hz is too low for a {BAND_HZ[0]:g}-{BAND_HZ[1]:g} Hz spike band",
            "spike_waveform_r": float("nan"),
        }
    fx, fy = bandpass(x, fs, band), bandpass(y, fs, band)
    thr = -THRESHOLD_MAD * mad_sigma(fx)
    tol, refr, half = round(TOLERANCE_S * fs), round(REFRACTORY_S * fs), max(1, round(WAVEFORM_S * fs))
    n_o = n_r = tp = 0
    wr: list[np.ndarray] = []
    for c in range(fx.shape[1]):
        if thr[c] >= 0:
            continue
        eo, er = detect(fx[:, c], thr[c], refr), detect(fy[:, c], thr[c], refr)
        io, _ = match(eo, er, tol)
        n_o, n_r, tp = n_o + eo.size, n_r + er.size, tp + io.size
        centers = eo[io]
        centers = centers[(centers >= half) & (centers < fx.shape[0] - half)]
        if centers.size:
            idx = centers[:, None] + np.arange(-half, half + 1)[None, :]
            a, b = fx[idx, c], fy[idx, c]
            a = a - a.mean(axis=1, keepdims=True)
            b = b - b.mean(axis=1, keepdims=True)
            den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
            wr.append(np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 0.0))
    f1 = 1.0 if n_o + n_r == 0 else 2.0 * tp / (n_o + n_r)
    return {
        "spike_f1": float(f1),
        "spike_precision": float(tp / n_r) if n_r else float("nan"),
        "spike_recall": float(tp / n_o) if n_o else float("nan"),
        "spikes_original": int(n_o),
        "spikes_reconstructed": int(n_r),
        "spikes_matched": int(tp),
        "spike_waveform_r": float(np.mean(np.concatenate(wr))) if wr else float("nan"),
    }
