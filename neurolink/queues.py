"""Bounded queues that never block the producer: on overflow the OLDEST item is dropped and counted.

Acquisition must never wait for the network; stale data is worth less than fresh data.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """asyncio queue with a hard bound; ``put_nowait`` evicts the oldest item when full."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._event = asyncio.Event()
        self.dropped = 0
        self.put_count = 0
        self.closed = False

    def put_nowait(self, item: T) -> T | None:
        """Add an item; returns the evicted item (if any) so callers can account for it."""
        evicted = None
        if len(self._items) >= self.maxsize:
            evicted = self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.put_count += 1
        self._event.set()
        return evicted

    async def get(self) -> T | None:
        """Next item; ``None`` once the queue is closed and drained."""
        while not self._items:
            if self.closed:
                return None
            self._event.clear()
            await self._event.wait()
        return self._items.popleft()

    def close(self) -> None:
        """No more puts: consumers drain what is left, then get ``None``."""
        self.closed = True
        self._event.set()

    def get_nowait(self) -> T | None:
        return self._items.popleft() if self._items else None

    def peek_all(self) -> list[T]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items
