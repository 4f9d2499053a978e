"""Training-only trace augmentation: widen the TRAINING family so a policy meets faster, harsher links.

Why: Pensieve's FCC/HSDPA traces change rate every 1-5 s, carry no loss and the simulator gives them a
constant 20 ms propagation delay, while cellular links change within one 100 ms control interval, stall,
lose bursts of packets and swing their latency. A policy that only saw the former learns "next rate =
last rate" and reads any delay rise as congestion. Every transformation below is applied to a TRAINING
trace with the env's RNG (so ``reset(seed=...)`` still reproduces the episode); nothing here reads a
held-out trace or a profile fitted on one (parameters come from fixed generic ranges, documented here):

- time scaling: the trace's time axis x ``s``, ``s`` log-uniform in [0.02, 1] (a 1 s step becomes 20 ms-1 s);
- splicing: with probability ``p_splice`` the episode's capacity is cut into 1-8 s pieces taken from random
  offsets of the (time-scaled) trace, so level jumps come without warning;
- outages: with probability ``p_outage``, zero-capacity stalls of 0.1-2 s, on average one per 5-20 s;
- propagation delay: base one-way delay uniform in [10, 80] ms, re-drawn every 70 ms step with log-normal
  jitter (sigma drawn in [0, 0.8]), clipped to [5, 400] ms;
- loss: a two-state Gilbert-Elliott process with exponential good-state sojourns of mean 0.2-10 s
  (log-uniform), bursts of 20-200 ms losing 5-100 % of frames (uniform), or no loss (probability 0.2).

The scaling rule and ``k`` are applied AFTER augmentation, to the augmented trace, exactly as for any
trace; the reward, the oracle and the evaluation env are untouched (the augmenter is only set on the
training envs, see :class:`sim.wrappers.TrainingAugmentation`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sim.traces import Trace


@dataclass(frozen=True)
class AugmentConfig:
    p_timescale: float = 0.8
    timescale_range: tuple[float, float] = (0.02, 1.0)
    p_splice: float = 0.3
    splice_s: tuple[float, float] = (1.0, 8.0)
    p_outage: float = 0.3
    outage_s: tuple[float, float] = (0.1, 2.0)
    outage_every_s: tuple[float, float] = (5.0, 20.0)
    p_delay: float = 0.7
    delay_base_ms: tuple[float, float] = (10.0, 80.0)
    delay_sigma: tuple[float, float] = (0.0, 0.8)
    delay_step_ms: int = 70
    delay_clip_ms: tuple[float, float] = (5.0, 400.0)
    p_no_loss: float = 0.2
    loss_gap_s: tuple[float, float] = (0.2, 10.0)
    loss_burst_ms: tuple[int, int] = (20, 200)
    loss_pct: tuple[float, float] = (5.0, 100.0)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


class TraceAugmenter:
    """Draws one episode's augmentation from the env's RNG (see the module docstring for the ranges)."""

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        self.cfg = cfg or AugmentConfig()

    def transform_trace(self, rng: np.random.Generator, trace: Trace) -> Trace:
        c = self.cfg
        if rng.random() >= c.p_timescale:
            return trace
        s = _log_uniform(rng, *c.timescale_range)
        period = max(trace.period_s * s, 0.002)
        return replace(trace, name=f"{trace.name}@x{s:.3f}", t_s=trace.t_s * s, period_s=period)

    def capacity(self, rng: np.random.Generator, trace: Trace, start_ms: int, total: int, scale: float) -> np.ndarray:
        c = self.cfg
        period_ms = max(1, int(round(trace.period_s * 1000)))
        if rng.random() < c.p_splice:
            parts, n = [], 0
            while n < total:
                ln = int(rng.uniform(*c.splice_s) * 1000)
                parts.append(trace.capacity_ms(int(rng.integers(period_ms)), ln, scale))
                n += ln
            cap = np.concatenate(parts)[:total]
        else:
            cap = trace.capacity_ms(start_ms, total, scale)
        if rng.random() < c.p_outage:
            cap = cap.copy()
            every = rng.uniform(*c.outage_every_s) * 1000
            t = rng.exponential(every)
            while t < total:
                ln = int(rng.uniform(*c.outage_s) * 1000)
                cap[int(t) : int(t) + ln] = 0.0
                t += ln + rng.exponential(every)
        return cap

    def prop_delay(self, rng: np.random.Generator, total: int, default: np.ndarray) -> np.ndarray:
        c = self.cfg
        if rng.random() >= c.p_delay:
            return default
        base = rng.uniform(*c.delay_base_ms)
        sigma = rng.uniform(*c.delay_sigma)
        n_steps = total // c.delay_step_ms + 1
        steps = base * np.exp(sigma * rng.standard_normal(n_steps))
        return np.clip(np.repeat(steps, c.delay_step_ms)[:total], *c.delay_clip_ms)

    def loss_prob(self, rng: np.random.Generator, total: int) -> np.ndarray:
        c = self.cfg
        out = np.zeros(total)
        if rng.random() < c.p_no_loss:
            return out
        mean_gap = _log_uniform(rng, *c.loss_gap_s) * 1000
        lo_b, hi_b = c.loss_burst_ms
        t = rng.exponential(mean_gap)
        while t < total:
            ln = int(rng.integers(lo_b, hi_b + 1))
            out[int(t) : int(t) + ln] = rng.uniform(*c.loss_pct) / 100.0
            t += ln + rng.exponential(mean_gap)
        return out
