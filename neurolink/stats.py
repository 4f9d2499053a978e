"""Small, allocation-free statistics for hot paths: fixed ring buffers of timings and EWMAs."""

from __future__ import annotations

import numpy as np


class Ring:
    """Last ``n`` float samples; percentiles on demand (no per-sample allocation)."""

    def __init__(self, n: int = 4096) -> None:
        self._a = np.zeros(n, dtype=np.float64)
        self._i = 0
        self._full = False

    def add(self, v: float) -> None:
        self._a[self._i] = v
        self._i += 1
        if self._i == self._a.size:
            self._i = 0
            self._full = True

    def values(self) -> np.ndarray:
        return self._a if self._full else self._a[: self._i]

    def __len__(self) -> int:
        return self._a.size if self._full else self._i

    def pct(self, q: float) -> float:
        v = self.values()
        return float(np.percentile(v, q)) if v.size else float("nan")

    def clear(self) -> None:
        self._i = 0
        self._full = False


class ClockOffset:
    """NTP-style sender-minus-receiver clock offset from probe round trips; trusts the lowest-RTT sample."""

    def __init__(self, window: int = 256) -> None:
        self._samples: list[tuple[float, float]] = []  # (rtt, offset)
        self.window = window

    def add(self, t0: float, t1: float, t2: float, t3: float) -> None:
        """t0 receiver send, t1 sender receive, t2 sender send, t3 receiver receive."""
        rtt = (t3 - t0) - (t2 - t1)
        offset = ((t1 - t0) + (t2 - t3)) / 2.0
        if rtt < 0 or rtt > 10:
            return
        self._samples.append((rtt, offset))
        if len(self._samples) > self.window:
            self._samples.pop(0)

    @property
    def known(self) -> bool:
        return bool(self._samples)

    @property
    def settled(self) -> bool:
        """Enough round trips that the lowest-RTT one is trustworthy."""
        return len(self._samples) >= 5

    @property
    def offset(self) -> float:
        if not self._samples:
            return 0.0
        return min(self._samples)[1]

    @property
    def rtt(self) -> float:
        return min(self._samples)[0] if self._samples else float("nan")
