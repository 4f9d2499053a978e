"""Helpers for tests and benchmarks that run a whole sender -> transport -> receiver pipeline in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neurolink.receiver import Receiver
    from neurolink.sender import Sender
    from neurolink.sources.replay import ReplayOutlet


async def wait_replayed(outlet: ReplayOutlet, sender: Sender, n_total: int, timeout_s: float, stream_id: int = 1,
                        poll_s: float = 0.05) -> bool:
    """Poll until the replay outlet has pushed everything and the sender has read ``n_total`` samples of
    ``stream_id``; False after ``timeout_s`` (the caller's assertions then say what is missing)."""
    for _ in range(int(timeout_s / poll_s)):
        await asyncio.sleep(poll_s)
        if outlet.done.is_set() and stream_id in sender.streams and sender.streams[stream_id].stats.samples_in >= n_total:
            return True
    return False


async def stop_pipeline(sender: Sender, tx: Awaitable[object], receiver: Receiver, rx: Awaitable[object],
                        end_timeout_s: float = 5.0) -> None:
    """Stop the sender and await its task ``tx``, wait for the receiver to see the end of the streams,
    then stop the receiver and await its task ``rx``."""
    sender.stop()
    await tx
    await asyncio.wait_for(receiver.ended_event.wait(), end_timeout_s)
    receiver.stop()
    await rx
