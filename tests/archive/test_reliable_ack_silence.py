"""Issue 8: a receiver that restarts after the sender's last archive block must still get everything.

Under CPU starvation the restarted archiving receiver came up (imports, JIT warm-up) only after the sender had
sent its end of stream: it never saw an archive block, so it never opened the stream and never acked; the
sender resent only on NACKs or on the tail timer (which needs acks), so nothing moved until the drain timeout.
The sender now resends its oldest unacknowledged block on ack silence (a probe), and the receiver asks for
the stream header when an archive block arrives before it.

No sockets and no sleeping: a list stands in for the link and a fake clock drives both halves, so every
lost message is deterministic.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from neurolink.archive import read_archive, verify_archive
from neurolink.framer import RawFrame
from neurolink.reliable import receiver as rrx
from neurolink.reliable import sender as rtx
from neurolink.reliable.receiver import ReliableReceiver
from neurolink.reliable.sender import ReliableSender
from neurolink.sinks.archive import ArchiveSink
from neurolink.wire import ack as wack
from neurolink.wire.format import StreamHeader

FS, FN, CH, SID = 2000.0, 20, 4, 7


class Clock:
    def __init__(self) -> None:
        import time

        self.t = time.monotonic()  # the dataclass defaults read the real clock once: start from it

    def __call__(self) -> float:
        return self.t


class Net:
    """Sender and receiver halves joined by lists; ``up``, ``drop_acks`` and ``drop_data`` lose messages."""

    def __init__(self, tmp_path, monkeypatch) -> None:
        self.clock = Clock()
        fake = SimpleNamespace(monotonic=self.clock)
        monkeypatch.setattr(rtx, "time", fake)
        monkeypatch.setattr(rrx, "time", fake)
        self.header = StreamHeader(SID, "silence", "EEG", "silence-1", FS, CH, "int16", session="s1")
        self.path = str(tmp_path / "arch.zarr")
        self.tx = ReliableSender(tmp_path / "spool", segment_mb=0.0625, block_frames=10, retransmit_per_s=1000)
        self.tx.attach(SID, self._send)
        self.wire: list[bytes] = []
        self.up = True
        self.drop_acks = 0  # acks still to lose
        self.drop_data = 0  # archive messages still to lose (after the link is up)
        self.header_requests: list[int] = []
        self.start_receiver(header_known=True)

    async def _send(self, msg: bytes) -> None:
        if not self.up:
            return
        if self.drop_data:
            self.drop_data -= 1
            return
        self.wire.append(msg)

    def start_receiver(self, *, header_known: bool) -> None:
        """A fresh receiver process: nothing in memory, the archive reopened at its durable point."""
        self.rx = SimpleNamespace(streams={}, stream_ids=None, _request_header=self.header_requests.append)
        if header_known:
            self.give_header()
        self.rel = ReliableReceiver(lambda h: ArchiveSink(self.path, chunk_samples=300), nack_holdoff_s=0.5)

    def give_header(self) -> None:
        self.rx.streams[SID] = SimpleNamespace(header=self.header, applied_offset=0.0)

    def deliver(self) -> None:
        msgs, self.wire = self.wire, []
        for m in msgs:
            self.rel.on_message(self.rx, m)

    def done(self) -> bool:
        st, tx = self.rel.streams.get(SID), self.tx.streams[SID]
        return st is not None and st.ended and tx.eos_seq is not None and tx.acked > tx.eos_seq

    async def round(self, dt: float = 0.1) -> None:
        """``dt`` seconds: the receiver's periodic acks, the sender's retransmit step, delivery."""
        self.clock.t += dt
        if self.header_requests and SID not in self.rx.streams:  # the sender answers a header request
            self.give_header()
        for st in self.rel.streams.values():
            msg = wack.pack_ack(self.rel.ack_for(st, now=self.clock.t))
            if not self.up:
                continue
            if self.drop_acks:
                self.drop_acks -= 1
                continue
            self.tx.on_feedback(msg)
        await self.tx.step(dt)
        self.deliver()

    async def frames(self, x: np.ndarray, first: int, last: int, *, rounds: bool = True) -> None:
        for seq in range(first, last):
            await self.tx.on_frame(SID, RawFrame(seq, 10.0 + seq * FN / FS, x[seq * FN:(seq + 1) * FN]))
            if rounds and seq % 10 == 9:  # one block = 10 frames = 0.1 s
                await self.round()
            else:
                self.deliver()


def _data(n_frames: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).integers(-30, 31, (n_frames * FN, CH)), axis=0).astype(np.int16)


async def _outage_then_restart_after_end(net: Net, x: np.ndarray, *, header_known: bool, lose_acks: int,
                                         lose_data: int, max_rounds: int = 600) -> None:
    n = x.shape[0] // FN
    await net.frames(x, 0, n // 3)
    assert net.rel.streams[SID].archive.next_seq, "the first receiver made part of the stream durable"
    net.up = False  # receiver killed: nothing in flight survives
    await net.frames(x, n // 3, n)
    await net.tx.on_end(SID, n, CH, "int16")
    for _ in range(30):  # the sender keeps stepping (draining) while the receiver is still starting
        await net.round()
    net.up = True
    net.start_receiver(header_known=header_known)  # back only after the sender's last block
    net.drop_acks, net.drop_data = lose_acks, lose_data
    for _ in range(max_rounds):  # 60 simulated seconds: the sender's drain would give up long before
        await net.round()
        if net.done():
            return


@pytest.mark.parametrize(("header_known", "lose_acks", "lose_data"), [(True, 0, 0), (False, 0, 0), (True, 5, 2), (False, 3, 3)],
                         ids=["restart", "restart-no-header", "lost-acks-and-probes", "no-header-lost-everything-first"])
def test_receiver_restarted_after_the_last_block_gets_everything(tmp_path, monkeypatch, header_known, lose_acks, lose_data):
    x = _data(300, seed=8)
    net = Net(tmp_path, monkeypatch)
    asyncio.run(_outage_then_restart_after_end(net, x, header_known=header_known, lose_acks=lose_acks, lose_data=lose_data))
    stats = net.tx.summary()[SID]
    assert net.done(), f"stalled: sender {stats}, receiver {net.rel.summary()}"
    assert np.array_equal(read_archive(net.path)[0], x)
    assert verify_archive(net.path)["ok"]
    assert stats["probes"] > 0 and stats["spool_blocks"] == 0
    if not header_known:
        assert net.rel.header_requests > 0 and net.header_requests == [SID] * len(net.header_requests)


def test_no_probes_while_acks_flow(tmp_path, monkeypatch):
    """A healthy link costs nothing extra: the probe only fires on ack silence."""
    x = _data(200, seed=9)
    net = Net(tmp_path, monkeypatch)

    async def go() -> None:
        await net.frames(x, 0, 200)
        await net.tx.on_end(SID, 200, CH, "int16")
        for _ in range(50):
            await net.round()
            if net.done():
                return

    asyncio.run(go())
    assert net.done() and net.tx.summary()[SID]["probes"] == 0
    assert np.array_equal(read_archive(net.path)[0], x)


def test_header_requests_are_rate_limited(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rrx, "time", SimpleNamespace(monotonic=clock))
    asked: list[int] = []
    rel = ReliableReceiver(lambda h: None)  # never opens: no header is known
    rx = SimpleNamespace(streams={}, stream_ids=None, _request_header=asked.append)
    tx_msgs: list[bytes] = []

    async def keep(m: bytes) -> None:
        tx_msgs.append(m)

    sender = ReliableSender(None, block_frames=1)
    sender.attach(SID, keep)
    asyncio.run(sender.on_frame(SID, RawFrame(0, 1.0, _data(1, seed=1))))
    for _ in range(10):
        rel.on_message(rx, tx_msgs[0])
    assert asked == [SID] and rel.without_header == 10
    clock.t += rrx.HEADER_REQUEST_S
    rel.on_message(rx, tx_msgs[0])
    assert asked == [SID, SID]
    other = SimpleNamespace(streams={}, stream_ids={SID + 1}, _request_header=asked.append)
    clock.t += rrx.HEADER_REQUEST_S
    rel.on_message(other, tx_msgs[0])  # a stream this receiver filters out: never asked for
    assert asked == [SID, SID]
    sender.close()


def test_no_probe_when_the_stream_starts_long_after_attach(tmp_path, monkeypatch):
    """Ack silence counts from the oldest unacked block's first send, not from attach(): a source that
    opens late must not have its first block resent right after it went out."""
    net = Net(tmp_path, monkeypatch)
    net.clock.t += 5.0  # the source took 5 s to appear
    x = _data(10, seed=3)

    async def go() -> None:
        await net.frames(x, 0, 10, rounds=False)  # one block sent now
        net.clock.t += 0.01
        await net.tx.step(0.01)

    asyncio.run(go())
    assert net.tx.summary()[SID]["probes"] == 0
