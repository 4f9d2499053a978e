"""``neurolink/RateControl-v0``: pick a ladder level every control interval over a trace-driven link.

One step = one control interval (``interval_ms`` frames of 1 ms). Frame sizes come from the measured
codec model, the link from a trace (scaled by the one rule in ``sim.traces``), loss from the trace's own
schedule (Akamai) or from a Gilbert-Elliott process replaying a real Akamai loss profile. The
observation comes from :class:`neurolink.control.observation.ObservationBuilder`, fed only with what a
receiver can report (arrivals inside the interval), never with future information. Reward: ``sim.reward``.

Episode options (``reset(options=...)``): ``k`` (scale factor), ``trace`` (index), ``stream`` (index),
``start_ms``, ``loss_profile`` (name or "none"). Everything else is drawn from the env's RNG, which
``reset(seed=...)`` owns: the same seed gives the same episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from neurolink.control.observation import ObservationBuilder
from sim.codec_model import CodecModel, load_codec_model
from sim.fit_loss_profiles import load_loss_profiles
from sim.network import CHANNEL_LOSS, DELIVERED, LinkSchedule, gilbert_elliott_loss_prob
from sim.reward import RewardConfig, load_reward_config, step_reward
from sim.traces import Trace, load_traces

TAIL_MS = 30_000  # capacity simulated past the episode end so late frames still get a delivery time
LOOKBACK_FRAMES = 30_000


class RateControlEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        traces: str | Path | list | tuple,
        seed: int | None = None,
        k: float = 1.0,
        codec_model: CodecModel | str | Path | None = None,
        reward_config: RewardConfig | str | Path | None = None,
        episode_s: float | None = None,
        random_start: bool = True,
        loss: bool = True,
    ) -> None:
        if isinstance(traces, (list, tuple)) and traces and all(isinstance(t, Trace) for t in traces):
            self.traces: list[Trace] = list(traces)
        else:
            self.traces = load_traces(traces)
        self.model = codec_model if isinstance(codec_model, CodecModel) else load_codec_model(codec_model)
        self.cfg = reward_config if isinstance(reward_config, RewardConfig) else load_reward_config(reward_config)
        self.k = float(k)
        self.random_start = random_start
        self.loss = loss
        self.loss_profiles = load_loss_profiles()
        self.n_levels = self.model.n_levels
        self.frames = int(self.cfg.interval_ms)
        self.n_steps = int(round((episode_s or self.cfg.episode_s) * 1000 / self.frames))
        self.builder = ObservationBuilder(self.n_levels, frame_s=self.model.streams[0].frame_s)
        self.action_space = gym.spaces.Discrete(self.n_levels)
        self.observation_space = gym.spaces.Box(-50.0, 50.0, shape=(self.builder.size,), dtype=np.float32)
        self._seed = seed
        self._first_reset = True
        self.augmenter = None  # set by sim.wrappers.TrainingAugmentation on training envs only
        self.episode: dict[str, Any] = {}

    # -- episode set-up -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._first_reset:
            seed = self._seed
        self._first_reset = False
        super().reset(seed=seed)
        opts = dict(options or {})
        rng = self.np_random
        ti = int(opts["trace"]) if "trace" in opts else int(rng.integers(len(self.traces)))
        si = int(opts["stream"]) if "stream" in opts else int(rng.integers(len(self.model.streams)))
        trace, stream = self.traces[ti], self.model.streams[si]
        aug = self.augmenter
        if aug is not None:  # training only (sim.augment): a transformed copy of a training trace
            trace = aug.transform_trace(rng, trace)
        k = float(opts.get("k", self.k))
        period_ms = max(1, int(round(trace.period_s * 1000)))
        start = int(opts["start_ms"]) if "start_ms" in opts else (int(rng.integers(period_ms)) if self.random_start else 0)
        n_ms = self.n_steps * self.frames
        total = n_ms + TAIL_MS
        scale = trace.scale_for(stream.stream_bps, k)
        prop = trace.prop_delay_ms(start, total, self.cfg.default_delay_ms)
        p_loss = trace.loss_prob_ms(start, total)
        if aug is not None:
            cap = aug.capacity(rng, trace, start, total, scale)
            prop = aug.prop_delay(rng, total, prop)
            prof = "augment" if p_loss is None else "trace"
            if p_loss is None:
                p_loss = aug.loss_prob(rng, total)
        else:
            cap = trace.capacity_ms(start, total, scale)
            names = list(self.loss_profiles)
            prof = opts.get("loss_profile", names[int(rng.integers(len(names)))] if names else "none")
        if not self.loss or prof == "none":
            prof = "none"
            p_loss = np.zeros(total)
        elif p_loss is None:
            gaps, pct = self.loss_profiles[prof]
            p_loss = gilbert_elliott_loss_prob(rng, total, gaps, pct)
        elif prof != "augment":
            prof = "trace"
        lost = rng.random(total) < p_loss
        bmax = self.cfg.buffer_ms * k * stream.stream_bps / 8000.0
        self.link = LinkSchedule.build(cap, prop, lost, bmax)
        self.sizes = np.ascontiguousarray(stream.sample_sizes(rng, n_ms))
        self.stream = stream
        self.fidelity = stream.fidelity
        self.bytes_per_level = stream.mean_bytes
        self.q = 0.0
        self.t = 0
        self.level = 0
        self.prev_delay = 0.0
        self.arrival = np.full(n_ms, np.inf)
        self._lo = 0
        self.status = np.zeros(n_ms, np.int8)
        self.episode = {"trace": trace.name, "trace_index": ti, "stream": stream.name, "k": k, "start_ms": start,
                        "loss_profile": prof, "scale": scale}
        self.builder.reset()
        obs = self.builder.update(0.0, 0.0, 0.0, 0.0, 0.0, 0, self.bytes_per_level, stream.stream_bps, self.fidelity)
        return obs, dict(self.episode)

    # -- one control interval -------------------------------------------------------------------
    def step(self, action):
        a = int(action)
        if not 0 <= a < self.n_levels:
            raise ValueError(f"action {action!r} outside 0..{self.n_levels - 1}")
        f, t0 = self.frames, self.t * self.frames
        sizes = self.sizes[a, t0 : t0 + f]
        q1, served, busy, delay, status = self.link.run(self.q, t0, sizes)
        ok = (status == DELIVERED) & (delay <= self.cfg.deadline_ms)
        n_ok = int(ok.sum())
        n_chan = int((status == CHANNEL_LOSS).sum())
        reward = step_reward(n_ok, n_chan, f, float(self.fidelity[a]), a, self.level, self.cfg)
        sl = slice(t0, t0 + f)
        send = np.arange(t0, t0 + f, dtype=np.float64)
        self.arrival[sl] = np.where(np.isfinite(delay), send + delay + self.link.prop_ms[t0 : t0 + f], send)
        self.status[sl] = status
        # receiver feedback: frames whose arrival (or detected loss) falls inside this interval
        end = t0 + f
        # frames before self._lo all arrived before t0 (exact bookkeeping, no window scan over the episode)
        lo = max(self._lo, end - LOOKBACK_FRAMES)
        arr, st = self.arrival[lo:end], self.status[lo:end]
        win = (arr >= t0) & (arr < end)
        got = win & (st == DELIVERED)
        if got.any():
            sent = np.flatnonzero(got) + lo
            delay_ms = float(np.mean(arr[got] - sent))
        else:  # nothing arrived: the oldest frame still in flight bounds the delay from below
            pending = np.flatnonzero(arr >= end)
            delay_ms = float(end - (pending[0] + lo)) if pending.size else self.prev_delay
        loss_frac = float(np.mean(st[win] != DELIVERED)) if win.any() else 0.0
        later = np.flatnonzero(arr >= end)
        self._lo = lo + int(later[0]) if later.size else end
        # capacity estimate (what packet-pair dispersion measures): the link's mean rate over the interval
        thr = float(self.link.cap[t0:end].sum()) * 8000.0 / f
        grad = delay_ms - self.prev_delay
        self.prev_delay = delay_ms
        self.q = q1
        prev = self.level
        self.level = a
        self.t += 1
        backlog_ms = q1 * 8000.0 / self.stream.stream_bps
        obs = self.builder.update(thr, delay_ms, grad, loss_frac, backlog_ms, a, self.bytes_per_level,
                                  self.stream.stream_bps, self.fidelity)
        info = {
            "frames": f, "frames_ok": n_ok, "frames_late": int(((status == DELIVERED) & ~ok).sum()),
            "frames_lost": int((status != DELIVERED).sum()), "frames_channel_lost": n_chan, "level": a, "switch": int(a != prev),
            "fidelity": float(self.fidelity[a]), "throughput_bps": thr, "delay_ms": delay_ms,
            "loss_fraction": loss_frac, "backlog_ms": backlog_ms,
        }
        truncated = self.t >= self.n_steps
        return obs, float(reward), False, truncated, info


def make_rate_control_env(traces, seed: int | None = None, ks: tuple[float, ...] | None = None, k: float | None = None,
                          **kwargs) -> gym.Env:
    """Entry point of ``neurolink/RateControl-v0``: the env wrapped with the trace-scaling rule.

    ``k`` fixes the scale factor; otherwise it is drawn per episode from ``ks`` (default ``TRAIN_KS``).
    """
    from sim.traces import TRAIN_KS
    from sim.wrappers import TraceScaling

    env = RateControlEnv(traces, seed=seed, **kwargs)
    return TraceScaling(env, ks=(k,) if k is not None else (ks or TRAIN_KS))
