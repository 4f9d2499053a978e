"""Helpers for tests and benchmarks that run a whole sender -> transport -> receiver pipeline in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from neurolink.wire.format import StreamHeader

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


class ReliableLink:
    """A :class:`~neurolink.reliable.sender.ReliableSender` and a :class:`~neurolink.reliable.receiver.ReliableReceiver`
    joined by a list instead of a transport, archiving to ``tmp_path/arch.zarr``: every step is deterministic,
    :meth:`deliver` can drop or reverse what crosses, ``up = False`` loses whatever is sent meanwhile.

    ``sink_kw`` go to each :class:`~neurolink.sinks.archive.ArchiveSink`, ``receiver_kw`` to the receiver
    (``nack_holdoff_s`` 0 by default), the rest to the sender (test-sized spool and timers by default).
    Subclasses may override :meth:`check_ack` to assert on every ack before the sender sees it."""

    def __init__(self, tmp_path: str | Path, header: StreamHeader, *, sink_kw: dict[str, Any] | None = None,
                 receiver_kw: dict[str, Any] | None = None, offset: float = 0.0, **sender_kw: Any) -> None:
        from neurolink.reliable.sender import ReliableSender

        self.header = header
        self.sid = header.stream_id
        self.rx = SimpleNamespace(streams={self.sid: SimpleNamespace(header=header, applied_offset=offset)})
        self.path = str(Path(tmp_path) / "arch.zarr")
        self.wire: list[bytes] = []
        self.up = True
        self.sink_kw = sink_kw or {}
        self.receiver_kw = {"nack_holdoff_s": 0.0, **(receiver_kw or {})}
        kw = {"spool_mb": 16.0, "segment_mb": 0.0625, "rto_s": 0.0, "tail_s": 0.0, "retransmit_per_s": 1000, **sender_kw}
        self.tx = ReliableSender(Path(tmp_path) / "spool", **kw)
        self.tx.attach(self.sid, self._send, header.channel_format)
        self.new_receiver()

    async def _send(self, msg: bytes) -> None:
        if self.up:
            self.wire.append(msg)

    def new_receiver(self) -> None:
        """A fresh receiver on the same archive (a restart; the old one is dropped without close())."""
        from neurolink.reliable.receiver import ReliableReceiver
        from neurolink.sinks.archive import ArchiveSink

        self.rel = ReliableReceiver(lambda h: ArchiveSink(self.path, **self.sink_kw), **self.receiver_kw)

    def deliver(self, drop: Callable[[int], bool] = lambda i: False, reverse: bool = False) -> None:
        msgs, self.wire = self.wire, []
        for i, m in enumerate(reversed(msgs) if reverse else msgs):
            if not drop(i):
                self.rel.on_message(self.rx, m)

    def check_ack(self, ack: Any) -> None:
        """Called with every ack before the sender sees it."""

    def ack(self) -> None:
        from neurolink.wire import ack as wack

        for st in self.rel.streams.values():
            a = self.rel.ack_for(st)
            self.check_ack(a)
            self.tx.on_feedback(wack.pack_ack(a))

    def done(self) -> bool:
        """The receiver saw the end of the stream and the sender got it acknowledged."""
        st, tx = self.rel.streams.get(self.sid), self.tx.streams[self.sid]
        return st is not None and st.ended and tx.eos_seq is not None and tx.acked > tx.eos_seq

    async def rounds(self, n: int = 200, sleep: float = 0.0) -> None:
        """Up to ``n`` ack -> retransmit -> deliver rounds, until :meth:`done`; ``sleep`` lets timers run."""
        for _ in range(n):
            self.ack()
            await self.tx.step(1.0)
            self.deliver()
            if self.done():
                return
            if sleep:
                await asyncio.sleep(sleep)

    async def finish(self, n_frames: int, rounds: int = 300) -> None:
        """End the stream after ``n_frames`` frames and run rounds until it is archived."""
        await self.tx.on_end(self.sid, n_frames, self.header.channel_count, self.header.channel_format)
        await self.rounds(rounds)
