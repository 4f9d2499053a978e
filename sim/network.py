"""Trace-driven bottleneck: drop-tail FIFO with per-ms capacity, propagation delay and per-frame loss.

Fluid model at 1 ms resolution: frame j enters the queue at the start of its millisecond ``t``; it leaves
when the cumulative capacity since ``t`` has carried the backlog ahead of it plus itself (exact for a
work-conserving FIFO). The inner loop over an interval's frames is numba; everything else is numpy.
The backlog at an interval boundary is the whole state, which is what makes the DP oracle exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

DELIVERED, OVERFLOW, CHANNEL_LOSS = 0, 1, 2


@njit(cache=True)
def simulate_interval(q0, t0, sizes, cap, ccum, lost, bmax, delay_out, status_out):
    """Push ``sizes`` (one frame per ms from ``t0``) through the queue.

    Writes each frame's queueing+serialisation delay (ms, inf if dropped) and status; returns
    (backlog after the interval, bytes served, busy ms).
    """
    q = q0
    served_total = 0.0
    busy = 0.0
    n_cum = ccum.shape[0]
    for j in range(sizes.shape[0]):
        t = t0 + j
        s = sizes[j]
        if q + s > bmax:
            status_out[j] = OVERFLOW
            delay_out[j] = np.inf
        else:
            q += s
            target = ccum[t] + q
            k = np.searchsorted(ccum, target)
            if k >= n_cum:
                delay_out[j] = np.inf
            else:
                c = cap[k - 1]
                frac = (target - ccum[k - 1]) / c if c > 0 else 0.0
                delay_out[j] = (k - 1 + frac) - t
            status_out[j] = CHANNEL_LOSS if lost[t] else DELIVERED
        c = cap[t]
        served = q if q < c else c
        q -= served
        served_total += served
        if c > 0:
            busy += served / c
        elif q > 0:
            busy += 1.0
    return q, served_total, busy


@dataclass
class LinkSchedule:
    """One episode's link: per-ms capacity (bytes), its cumulative sum, propagation delay, loss draws."""

    cap: np.ndarray  # (n_ms,) bytes per ms, includes a tail beyond the episode for late deliveries
    ccum: np.ndarray  # (n_ms + 1,) ccum[t] = bytes carried before ms t
    prop_ms: np.ndarray  # (n_ms,) one-way propagation delay of a frame sent in that ms
    lost: np.ndarray  # (n_ms,) bool: a frame sent in that ms is lost on the channel
    bmax: float  # bottleneck buffer, bytes

    @classmethod
    def build(cls, cap: np.ndarray, prop_ms: np.ndarray, lost: np.ndarray, bmax: float) -> LinkSchedule:
        cap = np.ascontiguousarray(cap, dtype=np.float64)
        ccum = np.concatenate([[0.0], np.cumsum(cap)])
        return cls(cap, ccum, np.ascontiguousarray(prop_ms, np.float64), np.ascontiguousarray(lost, np.bool_), float(bmax))

    def run(self, q0: float, t0: int, sizes: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
        n = sizes.shape[0]
        delay = np.empty(n)
        status = np.empty(n, np.int8)
        q, served, busy = simulate_interval(q0, t0, np.ascontiguousarray(sizes, np.float64), self.cap, self.ccum,
                                            self.lost, self.bmax, delay, status)
        return q, served, busy, delay, status


def gilbert_elliott_loss_prob(rng: np.random.Generator, n_ms: int, gaps_s: np.ndarray, loss_pct: np.ndarray,
                              burst_ms: int = 70) -> np.ndarray:
    """Per-ms loss probability from a bursty two-state (Gilbert-Elliott) process fitted to a real profile.

    Good-state sojourns are drawn from the profile's measured gaps, bad-state bursts last ``burst_ms`` and
    lose the profile's measured ``loss_pct`` (drawn per burst): the empirical semi-Markov version of GE.
    """
    out = np.zeros(n_ms)
    if gaps_s.size == 0:
        return out
    n_draw = int(n_ms / 1000.0 / max(float(np.mean(gaps_s)), 0.01)) + 16
    gaps = rng.choice(gaps_s, size=n_draw) * 1000.0
    pct = rng.choice(loss_pct, size=n_draw) / 100.0
    t = float(rng.uniform(0, gaps[0]))  # start mid-gap so episodes don't all begin with a clean stretch
    for g, p in zip(gaps[1:], pct, strict=False):
        t += g
        a = int(t)
        if a >= n_ms:
            break
        out[a : min(a + burst_ms, n_ms)] = p
        t += burst_ms
    return out
