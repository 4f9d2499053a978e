"""Offline-optimal ceiling: dynamic programming over (backlog, previous level) knowing the whole future.

The episode is deterministic once reset (capacity, loss draws and frame sizes are fixed arrays), and the
bottleneck backlog at an interval boundary is the whole network state, so a forward DP over
(previous level, backlog bin) is exact up to binning; each bin keeps the best *real* trajectory
reaching it (ties: smaller backlog), so the plan it returns achieves exactly the value it reports.
The per-interval reward is the formula of ``sim.reward`` (re-stated in numba; a test checks equality).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.network import CHANNEL_LOSS, DELIVERED, simulate_interval


@njit(cache=True)
def _dp(sizes, cap, ccum, lost, bmax, deadline, fid, lam, mu, frames, n_steps, q_unit, n_bins, init_level):
    n_lv = sizes.shape[0]
    ns = n_lv * n_bins
    val = np.full(ns, -np.inf)
    qs = np.zeros(ns)
    val[init_level * n_bins] = 0.0
    parent = np.full((n_steps, ns), -1, np.int64)
    delay = np.empty(frames)
    status = np.empty(frames, np.int8)
    lo = 0.05
    ratio = np.log(4000.0 / lo) / (n_bins - 2)
    for s in range(n_steps):
        val2 = np.full(ns, -np.inf)
        qs2 = np.zeros(ns)
        t0 = s * frames
        for st in range(ns):
            if val[st] == -np.inf:
                continue
            pl = st // n_bins
            for a in range(n_lv):
                q1, _, _ = simulate_interval(qs[st], t0, sizes[a, t0 : t0 + frames], cap, ccum, lost, bmax, delay, status)
                n_ok = 0
                n_ch = 0
                for j in range(frames):
                    if status[j] == DELIVERED and delay[j] <= deadline:
                        n_ok += 1
                    elif status[j] == CHANNEL_LOSS:
                        n_ch += 1
                r = (n_ok * fid[a] - lam * (frames - n_ok - n_ch)) / frames - mu * abs(a - pl)
                v = val[st] + r
                qn = q1 / q_unit
                if qn < lo:
                    b = 0
                else:
                    b = 1 + int(np.log(qn / lo) / ratio)
                    if b > n_bins - 1:
                        b = n_bins - 1
                k = a * n_bins + b
                if v > val2[k] or (v == val2[k] and q1 < qs2[k]):
                    val2[k] = v
                    qs2[k] = q1
                    parent[s, k] = st
        val = val2
        qs = qs2
    best = int(np.argmax(val))
    actions = np.empty(n_steps, np.int64)
    k = best
    for s in range(n_steps - 1, -1, -1):
        actions[s] = k // n_bins
        k = parent[s, k]
    return actions, val[best]


def oracle_plan(env, n_bins: int = 24) -> tuple[np.ndarray, float]:
    """Best level sequence for the episode the (unwrapped, just reset) env holds, and its total reward."""
    e = env.unwrapped
    q_unit = e.link.bmax / max(e.cfg.buffer_ms, 1e-9)  # bytes per ms at the median capacity
    acts, value = _dp(np.ascontiguousarray(e.sizes), e.link.cap, e.link.ccum, e.link.lost, e.link.bmax,
                      float(e.cfg.deadline_ms), np.ascontiguousarray(e.fidelity, np.float64), float(e.cfg.lam),
                      float(e.cfg.mu), int(e.frames), int(e.n_steps), float(q_unit), int(n_bins), int(e.level))
    return acts, float(value)
