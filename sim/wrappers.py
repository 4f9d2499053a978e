"""Gymnasium wrappers, one concern each.

- :class:`TraceScaling`: THE trace scaling rule's ``k`` per episode (drawn from a set, or fixed).
- :class:`EpisodeStats`: accumulates frames late/lost, mean fidelity and level switches into ``info``
  at the end of an episode (what the evaluator reports).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class TraceScaling(gym.Wrapper):
    """Scale each episode's trace so its 1 s median = k x the stream's lossless bitrate (``sim.traces``).

    ``k`` is drawn uniformly from ``ks`` with the env's RNG (training), or fixed when ``ks`` has one
    value or ``reset(options={"k": ...})`` names it (evaluation sweeps).
    """

    def __init__(self, env: gym.Env, ks: tuple[float, ...] = (0.5, 1.0, 2.0)) -> None:
        super().__init__(env)
        if not ks or any(k <= 0 for k in ks):
            raise ValueError(f"TraceScaling: ks must be positive factors, got {ks!r}")
        self.ks = tuple(float(k) for k in ks)

        self._rng = np.random.default_rng([getattr(env.unwrapped, "_seed", None) or 0, 0x5CA1E])

    def reset(self, *, seed=None, options=None):
        if seed is not None:  # reset(seed=...) owns every RNG, this one included
            self._rng = np.random.default_rng([seed, 0x5CA1E])
        opts = dict(options or {})
        if "k" not in opts:
            opts["k"] = self.ks[int(self._rng.integers(len(self.ks)))]
        return self.env.reset(seed=seed, options=opts)


class TrainingAugmentation(gym.Wrapper):
    """TRAINING envs only: augment each episode's training trace (``sim.augment``) and draw ``k``
    log-uniformly from ``k_range`` (the scaling rule itself is unchanged). Wrap it around
    :class:`TraceScaling` so the drawn ``k`` reaches it through ``options``.
    """

    def __init__(self, env: gym.Env, k_range: tuple[float, float] = (0.35, 3.0), augmenter=None) -> None:
        from sim.augment import TraceAugmenter

        super().__init__(env)
        self.k_range = (float(k_range[0]), float(k_range[1]))
        setattr(env.unwrapped, "augmenter", augmenter or TraceAugmenter())  # noqa: B010 (RateControlEnv attribute)
        self._rng = np.random.default_rng([getattr(env.unwrapped, "_seed", None) or 0, 0xA06])

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0xA06])
        opts = dict(options or {})
        if "k" not in opts:
            lo, hi = np.log(self.k_range[0]), np.log(self.k_range[1])
            opts["k"] = float(np.exp(self._rng.uniform(lo, hi)))
        return self.env.reset(seed=seed, options=opts)


class EpisodeStats(gym.Wrapper):
    """Adds ``info["episode_stats"]`` (totals over the episode) on the last step."""

    def reset(self, **kwargs):
        self._acc = {"reward": 0.0, "frames": 0, "frames_ok": 0, "frames_late": 0, "frames_lost": 0,
                     "switches": 0, "fidelity_sum": 0.0, "steps": 0}
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        a = self._acc
        a["reward"] += r
        a["steps"] += 1
        for key in ("frames", "frames_ok", "frames_late", "frames_lost"):
            a[key] += info[key]
        a["switches"] += info["switch"]
        a["fidelity_sum"] += info["fidelity"] * info["frames_ok"]
        if term or trunc:
            info = dict(info)
            info["episode_stats"] = {
                "reward": a["reward"], "steps": a["steps"],
                "late_or_lost_frac": (a["frames_late"] + a["frames_lost"]) / max(a["frames"], 1),
                "late_frac": a["frames_late"] / max(a["frames"], 1), "lost_frac": a["frames_lost"] / max(a["frames"], 1),
                "mean_fidelity": a["fidelity_sum"] / max(a["frames"], 1), "switches": a["switches"],
            }
        return obs, r, term, trunc, info


def episode_summary(rewards: list[float]) -> dict[str, float]:
    r = np.asarray(rewards, float)
    return {"reward": float(r.sum()), "steps": int(r.size)}
