"""ONNX export with normalisation inside: torch and onnxruntime agree; the shipped policy runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from agents.export import check_parity, export_onnx, torch_module  # noqa: E402
from neurolink.control import get_controller  # noqa: E402
from neurolink.control.rl import default_policy_path  # noqa: E402
from sim.traces import Trace  # noqa: E402


def test_tiny_training_exports_with_parity(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from sim.env import make_rate_control_env

    tr = Trace("t", "t", "pensieve", np.arange(20) * 0.5, np.linspace(0.5, 3, 20) * 1e6, 10.0)
    venv = VecNormalize(DummyVecEnv([lambda: make_rate_control_env([tr], seed=0, episode_s=2.0)]))
    from stable_baselines3.common.logger import Logger

    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.set_logger(Logger(None, []))  # no SB3-<date> folder in the temp dir
    model.learn(total_timesteps=128)
    module = torch_module(model, venv.obs_rms.mean, venv.obs_rms.var, venv.epsilon, venv.clip_obs)
    path = tmp_path / "p.onnx"
    export_onnx(module, venv.observation_space.shape[0], path)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, venv.observation_space.shape[0])).astype(np.float32) * 3
    assert check_parity(module, path, obs) == 1.0
    # the normalisation is in the graph: the controller on raw observations == SB3 on normalised ones
    ctl = get_controller({"id": "rl", "policy": str(path)})
    sb3 = model.predict(venv.normalize_obs(obs[:50]), deterministic=True)[0]
    assert [ctl.act(o) for o in obs[:50]] == sb3.tolist()


def test_shipped_policy_parity_on_recorded_observations():
    path = default_policy_path()
    if not path.is_file():
        pytest.skip("no shipped policy yet (run python -m agents.train)")
    meta = json.loads(path.with_suffix(".json").read_text())
    rec = Path(path.parent / "rl_policy_parity_obs.npy")
    ctl = get_controller({"id": "rl"})
    obs = np.load(rec) if rec.is_file() else np.zeros((4, meta["obs_size"]), np.float32)
    acts = [ctl.act(o) for o in obs]
    assert all(0 <= a < meta["n_levels"] for a in acts)
    assert meta["parity_torch_vs_onnxruntime"] == 1.0
    if "parity_actions" in meta and rec.is_file():  # onnxruntime now == torch at export time
        assert acts == meta["parity_actions"][: len(acts)]


def test_tiny_residual_training_parity_and_offset_zero(tmp_path):
    """A residual policy round-trips: torch levels == get_controller levels; with the offset-0 bias it IS ``rate``."""
    from agents.train import residual_config, train

    tr = Trace("t", "t", "pensieve", np.arange(20) * 0.5, np.linspace(0.5, 3, 20) * 1e6, 10.0)
    res = residual_config("rate", 2)
    meta = train([tr], tmp_path, 256, 0, 1, 2.0, None, progress=False, augment=False, subproc=False,
                 residual=res, zero_bias=20.0)
    assert meta["policy_kind"] == "residual" and meta["residual"]["base"]["id"] == "rate"
    assert meta["parity_torch_vs_onnxruntime"] == 1.0
    assert meta["onnx_input_size"] == meta["obs_size"] + 2 * meta["n_levels"]
    obs = np.load(tmp_path / "rl_policy_parity_obs.npy")
    assert obs.shape[1] == meta["obs_size"]
    ctl = get_controller({"id": "rl", "policy": str(tmp_path / "rl_policy.onnx")})
    rate = get_controller({"id": "rate"})
    acts = [ctl.act(o) for o in obs]
    assert acts == meta["parity_actions"]
    assert acts == [rate.act(o) for o in obs]  # zero_bias 20 >> the tiny training's updates: offset 0 everywhere
