"""Classic controllers: fixed, rate (harmonic mean), BBA (backlog map), BOLA (Lyapunov), GCC (delay AIMD).

All read the documented observation (``neurolink.control.observation``); rates are in units of the
stream's lossless bitrate and times in units of 100 ms (= one control interval by default). Default
parameters were tuned on the TRAINING traces only (``agents/tune_baselines.py``).
"""

from __future__ import annotations

import numpy as np

from neurolink.control.base import Controller, best_fitting_level, harmonic_mean, view
from neurolink.control.observation import ObsView
from neurolink.validation import check_range


class Fixed(Controller):
    controller_id = "fixed"

    def __init__(self, level: int = 0) -> None:
        check_range("level", level, 0, 255)
        super().__init__(level=int(level))
        self.level = int(level)

    def act(self, obs: np.ndarray) -> int:
        return min(self.level, view(obs).n_levels - 1)


class RateBased(Controller):
    """Highest level under ``safety`` x harmonic-mean throughput, minus what drains the backlog."""

    controller_id = "rate"

    def __init__(self, window: int = 5, safety: float = 1.0, drain_intervals: float = 1.0) -> None:
        super().__init__(window=window, safety=safety, drain_intervals=drain_intervals)
        self.window, self.safety, self.drain = int(window), float(safety), float(drain_intervals)

    def act(self, obs: np.ndarray) -> int:
        return self.act_view(view(obs), obs)

    def act_view(self, v: ObsView, obs: np.ndarray) -> int:
        budget = self.safety * harmonic_mean(v.throughput, self.window) - v.backlog[-1] / self.drain
        return best_fitting_level(v.rate, budget)


class BBA(Controller):
    """Buffer-based (Huang et al.): the level is a linear map of the backlog between reservoir and cushion."""

    controller_id = "bba"

    def __init__(self, reservoir: float = 0.0, cushion: float = 0.5) -> None:
        super().__init__(reservoir=reservoir, cushion=cushion)
        self.reservoir, self.cushion = float(reservoir), max(float(cushion), 1e-6)

    def act(self, obs: np.ndarray) -> int:
        v = view(obs)
        frac = (v.backlog[-1] - self.reservoir) / self.cushion
        return int(np.clip(np.ceil(frac * (v.n_levels - 1)), 0, v.n_levels - 1))


class Bola(Controller):
    """BOLA-style drift-plus-penalty: maximise V * (fidelity + gamma) - backlog * rate per level."""

    controller_id = "bola"

    def __init__(self, V: float = 0.2, gamma: float = 0.0) -> None:
        super().__init__(V=V, gamma=gamma)
        self.V, self.gamma = float(V), float(gamma)

    def act(self, obs: np.ndarray) -> int:
        v = view(obs)
        q = v.backlog[-1]
        score = self.V * (v.fidelity + self.gamma) - q * v.rate
        return int(np.argmax(score))


class GCC(Controller):
    """Google Congestion Control flavour: delay-gradient overuse detector + loss-based AIMD.

    Overuse (gradient > threshold) -> target = beta x measured throughput; loss > 10 % -> multiply by
    (1 - loss/2); otherwise grow multiplicatively by ``increase`` per interval, capped at 1.5 x throughput.
    """

    controller_id = "gcc"

    def __init__(self, threshold: float = 0.02, beta: float = 0.9, increase: float = 1.1) -> None:
        super().__init__(threshold=threshold, beta=beta, increase=increase)
        self.threshold, self.beta, self.increase = float(threshold), float(beta), float(increase)
        self.reset()

    def reset(self) -> None:
        self.target = 0.0

    def act(self, obs: np.ndarray) -> int:
        v = view(obs)
        thr, loss, grad = v.throughput[-1], v.loss[-1], v.delay_gradient[-1]
        if self.target <= 0:
            self.target = max(thr, float(v.rate.min()))
        if grad > self.threshold or v.backlog[-1] > 1.0:
            self.target = min(self.target, self.beta * thr)
        elif loss > 0.10:
            self.target *= 1.0 - 0.5 * loss
        elif loss < 0.02:
            self.target *= self.increase
        self.target = float(np.clip(self.target, float(v.rate.min()) * 0.5, 1.5 * max(thr, 1e-3)))
        return best_fitting_level(v.rate, self.target)
