"""Sink contract: where decoded samples go (an LSL outlet, an archive, memory)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from neurolink.wire.format import StreamHeader


class Sink(ABC):
    @abstractmethod
    def open(self, header: StreamHeader) -> None:
        """Create the output for a stream (called once per stream header / sender session)."""

    @abstractmethod
    def push(self, data: np.ndarray, timestamps: np.ndarray, *, concealed: bool = False) -> None:
        """Deliver samples (samples, channels) with per-sample timestamps in the receiver's clock."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release."""


class MemorySink(Sink):
    """Collects everything in memory (tests, verification)."""

    def __init__(self) -> None:
        self.header: StreamHeader | None = None
        self.parts: list[np.ndarray] = []
        self.ts: list[np.ndarray] = []
        self.concealed_samples = 0

    def open(self, header: StreamHeader) -> None:
        self.header = header

    def push(self, data: np.ndarray, timestamps: np.ndarray, *, concealed: bool = False) -> None:
        self.parts.append(np.array(data, copy=True))
        self.ts.append(np.array(timestamps, copy=True))
        if concealed:
            self.concealed_samples += data.shape[0]

    def data(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.empty((0, 0))

    def timestamps(self) -> np.ndarray:
        return np.concatenate(self.ts) if self.ts else np.empty(0)
