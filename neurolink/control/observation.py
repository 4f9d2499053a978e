"""THE observation vector of every rate controller, built by one class for the simulator and the daemon.

Every control interval the owner calls :meth:`ObservationBuilder.update` with receiver-feedback numbers;
it returns a float32 vector that is scale-free (rates divided by the stream's lossless bitrate, times
in units of 100 ms), so a policy trained on a 1.5 Mbit/s stream runs unchanged on a 490 Mbit/s one.

Layout (H = HISTORY intervals, oldest first; L = number of ladder levels)::

    [0      : H)      throughput / stream_bps              (capacity estimate from packet dispersion)
    [H      : 2H)     one-way delay_ms / 100
    [2H     : 3H)     delay_gradient (ms per interval) / 100
    [3H     : 4H)     loss fraction in [0, 1]
    [4H     : 5H)     backlog_ms / 100                     (backlog in ms of the lossless stream)
    [5H     : 5H+L)   one-hot of the last level sent
    [5H+L   : 5H+2L)  bitrate of each level / stream_bps   (bytes_per_level * 8 / frame_s / stream_bps)
    [5H+2L  : 5H+3L)  fidelity score of each level in [0, 1]

Every entry is clipped to [-CLIP, CLIP].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolink.errors import ConfigError

HISTORY = 8
CLIP = 50.0
TIME_UNIT_MS = 100.0


@dataclass(frozen=True)
class ObsView:
    """Named views into one observation vector (what classic controllers read)."""

    throughput: np.ndarray  # (H,) in units of stream_bps
    delay: np.ndarray  # (H,) in units of 100 ms
    delay_gradient: np.ndarray
    loss: np.ndarray
    backlog: np.ndarray  # (H,) in units of 100 ms of the lossless stream
    level: int
    rate: np.ndarray  # (L,) bitrate of each level in units of stream_bps
    fidelity: np.ndarray  # (L,)

    @property
    def n_levels(self) -> int:
        return int(self.rate.shape[0])


def obs_size(n_levels: int, history: int = HISTORY) -> int:
    return 5 * history + 3 * n_levels


def unpack(obs: np.ndarray, history: int = HISTORY) -> ObsView:
    """Split an observation into named parts; the number of levels is inferred from its length."""
    o = np.asarray(obs, dtype=np.float64).ravel()
    rest = o.shape[0] - 5 * history
    if rest <= 0 or rest % 3:
        raise ConfigError("observation", f"length {o.shape[0]} does not match 5*{history} + 3*n_levels")
    n = rest // 3
    h = history
    onehot = o[5 * h : 5 * h + n]
    return ObsView(
        throughput=o[0:h], delay=o[h : 2 * h], delay_gradient=o[2 * h : 3 * h], loss=o[3 * h : 4 * h],
        backlog=o[4 * h : 5 * h], level=int(onehot.argmax()) if onehot.any() else 0,
        rate=o[5 * h + n : 5 * h + 2 * n], fidelity=o[5 * h + 2 * n : 5 * h + 3 * n],
    )


class ObservationBuilder:
    """Keeps the last ``history`` intervals of feedback and emits the documented vector."""

    def __init__(self, n_levels: int, history: int = HISTORY, frame_s: float = 0.001) -> None:
        if n_levels < 1:
            raise ConfigError("n_levels", f"expected >= 1, got {n_levels}")
        self.n_levels = n_levels
        self.history = history
        self.frame_s = frame_s
        self.size = obs_size(n_levels, history)
        self._hist = np.zeros((5, history))

    def reset(self) -> None:
        self._hist[:] = 0.0

    def update(
        self,
        throughput_bps: float,
        delay_ms: float,
        delay_gradient: float,
        loss_fraction: float,
        backlog_ms: float,
        level: int,
        bytes_per_level,
        stream_bps: float,
        fidelity_per_level=None,
    ) -> np.ndarray:
        """Append one interval of feedback; ``bytes_per_level`` = mean encoded bytes per frame per level."""
        if not stream_bps > 0:
            raise ConfigError("stream_bps", f"expected > 0, got {stream_bps!r}")
        bpl = np.asarray(bytes_per_level, dtype=np.float64).ravel()
        if bpl.shape[0] != self.n_levels:
            raise ConfigError("bytes_per_level", f"expected {self.n_levels} values, got {bpl.shape[0]}")
        if not 0 <= int(level) < self.n_levels:
            raise ConfigError("level", f"expected 0..{self.n_levels - 1}, got {level!r}")
        fid = (np.linspace(1.0, 0.5, self.n_levels) if fidelity_per_level is None
               else np.asarray(fidelity_per_level, dtype=np.float64).ravel())
        new = np.array([
            throughput_bps / stream_bps, delay_ms / TIME_UNIT_MS, delay_gradient / TIME_UNIT_MS,
            loss_fraction, backlog_ms / TIME_UNIT_MS,
        ])
        self._hist[:, :-1] = self._hist[:, 1:]
        self._hist[:, -1] = np.nan_to_num(new, nan=0.0, posinf=CLIP, neginf=-CLIP)
        onehot = np.zeros(self.n_levels)
        onehot[int(level)] = 1.0
        rate = bpl * 8.0 / self.frame_s / stream_bps
        out = np.concatenate([self._hist.ravel(), onehot, rate, fid])
        return np.clip(np.nan_to_num(out, nan=0.0), -CLIP, CLIP).astype(np.float32)
