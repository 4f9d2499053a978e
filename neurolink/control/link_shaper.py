"""In-process real-time link model driven by a trace, for the live demo (sender -> shaper -> transport).

Same loader and same scaling rule as the simulator (``sim.traces``: 1 s median = k x ``stream_bps``),
same drop-tail buffer and fluid FIFO as ``sim.network`` and the same reward config for the buffer size.
``admit(nbytes, now)`` returns the time the message is delivered at the far end (queueing +
serialisation + propagation), or None when it is dropped (buffer overflow or channel loss).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from neurolink.errors import ConfigError


class LinkShaper:
    def __init__(self, trace_path: str | Path, stream_bps: float, k: float = 1.0, seed: int = 0,
                 buffer_ms: float | None = None, default_delay_ms: float | None = None,
                 loss_profile: str | None = None) -> None:
        from sim.fit_loss_profiles import load_loss_profiles
        from sim.network import gilbert_elliott_loss_prob
        from sim.reward import load_reward_config
        from sim.traces import load_trace

        if not stream_bps > 0:
            raise ConfigError("stream_bps", f"expected > 0, got {stream_bps!r}")
        if not k > 0:
            raise ConfigError("k", f"expected > 0, got {k!r}")
        cfg = load_reward_config()
        self.trace = load_trace(trace_path)
        self.rng = np.random.default_rng(seed)
        self.period_ms = max(1, int(round(self.trace.period_s * 1000)))
        scale = self.trace.scale_for(float(stream_bps), float(k))
        self.cap = self.trace.capacity_ms(0, self.period_ms, scale)  # bytes per ms over one period
        self.ccum = np.concatenate([[0.0], np.cumsum(self.cap)])
        self.total = float(self.ccum[-1])
        if self.total <= 0:
            raise ConfigError("trace", f"{trace_path}: carries no data")
        self.prop = self.trace.prop_delay_ms(0, self.period_ms, cfg.default_delay_ms if default_delay_ms is None
                                             else default_delay_ms)
        p = self.trace.loss_prob_ms(0, self.period_ms)
        if loss_profile is not None:
            profiles = load_loss_profiles()
            if loss_profile not in profiles:
                raise ConfigError("loss_profile", f"unknown {loss_profile!r}, expected one of {sorted(profiles)}")
            p = gilbert_elliott_loss_prob(self.rng, self.period_ms, *profiles[loss_profile])
        self.loss_p = p if p is not None else np.zeros(self.period_ms)
        self.bmax = (cfg.buffer_ms if buffer_ms is None else buffer_ms) * k * stream_bps / 8000.0
        self.t0: float | None = None
        self.q = 0.0
        self.t_last = 0.0  # ms since t0
        self.dropped = 0
        self.admitted = 0

    def _C(self, t_ms: float) -> float:
        """Cumulative bytes the link can carry from t0 to t_ms (looping, linear within a ms)."""
        n, r = divmod(t_ms, self.period_ms)
        i = int(r)
        return n * self.total + self.ccum[i] + (r - i) * self.cap[min(i, self.period_ms - 1)]

    def _C_inv(self, target: float) -> float:
        n, r = divmod(target, self.total)
        i = int(np.searchsorted(self.ccum, r, side="left"))
        if i == 0:
            return n * self.period_ms
        c = self.cap[i - 1]
        frac = (r - self.ccum[i - 1]) / c if c > 0 else 0.0
        return n * self.period_ms + (i - 1) + frac

    def admit(self, nbytes: int, now: float) -> float | None:
        """Offer ``nbytes`` at wall time ``now`` (s); delivery time (s) or None if dropped."""
        if nbytes < 0 or not math.isfinite(now):
            raise ConfigError("nbytes", f"expected nbytes >= 0 and a finite time, got {nbytes!r}, {now!r}")
        if self.t0 is None:
            self.t0 = now
        t = max((now - self.t0) * 1000.0, self.t_last)
        self.q = max(0.0, self.q - (self._C(t) - self._C(self.t_last)))
        self.t_last = t
        if self.q + nbytes > self.bmax:
            self.dropped += 1
            return None
        self.q += nbytes
        self.admitted += 1
        finish = self._C_inv(self._C(t) + self.q)
        i = int(t) % self.period_ms
        if self.rng.random() < self.loss_p[i]:
            self.dropped += 1
            return None
        return float(self.t0 + (finish + self.prop[i]) / 1000.0)
