"""robustMPC (Yin et al., SIGCOMM 2015) adapted to a live stream: plan ``horizon`` intervals ahead.

Throughput forecast = harmonic mean of the last 5 samples / (1 + max relative error of recent forecasts).
Each plan (every level sequence) is scored with a fluid model of the bottleneck queue and the same
reward as the simulator (fidelity of on-time frames - lam x late frames - mu x |switch|).
"""

from __future__ import annotations

import itertools

import numpy as np

from neurolink.control.base import Controller, harmonic_mean, view


def _reward_defaults() -> tuple[float, float, float]:
    try:
        from sim.reward import load_reward_config

        c = load_reward_config()
        return c.lam, c.mu, c.deadline_ms
    except Exception:  # the controller must run without the simulator installed
        return 1.0, 0.01, 100.0


class RobustMPC(Controller):
    controller_id = "mpc"

    def __init__(self, horizon: int = 3, window: int = 5, interval_ms: float = 100.0, robust: bool = True,
                 lam: float | None = None, mu: float | None = None, deadline_ms: float | None = None) -> None:
        dl, dm, dd = _reward_defaults()
        self.lam = dl if lam is None else float(lam)
        self.mu = dm if mu is None else float(mu)
        self.deadline = (dd if deadline_ms is None else float(deadline_ms)) / 100.0  # obs time unit: 100 ms
        super().__init__(horizon=horizon, window=window, interval_ms=interval_ms, robust=robust,
                         lam=self.lam, mu=self.mu, deadline_ms=self.deadline * 100.0)
        self.horizon, self.window, self.dt, self.robust = int(horizon), int(window), interval_ms / 100.0, bool(robust)
        self._plans: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        self.errors: list[float] = []
        self.last_pred: float | None = None

    def _plan_table(self, n: int) -> np.ndarray:
        if n not in self._plans:
            self._plans[n] = np.array(list(itertools.product(range(n), repeat=self.horizon)), dtype=np.int64)
        return self._plans[n]

    def act(self, obs: np.ndarray) -> int:
        v = view(obs)
        thr = v.throughput[-1]
        if self.last_pred is not None and thr > 0:
            self.errors.append(abs(self.last_pred - thr) / thr)
            self.errors = self.errors[-5:]
        pred = harmonic_mean(v.throughput, self.window)
        self.last_pred = pred
        if self.robust and self.errors:
            pred /= 1.0 + max(self.errors)
        c = max(pred, 1e-6)
        plans = self._plan_table(v.n_levels)
        q = np.full(plans.shape[0], v.backlog[-1])
        total = np.zeros(plans.shape[0])
        prev = np.full(plans.shape[0], v.level)
        for h in range(self.horizon):
            lv = plans[:, h]
            a = v.rate[lv] * self.dt
            q1 = np.maximum(q + a - c * self.dt, 0.0)
            # queueing delay q/c moves linearly from q0/c to q1/c: fraction of the interval above the deadline
            d0, d1 = q / c, q1 / c
            lo, hi = np.minimum(d0, d1), np.maximum(d0, d1)
            span = np.maximum(hi - lo, 1e-9)
            late = np.where(hi <= self.deadline, 0.0, np.where(lo >= self.deadline, 1.0, (hi - self.deadline) / span))
            total += (1 - late) * v.fidelity[lv] - self.lam * late - self.mu * np.abs(lv - prev)
            q, prev = q1, lv
        # terminal cost: backlog still above the deadline after the horizon makes future frames late
        total -= self.lam * np.maximum(q / c - self.deadline, 0.0) / self.dt
        best = total.max()
        ties = np.flatnonzero(total >= best - 1e-9)  # tie: the plan whose first level is smallest in size
        return int(plans[ties[np.argmin(v.rate[plans[ties, 0]])], 0])
