"""Live closed loop: turn receiver feedback into the shared controller observation and pick a level.

The observation is built by :class:`neurolink.control.observation.ObservationBuilder`, the same class the
simulator uses, so a policy trained in ``sim/`` sees the same numbers in the daemon. Bytes per level:
the level in use is measured (EWMA of real encoded frames); the others start from the measured codec
model (sim/data/codec_model.json, ratios relative to level 0) and are rescaled by what level 0 really
costs on this stream.

Backlog: the simulator's backlog is the bottleneck queue (bytes waiting at the link, in ms of the
level-0 stream). In the daemon that queue sits in the network (or in a shaped link, or the kernel's
socket buffers), out of the sender's sight, so it is estimated as controllers on real paths do (LEDBAT,
BBR): one-way delay above its recent minimum is queueing delay, and queueing delay times the capacity
estimate is the bytes queued. The sender's own queue is added on top.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class LiveControl:
    def __init__(self, controller: Any, n_levels: int, frame_s: float, raw_frame_bytes: float) -> None:
        from neurolink.control.observation import ObservationBuilder

        self.controller = controller
        self.n_levels = n_levels
        self.builder = ObservationBuilder(n_levels, frame_s=frame_s if frame_s > 0 else 0.001)
        self.raw_frame_bytes = raw_frame_bytes
        rel, fid = self._prior(n_levels)
        self.rel = rel  # bytes of each level relative to raw
        self.fidelity = fid
        self.measured = np.full(n_levels, np.nan)
        self.decisions = 0
        # per-interval delays of the last BASE_DELAY_INTERVALS feedbacks: their minimum is the path's base delay
        self._delays: collections.deque[float] = collections.deque(maxlen=self.BASE_DELAY_INTERVALS)
        self.queue_ms = 0.0  # latest estimate of the bottleneck queue, in ms of the level-0 stream
        self._last_interval: int | None = None

    MAX_QUEUE_MS = 60_000.0  # a forged or broken feedback cannot make it infinite
    BASE_DELAY_INTERVALS = 300  # ~30 s at 100 ms: long enough to see an empty queue, short enough to follow a route change

    @staticmethod
    def _prior(n_levels: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            from sim.codec_model import load_codec_model

            m = load_codec_model()
            if m.n_levels == n_levels:
                rel = np.mean([s.mean_bytes / (s.samples_per_ms * 2.0) for s in m.streams], axis=0)
                fid = np.mean([s.fidelity for s in m.streams], axis=0)
                return rel, fid
            log.warning("codec model has %d levels, ladder %d: using a flat prior", m.n_levels, n_levels)
        except Exception as exc:  # the controller still works from measurements alone
            log.warning("no codec model (%s): using a flat prior", exc)
        return np.linspace(0.5, 0.05, n_levels), np.linspace(1.0, 0.3, n_levels)

    def observe_frame(self, level: int, wire_bytes: int) -> None:
        m = self.measured[level]
        self.measured[level] = wire_bytes if np.isnan(m) else 0.95 * m + 0.05 * wire_bytes

    def bytes_per_level(self) -> np.ndarray:
        est = self.rel * self.raw_frame_bytes
        if not np.isnan(self.measured[0]) and self.rel[0] > 0:
            est = self.rel / self.rel[0] * self.measured[0]
        return np.where(np.isnan(self.measured), est, self.measured)

    def decide(self, fb: Any, backlog_ms: float, level: int) -> int:
        bpl = self.bytes_per_level()
        stream_bps = float(bpl[0] * 8.0 / self.builder.frame_s)
        if fb is None:
            thr, delay, grad, loss = stream_bps, 0.0, 0.0, 0.0
        else:
            thr, delay, grad, loss = fb.throughput_bps, fb.delay_ms, fb.delay_gradient, fb.loss_fraction
            backlog_ms += self._queue_ms(fb, delay, thr, stream_bps, backlog_ms)
        obs = self.builder.update(thr, delay, grad, loss, backlog_ms, level, bpl, stream_bps, self.fidelity)
        self.decisions += 1
        return int(self.controller.act(obs))

    def _queue_ms(self, fb: Any, delay_ms: float, capacity_bps: float, stream_bps: float, local_ms: float) -> float:
        """Bottleneck queue in ms of the level-0 stream, from delay above its recent minimum.

        Only a new feedback (a new ``interval``) updates it: a lost feedback leaves the sender reusing the
        last one, which must not fill the minimum window. The delay is measured from acquisition, so the
        sender's own queue (``local_ms``, counted separately) is taken off it. The capacity factor is capped
        at 4x the stream: a packet-pair overestimate must not turn delay jitter into a large backlog."""
        interval = getattr(fb, "interval", None)
        if interval is not None and interval == self._last_interval:
            return self.queue_ms
        self._last_interval = interval
        if not (np.isfinite(delay_ms) and delay_ms > 0 and np.isfinite(capacity_bps) and capacity_bps > 0 and stream_bps > 0):
            return self.queue_ms
        self._delays.append(delay_ms)
        rise = max(0.0, delay_ms - min(self._delays) - max(local_ms, 0.0))
        self.queue_ms = min(rise * min(capacity_bps / stream_bps, 4.0), self.MAX_QUEUE_MS)
        return self.queue_ms
