"""Gymnasium wrapper for residual policies: the agent picks an offset from a classic controller's decision.

The mapping (base decision, candidate rank order, policy features) is
:class:`neurolink.control.residual.ResidualMap`, the same object the daemon's ``rl`` controller uses, so
training, evaluation and deployment cannot drift apart. The reward is the env's own, optionally minus
``offset_penalty`` x |offset| (training-time shaping that keeps the policy near the classic rule; 0 by
default).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from neurolink.control.residual import ResidualMap, ResidualSpec, residual_obs_size


class ResidualAction(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Action = offset index in ``0..2*max_offset``; observation = env observation + base-decision features."""

    def __init__(self, env: gym.Env, spec: ResidualSpec | None = None, offset_penalty: float = 0.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec, offset_penalty=offset_penalty)
        gym.Wrapper.__init__(self, env)
        self.residual_spec = spec or ResidualSpec(base={"id": "rate"})
        self.map = ResidualMap(self.residual_spec)
        self.offset_penalty = float(offset_penalty)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"ResidualAction: the wrapped env must pick a level (Discrete), got {env.action_space}")
        n_levels = int(env.action_space.n)
        n = residual_obs_size(int(np.prod(env.observation_space.shape or (0,))), n_levels)
        self.action_space = gym.spaces.Discrete(self.residual_spec.n_actions)
        self.observation_space = gym.spaces.Box(-50.0, 50.0, shape=(n,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.map.reset()
        return self.map.features(obs), info

    def step(self, action):
        a = int(action)
        if not 0 <= a < self.residual_spec.n_actions:
            raise ValueError(f"ResidualAction: action {action!r} outside 0..{self.residual_spec.n_actions - 1}")
        level = self.map.level(a)
        base = self.map.base_level
        obs, r, term, trunc, info = self.env.step(level)
        info = dict(info)
        info["base_level"] = base
        info["offset"] = a - self.residual_spec.max_offset
        if self.offset_penalty:
            r = float(r) - self.offset_penalty * abs(a - self.residual_spec.max_offset)
        return self.map.features(obs), r, term, trunc, info
