"""LiveControl: the daemon's observation means what the simulator's does (backlog = bottleneck queue)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from neurolink.control.observation import unpack
from neurolink.sender_control import LiveControl


class _Recorder:
    """A controller that keeps the observations it is given and holds level 0."""

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []

    def act(self, obs: np.ndarray) -> int:
        self.obs.append(np.asarray(obs))
        return 0


_INTERVAL = [0]


def _fb(delay_ms: float, capacity_bps: float, interval: int | None = None) -> SimpleNamespace:
    if interval is None:
        _INTERVAL[0] += 1
        interval = _INTERVAL[0]
    return SimpleNamespace(throughput_bps=capacity_bps, delay_ms=delay_ms, delay_gradient=0.0, loss_fraction=0.0,
                           interval=interval)


def test_delay_above_its_minimum_is_seen_as_bottleneck_backlog():
    rec = _Recorder()
    lc = LiveControl(rec, 4, frame_s=0.001, raw_frame_bytes=240.0)
    for _ in range(50):
        lc.observe_frame(0, 200)  # level 0 costs 200 bytes per 1 ms frame: 1.6 Mbit/s
    stream_bps = 200 * 8 / 0.001
    for d in (20.0, 21.0, 20.0):  # an empty queue: the path's base delay
        lc.decide(_fb(d, stream_bps), backlog_ms=0.0, level=0)
    lc.decide(_fb(25.0, stream_bps), backlog_ms=5.0, level=0)  # the delay rise is the sender's own queue
    assert lc.queue_ms == 0.0
    assert abs(unpack(rec.obs[-1]).backlog[-1] * 100 - 5.0) < 1e-4  # only the sender's own queue (float32)
    # 100 ms of queueing (beyond the sender's own 5 ms) on a link at half the level-0 rate holds 50 ms of it
    lc.decide(_fb(125.0, stream_bps / 2), backlog_ms=5.0, level=0)
    assert abs(lc.queue_ms - 50.0) < 1e-9
    assert abs(unpack(rec.obs[-1]).backlog[-1] * 100 - 55.0) < 1e-4
    # no feedback yet, or a feedback without a delay: the last estimate stands, nothing breaks
    lc.decide(_fb(float("nan"), stream_bps), backlog_ms=0.0, level=0)
    assert abs(lc.queue_ms - 50.0) < 1e-9
    lc.decide(None, backlog_ms=0.0, level=0)
    assert len(rec.obs) == 7


def test_queue_estimate_ignores_reused_feedback_and_caps_the_capacity_factor():
    lc = LiveControl(_Recorder(), 4, frame_s=0.001, raw_frame_bytes=240.0)
    for _ in range(50):
        lc.observe_frame(0, 200)
    stream_bps = 200 * 8 / 0.001
    lc.decide(_fb(20.0, stream_bps), backlog_ms=0.0, level=0)
    stale = _fb(120.0, stream_bps)
    for _ in range(400):  # feedback lost for 40 s: the sender reuses the last one each interval
        lc.decide(stale, backlog_ms=0.0, level=0)
    lc.decide(_fb(60.0, stream_bps), backlog_ms=0.0, level=0)
    assert abs(lc.queue_ms - 40.0) < 1e-9  # the base delay is still 20 ms, not the stale 120
    # a capacity estimate 100x the stream (a collapsed packet pair) counts as 4x at most
    lc.decide(_fb(30.0, 100 * stream_bps), backlog_ms=0.0, level=0)
    assert abs(lc.queue_ms - 40.0) < 1e-9
    lc.decide(_fb(1e300, stream_bps), backlog_ms=0.0, level=0)
    assert lc.queue_ms == LiveControl.MAX_QUEUE_MS
