"""Residual action wrapper: a valid gymnasium env, seeded, and offset 0 IS the base controller."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from neurolink.control import get_controller
from neurolink.control.residual import ResidualMap, ResidualSpec, candidate_order
from sim.env import RateControlEnv
from sim.residual import ResidualAction
from sim.traces import Trace
from sim.wrappers import TraceScaling, TrainingAugmentation


def _trace(name="t", seed=0, n=40):
    rng = np.random.default_rng(seed)
    return Trace(name, name, "pensieve", np.arange(n) * 1.0, rng.uniform(0.2, 3.0, n) * 1e6, float(n))


def _base_env(augment=False):
    env = TraceScaling(RateControlEnv([_trace("a", 0), _trace("b", 1)], episode_s=3.0))
    return TrainingAugmentation(env) if augment else env


def test_check_env_on_wrapper():
    env = ResidualAction(_base_env())
    check_env(env, skip_render_check=True)
    assert env.action_space.n == 5
    assert env.observation_space.shape[0] == env.env.observation_space.shape[0] + 2 * env.unwrapped.n_levels


@pytest.mark.parametrize("augment", [False, True])
def test_seeded_and_deterministic(augment):
    def run(seed):
        env = ResidualAction(_base_env(augment))
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for i in range(30):
            obs, r, *_ = env.step(i % 5)
            out += [obs, np.array([r])]
        return np.concatenate(out)

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


@pytest.mark.parametrize("base", [{"id": "rate"}, {"id": "mpc"}, {"id": "gcc"}], ids=lambda b: b["id"])
def test_offset_zero_reproduces_base_controller(base):
    spec = ResidualSpec(base=base)
    for seed in range(3):
        plain, wrapped = _base_env(), ResidualAction(_base_env(), spec)
        ctl = get_controller(base)
        obs, _ = plain.reset(seed=seed)
        ctl.reset()
        wrapped.reset(seed=seed)
        for _ in range(30):
            level = ctl.act(obs)
            obs, r1, *_ = plain.step(level)
            _, r2, _, _, info = wrapped.step(spec.max_offset)
            assert info["level"] == level == info["base_level"] and info["offset"] == 0 and r1 == r2


def test_rank_order_skips_dominated_levels_and_clamps():
    # non-monotone ladder (like the 1 kHz ECoG): levels 1 and 2 are larger AND worse than level 0
    rate = np.array([0.4, 0.5, 0.45, 0.3, 0.1])
    fid = np.array([1.0, 0.99, 0.95, 0.9, 0.6])
    assert candidate_order(rate, fid, base=0).tolist() == [0, 3, 4]
    assert candidate_order(rate, fid, base=2).tolist() == [2, 0, 3, 4]  # the base decision is always kept
    rmap = ResidualMap(ResidualSpec(base={"id": "fixed", "level": 3}))
    h = 8
    obs = np.concatenate([np.zeros(5 * h), np.eye(5)[0], rate, fid]).astype(np.float32)
    x = rmap.features(obs)
    assert x.shape == (obs.size + 10,) and x[obs.size + 3] == 1 and x[obs.size + 5 + 1] == 1
    assert [rmap.level(a) for a in range(5)] == [0, 0, 3, 4, 4]  # offsets -2..+2, clamped at both ends


def test_offset_penalty_only_shapes_training_reward():
    a, b = ResidualAction(_base_env()), ResidualAction(_base_env(), offset_penalty=0.1)
    a.reset(seed=0)
    b.reset(seed=0)
    _, ra, *_ = a.step(4)
    _, rb, *_ = b.step(4)
    assert rb == pytest.approx(ra - 0.2)
