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
