"""Cut a chunked sample stream into fixed frames of N samples with first-sample timestamp and sequence.

Regular streams: every frame holds exactly ``frame_samples`` (the last one on flush may be shorter), so the
receiver reconstructs per-sample timestamps as ``t0 + i / fs``. Irregular streams (markers, nominal rate 0)
carry one sample per frame with its own timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class RawFrame:
    seq: int
    timestamp: float  # first sample, sender's LSL clock
    data: np.ndarray  # (n_samples, n_channels)


class Framer:
    def __init__(self, frame_samples: int, n_channels: int, dtype: np.dtype | str, regular: bool = True):
        if frame_samples < 1:
            raise ValueError(f"frame_samples must be >= 1, got {frame_samples}")
        self.frame_samples = frame_samples if regular else 1
        self.n_channels = n_channels
        # LSL string streams (markers) are framed as object arrays of str: no fixed-size numpy dtype holds
        # text exactly (a ``<U`` array pads, and drops trailing NULs)
        self.dtype = np.dtype(object) if isinstance(dtype, str) and dtype == "string" else np.dtype(dtype)
        self.regular = regular
        self.seq = 0
        self._buf = np.empty((self.frame_samples, n_channels), dtype=self.dtype)
        self._fill = 0
        self._t0 = 0.0
        self.samples_in = 0

    def push(self, data: np.ndarray, timestamps: np.ndarray) -> Iterator[RawFrame]:
        """Feed a chunk; yields every complete frame (copies, safe to keep)."""
        n = data.shape[0]
        self.samples_in += n
        i = 0
        fs = self.frame_samples
        while i < n:
            if self._fill == 0:
                self._t0 = float(timestamps[i])
                # fast path: whole frames straight from the chunk
                if n - i >= fs:
                    yield self._emit(np.array(data[i : i + fs], dtype=self.dtype, copy=True), self._t0)
                    i += fs
                    continue
            take = min(fs - self._fill, n - i)
            self._buf[self._fill : self._fill + take] = data[i : i + take]
            self._fill += take
            i += take
            if self._fill == fs:
                yield self._emit(self._buf.copy(), self._t0)
                self._fill = 0

    def flush(self) -> RawFrame | None:
        """Emit the partial frame (on shutdown) so no sample is lost."""
        if self._fill == 0:
            return None
        frame = self._emit(self._buf[: self._fill].copy(), self._t0)
        self._fill = 0
        return frame

    @property
    def pending_samples(self) -> int:
        return self._fill

    def _emit(self, data: np.ndarray, t0: float) -> RawFrame:
        f = RawFrame(self.seq, t0, data)
        self.seq += 1
        return f
