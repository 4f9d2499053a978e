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


def _fb(delay_ms: float, capacity_bps: float) -> SimpleNamespace:
    return SimpleNamespace(throughput_bps=capacity_bps, delay_ms=delay_ms, delay_gradient=0.0, loss_fraction=0.0)


def test_delay_above_its_minimum_is_seen_as_bottleneck_backlog():
    rec = _Recorder()
    lc = LiveControl(rec, 4, frame_s=0.001, raw_frame_bytes=240.0)
    for _ in range(50):
        lc.observe_frame(0, 200)  # level 0 costs 200 bytes per 1 ms frame: 1.6 Mbit/s
    stream_bps = 200 * 8 / 0.001
    for d in (20.0, 21.0, 20.0):  # an empty queue: the path's base delay
        lc.decide(_fb(d, stream_bps), backlog_ms=5.0, level=0)
    assert lc.queue_ms == 0.0
    assert abs(unpack(rec.obs[-1]).backlog[-1] * 100 - 5.0) < 1e-4  # only the sender's own queue (float32)
    # 100 ms of queueing on a link at half the level-0 rate holds 50 ms of the level-0 stream
    lc.decide(_fb(120.0, stream_bps / 2), backlog_ms=5.0, level=0)
    assert abs(lc.queue_ms - 50.0) < 1e-9
    assert abs(unpack(rec.obs[-1]).backlog[-1] * 100 - 55.0) < 1e-4
    # no feedback yet, or a feedback without a delay: the last estimate stands, nothing breaks
    lc.decide(_fb(float("nan"), stream_bps), backlog_ms=0.0, level=0)
    assert abs(lc.queue_ms - 50.0) < 1e-9
    lc.decide(None, backlog_ms=0.0, level=0)
    assert len(rec.obs) == 6
