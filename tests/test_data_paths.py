"""Which real recording the demo and throughput benches play, for any folder of recordings."""

import json

import numpy as np

from neurolink.data import PREFERRED_RECORDING, default_recording


def _rec(folder, name, fs):
    np.save(folder / f"{name}.npy", np.zeros((10, 2), np.int16))
    (folder / f"{name}.json").write_text(json.dumps({"sampling_rate_hz": fs}))


def test_default_recording_prefers_locust_else_fastest(tmp_path):
    assert default_recording(tmp_path) is None
    _rec(tmp_path, "eeg", 250.0)
    _rec(tmp_path, "probe", 30000.0)
    np.save(tmp_path / "nosidecar.npy", np.zeros((10, 2), np.int16))  # ignored, not a crash
    assert default_recording(tmp_path).name == "probe.npy"
    _rec(tmp_path, PREFERRED_RECORDING[:-4], 15000.0)
    assert default_recording(tmp_path).name == PREFERRED_RECORDING
