"""The measured codec model: present, consistent, and the fidelity score rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.codec_model import fidelity_score, load_codec_model


def test_model_levels_from_file():
    m = load_codec_model()
    assert m.n_levels >= 2
    for s in m.streams:
        assert s.fidelity[0] == pytest.approx(1.0)
        assert np.all((s.fidelity >= 0) & (s.fidelity <= 1))
        assert s.mean_bytes[-1] < s.mean_bytes[0]  # the ladder gets smaller
        sz = s.sample_sizes(np.random.default_rng(0), 500)
        assert sz.shape == (m.n_levels, 500) and np.all(sz > 0)


def test_fidelity_score_rule():
    assert fidelity_score({"snr_db": math.inf}) == 1.0
    assert fidelity_score({"snr_db": 25.0}) == pytest.approx(0.5)
    full = {"snr_db": 50.0, "spike_f1": 0.5, "band_power_err": 0.0, "pearson_r": 1.0}
    assert fidelity_score(full) == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert fidelity_score({**full, "spike_f1": float("nan")}) == pytest.approx(1.0)


def test_missing_model_is_a_clear_error(tmp_path):
    from neurolink.errors import ConfigError

    with pytest.raises(ConfigError, match="measure_codec_model"):
        load_codec_model(tmp_path / "none.json")


def test_streaming_measurement_on_a_small_recording(tmp_path):
    """1 ms frames through one encoder + one decoder instance per level; exact byte counts per frame."""
    import json

    from sim.measure_codec_model import _real_ladder, _snr_only, measure_recording

    ladder = _real_ladder()
    if ladder is None:
        pytest.skip("ladder not loadable")
    rng = np.random.default_rng(0)
    x = (np.cumsum(rng.normal(0, 20, (3000, 4)), axis=0) + 1000).astype(np.int16)  # 200 ms at 15 kHz
    p = tmp_path / "syn.npy"
    np.save(p, x)
    p.with_suffix(".json").write_text(json.dumps({"sampling_rate_hz": 15000.0}))
    rec = measure_recording(p, ladder[:2], _snr_only, block_ms=1)
    assert rec["block_ms"] == 1 and rec["samples_per_block"] == 15 and rec["blocks_measured"] == 200
    lossless = rec["levels"][0]
    assert len(lossless["bytes_per_block"]) == 200 and all(b > 0 for b in lossless["bytes_per_block"])
    assert lossless["fidelity_score"] == 1.0  # bit-exact through the streaming decoder


def test_shipped_model_is_streaming_1ms():
    m = load_codec_model()
    assert not m.provisional
    for s in m.streams:
        assert s.block_ms == 1
