"""Residual control: a learned OFFSET applied to a classic controller's decision (residual policy learning).

Why: a policy that picks the level from scratch must first relearn what the classic rule already does
and generalises worse than it off the training family; a residual policy starts AS the classic
controller (offset 0) and only learns where to deviate (Silver et al. 2018; Genet / Merina for ABR).

Offsets move in the ladder's rank order, read from the observation: candidate levels = the levels no
other level dominates (another level with a bitrate <= and a fidelity >= , one of them strictly) plus
the base decision itself, sorted by bitrate, LARGEST first, so ``+1`` = one step smaller / safer and
``-1`` = one step larger. The ladder is not monotone on every stream (1 kHz ECoG), hence the rank
order instead of the level index. Offsets past either end clamp to it. Offset 0 returns the base
decision exactly.

The policy's input = the documented observation + one-hot of the base level (L) + one-hot of the base
decision's rank among the candidates, largest first (L); see :meth:`ResidualMap.features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolink.control.base import Controller
from neurolink.control.observation import unpack
from neurolink.errors import ConfigError


def dominated_levels(rate: np.ndarray, fidelity: np.ndarray) -> np.ndarray:
    """Mask of levels some other level beats: bitrate <= and fidelity >= , one of them strictly."""
    r = np.asarray(rate, dtype=np.float64)
    f = np.asarray(fidelity, dtype=np.float64)
    le_r = r[None, :] <= r[:, None]  # [i, j]: level j is no larger than level i
    ge_f = f[None, :] >= f[:, None]
    strict = (r[None, :] < r[:, None]) | (f[None, :] > f[:, None])
    return np.any(le_r & ge_f & strict, axis=1)


def candidate_order(rate: np.ndarray, fidelity: np.ndarray, base: int,
                    dominated: np.ndarray | None = None) -> np.ndarray:
    """Non-dominated levels plus ``base``, sorted by bitrate (largest first; ties by level index)."""
    r = np.asarray(rate, dtype=np.float64)
    keep = ~(dominated_levels(r, fidelity) if dominated is None else dominated)
    keep[int(base)] = True
    idx = np.flatnonzero(keep)
    return idx[np.lexsort((idx, -r[idx]))]


@dataclass(frozen=True)
class ResidualSpec:
    """What a residual policy was trained with (stored in the policy's metadata as ``residual``)."""

    base: dict[str, Any]  # classic controller config, e.g. {"id": "rate", "window": 5, ...}
    max_offset: int = 2  # actions 0..2*max_offset <-> offsets -max_offset..+max_offset

    @property
    def n_actions(self) -> int:
        return 2 * self.max_offset + 1

    def to_json(self) -> dict[str, Any]:
        return {"mode": "residual", "base": dict(self.base), "max_offset": self.max_offset,
                "offsets": list(range(-self.max_offset, self.max_offset + 1)),
                "features": "obs + one-hot(base level, L) + one-hot(base rank among candidates, largest first, L)",
                "rank_order": "non-dominated levels + base, by bitrate in the observation, largest first; "
                              "+1 = one step smaller, clamped at the ends"}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ResidualSpec:
        if d.get("mode") != "residual" or "base" not in d:
            raise ConfigError("residual", f"expected {{'mode': 'residual', 'base': {{...}}}}, got {d!r}")
        return cls(base=dict(d["base"]), max_offset=int(d.get("max_offset", 2)))


class ResidualMap:
    """Base decision, policy features and offset -> level, from one observation (sim and daemon share it)."""

    def __init__(self, spec: ResidualSpec, base: Controller | None = None) -> None:
        from neurolink.control import get_controller

        self.spec = spec
        self.base = base if base is not None else get_controller(dict(spec.base))
        self._order = np.zeros(1, np.int64)
        self._rank = 0
        self.base_level = 0
        self._ladder_key = b""  # the ladder in the observation rarely changes: cache its dominance mask
        self._dominated = np.zeros(0, bool)

    def reset(self) -> None:
        self.base.reset()

    def features(self, obs: np.ndarray) -> np.ndarray:
        """Run the base controller on ``obs`` (once per interval) and return the policy's input vector."""
        v = unpack(obs)
        n = v.n_levels
        self.base_level = int(self.base.act_view(v, obs))
        key = v.rate.tobytes() + v.fidelity.tobytes()
        if key != self._ladder_key:
            self._ladder_key, self._dominated = key, dominated_levels(v.rate, v.fidelity)
        self._order = candidate_order(v.rate, v.fidelity, self.base_level, self._dominated)
        self._rank = int((self._order == self.base_level).argmax())  # base is always a candidate
        extra = np.zeros(2 * n, np.float32)
        extra[self.base_level] = 1.0
        extra[n + self._rank] = 1.0
        return np.concatenate([np.asarray(obs, np.float32).ravel(), extra])

    def level(self, action: int) -> int:
        """Level for policy action ``action`` (offset = action - max_offset) after :meth:`features`."""
        off = int(action) - self.spec.max_offset
        if off == 0:
            return self.base_level
        return int(self._order[int(np.clip(self._rank + off, 0, self._order.size - 1))])


def residual_obs_size(n_obs: int, n_levels: int) -> int:
    return n_obs + 2 * n_levels
