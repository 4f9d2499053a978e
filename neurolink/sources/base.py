"""Source contract: an async iterator of chunks (samples + per-sample timestamps) with stream metadata."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StreamMeta:
    """What a receiver needs to recreate the stream (mirrors LSL's StreamInfo)."""

    name: str
    type: str
    source_id: str
    nominal_srate: float
    channel_count: int
    channel_format: str
    desc_xml: str = ""
    hostname: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Chunk:
    data: np.ndarray  # (samples, channels)
    timestamps: np.ndarray  # (samples,) float64, sender's LSL clock


class Source(ABC):
    """A stream of chunks. ``open()`` resolves/connects and fills ``meta``; iteration yields chunks."""

    meta: StreamMeta

    @abstractmethod
    async def open(self) -> StreamMeta: ...

    @abstractmethod
    def chunks(self) -> AsyncIterator[Chunk]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    @property
    def backlog_samples(self) -> int:
        """Samples waiting inside the source (visible backlog figure)."""
        return 0
