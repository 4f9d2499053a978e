"""fidelity() on cases with known answers, plus the real recordings."""

import math

import numpy as np
import pytest

from neurolink.errors import ConfigError
from neurolink.metrics import fidelity

FS = 15000.0


def _spike_train(n=FS * 4, ch=2, every=0.05, seed=0):
    """White noise (sigma 10) plus large negative spikes every ``every`` seconds."""
    rng = np.random.default_rng(seed)
    n = int(n)
    x = rng.normal(0, 10, (n, ch))
    t = np.arange(-15, 16)
    shape = -200 * np.exp(-(t / 4.0) ** 2)
    times = np.arange(int(0.02 * FS), n - 40, int(every * FS))
    for c in range(ch):
        for s in times:
            x[s - 15 : s + 16, c] += shape
    return x, times


def test_identical_is_perfect():
    x, _ = _spike_train()
    f = fidelity(x, x, FS)
    assert f["snr_db"] == math.inf
    assert f["spike_f1"] == 1.0 and f["pearson_r"] == pytest.approx(1.0)
    assert f["band_power_err"] == 0.0
    assert f["spike_waveform_r"] == pytest.approx(1.0)


def test_known_noise_level_gives_known_snr():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 10, (60000, 3))
    y = x + rng.normal(0, 1, x.shape)  # signal power 100, noise power 1 -> 20 dB
    assert fidelity(x, y, FS)["snr_db"] == pytest.approx(20.0, abs=0.1)


def test_shifted_spike_train_known_f1():
    x, times = _spike_train()
    n_sp = len(times)
    # Shift the second half of the recording by 2 ms (beyond the 0.5 ms tolerance): those spikes all miss.
    half = x.shape[0] // 2
    y = x.copy()
    shift = int(0.002 * FS)
    y[half + shift :] = x[half : x.shape[0] - shift]
    f = fidelity(x, y, FS)
    lost = int(np.sum(times >= half - 20))
    expected = 2 * (n_sp - lost) / (2 * n_sp)  # per channel identical, pooled the same
    assert f["spike_f1"] == pytest.approx(expected, abs=0.03)
    # A 0.2 ms shift stays inside the tolerance.
    y2 = np.roll(x, 3, axis=0)
    assert fidelity(x, y2, FS)["spike_f1"] > 0.97


def test_scaled_sinusoid_band_power_error():
    t = np.arange(int(20 * 1000)) / 1000.0
    x = np.sin(2 * np.pi * 10 * t)[:, None] * 100
    for a in (0.5, 0.9, 1.2):
        f = fidelity(x, a * x, 1000.0)
        assert f["band_power_err"] == pytest.approx(abs(a * a - 1), rel=1e-6)
        assert f["band_power_err_alpha"] == pytest.approx(abs(a * a - 1), rel=1e-6)


def test_low_fs_reports_reason():
    x = np.random.default_rng(0).normal(0, 1, (5000, 2))
    f = fidelity(x, x, 500.0)
    assert math.isnan(f["spike_f1"]) and "too low" in f["spike_f1_reason"]


def test_dead_and_saturated_channels_excluded():
    x, _ = _spike_train(ch=3)
    x[:, 1] = 7.0  # dead
    x[:, 2] = np.clip(x[:, 2], -15, 15)  # clipped at +-15: saturated
    y = x.copy()
    y[:, 1:] = 0  # wrong on the bad channels only
    f = fidelity(x, y, FS)
    assert f["excluded_channels"] == {"dead": [1], "saturated": [2]}
    assert f["channels_used"] == 1 and f["snr_db"] == math.inf


def test_bad_input_names_argument():
    with pytest.raises(ConfigError, match="reconstructed"):
        fidelity(np.zeros((10, 2)), np.zeros((10, 3)), FS)
    with pytest.raises(ConfigError, match="fs"):
        fidelity(np.zeros((10, 2)), np.zeros((10, 2)), -1)


def test_real_recording(recording):
    x, fs = recording
    x = x[: int(fs * 5)]
    rng = np.random.default_rng(0)
    f = fidelity(x, x + rng.integers(-2, 3, x.shape), fs)
    assert f["snr_db"] > 20 and f["pearson_r"] > 0.99
    assert math.isnan(f["spike_f1"]) or f["spike_f1"] > 0.9
