"""Training-only augmentation: seeded, really transforms the link, never touches an evaluation env."""

from __future__ import annotations

import numpy as np
import pytest

from sim.augment import AugmentConfig, TraceAugmenter
from sim.env import RateControlEnv
from sim.traces import Trace
from sim.wrappers import TraceScaling, TrainingAugmentation


def _trace(name="t", seed=0, n=40):
    rng = np.random.default_rng(seed)
    return Trace(name, name, "pensieve", np.arange(n) * 1.0, rng.uniform(0.2, 3.0, n) * 1e6, float(n))


def _run(env, seed, steps=20):
    obs, info = env.reset(seed=seed)
    out = [obs]
    for i in range(steps):
        obs, r, *_ = env.step(i % env.action_space.n)
        out.append(obs)
        out.append(np.array([r]))
    return np.concatenate(out), info


def _aug_env():
    return TrainingAugmentation(TraceScaling(RateControlEnv([_trace("a", 0), _trace("b", 1)], episode_s=3.0)))


def test_augmented_episodes_are_seeded():
    a, ia = _run(_aug_env(), 5)
    b, ib = _run(_aug_env(), 5)
    c, _ = _run(_aug_env(), 6)
    assert np.array_equal(a, b) and ia == ib
    assert not np.array_equal(a, c)
    assert ia["loss_profile"] in ("augment", "none")  # never the profiles fitted on a held-out family


def test_plain_env_has_no_augmenter():
    env = TraceScaling(RateControlEnv([_trace()], episode_s=2.0))
    assert env.unwrapped.augmenter is None
    _, info = env.reset(seed=0)
    assert "@x" not in info["trace"] and info["k"] in (0.5, 1.0, 2.0)


def test_k_drawn_from_range_and_explicit_k_wins():
    env = _aug_env()
    ks = [env.reset(seed=s)[1]["k"] for s in range(30)]
    assert min(ks) >= 0.35 and max(ks) <= 3.0 and len(set(ks)) > 20
    assert env.reset(seed=0, options={"k": 1.0})[1]["k"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augmenter_pieces(seed):
    rng = np.random.default_rng(seed)
    always = AugmentConfig(p_timescale=1.0, p_splice=1.0, p_outage=1.0, p_delay=1.0, p_no_loss=0.0,
                           outage_every_s=(0.5, 0.5))
    aug = TraceAugmenter(always)
    tr = aug.transform_trace(rng, _trace())
    assert tr.period_s < 40.0 and "@x" in tr.name
    cap = aug.capacity(rng, tr, 0, 20_000, 1.0)
    assert cap.shape == (20_000,) and np.all(cap >= 0) and np.any(cap == 0)  # outages present
    d = aug.prop_delay(rng, 20_000, np.full(20_000, 20.0))
    assert d.shape == (20_000,) and d.min() >= 5.0 and d.max() <= 400.0
    p = aug.loss_prob(rng, 20_000)
    assert p.shape == (20_000,) and 0 < p.max() <= 1.0 and p.mean() < 0.5
