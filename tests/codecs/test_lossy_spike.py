import numpy as np

from neurolink.codecs.testing import stream
from neurolink.metrics import fidelity


def test_keeps_spikes_and_lfp_synthetic():
    """Noise + LFP sinusoid + big spikes: spikes found again, LFP power kept, and far fewer bytes."""
    fs, n = 15000.0, 15000 * 3
    rng = np.random.default_rng(0)
    t = np.arange(n) / fs
    x = rng.normal(0, 20, (n, 2)) + 40 * np.sin(2 * np.pi * 20 * t)[:, None]
    shape = -300 * np.exp(-((np.arange(-15, 16)) / 4.0) ** 2)
    for s in range(500, n - 40, 1111):
        x[s - 15 : s + 16] += shape[:, None]
    x = np.rint(x).astype(np.int16)
    y, total = stream({"id": "nl-spike", "step": 8}, x, 15)
    f = fidelity(x, y, fs)
    assert x.nbytes / total > 8
    assert f["spike_f1"] > 0.95 and f["band_power_err_beta"] < 0.05


def test_rate_falls_with_step(recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 300]
    sizes = [stream({"id": "nl-spike", "step": s}, x, frame)[1] for s in (2, 8, 32)]
    assert sizes[0] > sizes[1] > sizes[2]
