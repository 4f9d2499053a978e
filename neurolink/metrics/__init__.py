"""Fidelity of a lossy reconstruction, as a neuroscientist would judge it (formulas: docs/fidelity.md).

>>> from neurolink.metrics import fidelity
>>> fidelity(x, y, fs)["spike_f1"]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolink.errors import ConfigError
from neurolink.metrics.bands import BANDS, band_power_errors
from neurolink.metrics.channels import classify_channels
from neurolink.metrics.snr import pearson_r, snr_db
from neurolink.metrics.spikes import spike_scores

__all__ = ["BANDS", "fidelity"]


def _as_2d(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ConfigError(name, f"expected a (samples, channels) array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ConfigError(name, f"expected a numeric array, got dtype {a.dtype}")
    return a


def fidelity(original: Any, reconstructed: Any, fs: float) -> dict[str, Any]:
    """Compare a reconstruction with its original (both (samples, channels)); returns a flat dict.

    Keys: ``snr_db``, ``pearson_r``, ``spike_f1`` (+ precision/recall/counts, ``spike_waveform_r``,
    ``spike_f1_reason`` when fs is too low), ``band_power_err`` (mean over bands) with
    ``band_power_err_max`` and ``band_power_err_<band>``, ``channels_used``, ``excluded_channels``.
    Dead and saturated channels of the original are excluded from every score and listed.
    """
    x = _as_2d(original, "original")
    y = _as_2d(reconstructed, "reconstructed")
    if x.shape != y.shape:
        raise ConfigError("reconstructed", f"shape {y.shape} differs from the original's {x.shape}")
    if not (isinstance(fs, (int, float)) and np.isfinite(fs) and fs > 0):
        raise ConfigError("fs", f"expected a positive sampling rate in Hz, got {fs!r}")
    if not np.all(np.isfinite(y)):
        raise ConfigError("reconstructed", "contains NaN or inf")
    usable, dead, saturated = classify_channels(x)
    out: dict[str, Any] = {
        "channels_used": int(usable.sum()),
        "excluded_channels": {"dead": dead, "saturated": saturated},
    }
    xs, ys = x[:, usable].astype(np.float64), y[:, usable].astype(np.float64)
    if xs.shape[1] == 0 or xs.shape[0] < 2:
        nan = float("nan")
        out.update(snr_db=nan, pearson_r=nan, spike_f1=nan, spike_f1_reason="no usable channels or samples",
                   spike_waveform_r=nan, band_power_err=nan, band_power_err_max=nan)
        out.update({f"band_power_err_{b}": nan for b in BANDS})
        return out
    out["snr_db"] = snr_db(xs, ys)
    out["pearson_r"] = pearson_r(xs, ys)
    out.update(spike_scores(xs, ys, float(fs)))
    bands = band_power_errors(xs, ys, float(fs))
    vals = np.array([v for v in bands.values() if np.isfinite(v)])
    out["band_power_err"] = float(vals.mean()) if vals.size else float("nan")
    out["band_power_err_max"] = float(vals.max()) if vals.size else float("nan")
    out.update({f"band_power_err_{b}": v for b, v in bands.items()})
    return out
