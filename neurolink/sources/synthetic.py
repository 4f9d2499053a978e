"""Synthetic neural data (spikes + LFP + noise) for demos and tests when no recording is at hand."""

from __future__ import annotations

import numpy as np


def synthetic_recording(
    n_samples: int, n_channels: int, fs: float, *, seed: int = 0, spike_rate_hz: float = 20.0
) -> np.ndarray:
    """int16 (samples, channels): 1/f-like LFP with a theta/gamma rhythm, biphasic spikes, white noise.

    Neighbouring channels share LFP and part of each spike, as on a real probe, so cross-channel
    prediction has something to find.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / fs
    # LFP: integrated noise (brown-ish) common to neighbours + rhythms
    common = np.cumsum(rng.standard_normal((n_samples, 1 + n_channels // 8)), axis=0)
    common -= np.linspace(0, 1, n_samples)[:, None] * common[-1:]  # remove drift
    idx = np.minimum(np.arange(n_channels) // 8, common.shape[1] - 1)
    lfp = common[:, idx] * 2.0
    lfp += 80 * np.sin(2 * np.pi * 7.0 * t)[:, None] * rng.uniform(0.5, 1.0, n_channels)
    lfp += 20 * np.sin(2 * np.pi * min(60.0, fs / 5) * t)[:, None]
    x = lfp + rng.normal(0, 12.0, (n_samples, n_channels))
    # spikes: biphasic template of ~1 ms
    if fs >= 2000:
        w = max(3, int(round(fs * 0.0012)))
        tt = np.linspace(-1, 2, w)
        template = -np.exp(-(tt**2) * 6) * 150 + np.exp(-((tt - 0.8) ** 2) * 4) * 50
        n_spikes = rng.poisson(spike_rate_hz * n_samples / fs * n_channels)
        if n_spikes:
            ch = rng.integers(0, n_channels, n_spikes)
            at = rng.integers(0, max(1, n_samples - w), n_spikes)
            amp = rng.uniform(0.6, 1.4, n_spikes)
            rows = at[:, None] + np.arange(w)[None, :]
            np.add.at(x, (rows, np.repeat(ch[:, None], w, axis=1)), amp[:, None] * template[None, :])
            nb = np.minimum(ch + 1, n_channels - 1)
            np.add.at(x, (rows, np.repeat(nb[:, None], w, axis=1)), 0.4 * amp[:, None] * template[None, :])
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
