"""A failing archive write (disk full, I/O error) loses nothing and stops nothing.

* A failed metadata save never moves the durable point that acks report (the sender would free spooled blocks
  that are not in the store); once writes succeed again the point moves on and the archive is exact.
* A failed chunk write leaves the sink as before the frame (rolled back), so the reliable path's resend of that
  block is accepted; the receiver counts the failure, keeps running (live path included) and the archive ends
  up exact once the disk has room again.
* A string stream's timer flush retries with a backoff under a failing save, logging once, not per marker.

Failures are simulated by making zarr's array writes or the sink's metadata save raise ENOSPC for a while.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time

import numpy as np
import pytest
import zarr

from neurolink.archive import open_archive, read_archive, verify_archive
from neurolink.codecs import Ladder
from neurolink.framer import RawFrame
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.reliable.receiver import ReliableReceiver
from neurolink.reliable.sender import ReliableSender
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.archive import ATTR, ArchiveSink
from neurolink.sinks.base import MemorySink
from neurolink.sources.replay import Recording, ReplaySource
from neurolink.sources.synthetic import synthetic_recording
from neurolink.testing_pipeline import ReliableLink
from neurolink.transports.zmq import ZmqReceiver, ZmqSender
from neurolink.wire.format import StreamHeader

FS, FN, CH, SID = 2000.0, 20, 4, 9


class DiskFull:
    """Makes the data arrays' writes (``target="chunk"``: ``samples`` / ``timestamps``), the logs' writes (``"log"``:
    the arrays under ``log/``, written by the metadata save before the attribute) or the sink's whole metadata save
    (``"meta"``) raise ENOSPC while ``on``; ``every=2`` fails only every second write (a frame spanning chunks: the
    first write succeeds)."""

    def __init__(self, monkeypatch, target: str, every: int = 1) -> None:
        self.on = False
        self.every = every
        self.calls = 0
        self.raised = 0
        if target in ("chunk", "log"):
            orig = zarr.Array.__setitem__

            def setitem(arr, key, value):
                if arr.path.startswith("log/") == (target == "log"):
                    self._maybe_fail()
                return orig(arr, key, value)

            monkeypatch.setattr(zarr.Array, "__setitem__", setitem)
        else:
            orig_save = ArchiveSink._save_meta

            def save(sink, *a, **kw):
                self._maybe_fail()
                return orig_save(sink, *a, **kw)

            monkeypatch.setattr(ArchiveSink, "_save_meta", save)

    def _maybe_fail(self) -> None:
        if self.on:
            self.calls += 1
            if self.calls % self.every == 0:
                self.raised += 1
                raise OSError(errno.ENOSPC, "No space left on device")


def _stored_next_seq(path: str) -> int:
    """The durable point as saved in the store (what survives a kill -9 right now)."""
    return zarr.open_group(path, mode="r").attrs[ATTR]["next_seq"] or 0


def _data(n_frames: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).integers(-30, 31, (n_frames * FN, CH)), axis=0).astype(np.int16)


class Link(ReliableLink):
    """The shared list-joined link; every ack is checked against the store: it never claims more than the
    saved metadata holds."""

    def __init__(self, tmp_path, chunk_samples: int, header: StreamHeader | None = None, block_frames: int = 10,
                 flush_s: float = 1.0) -> None:
        self.acked: list[int] = []
        super().__init__(tmp_path, header or StreamHeader(SID, "wf", "EEG", "wf-1", FS, CH, "int16", session="s1"),
                         sink_kw={"chunk_samples": chunk_samples, "flush_s": flush_s}, block_frames=block_frames)

    def check_ack(self, ack) -> None:
        assert ack.next_seq <= _stored_next_seq(self.path), "ack beyond the durable point in the store"
        self.acked.append(ack.next_seq)

    async def frames(self, x: np.ndarray, first: int, last: int) -> None:
        for seq in range(first, last):
            await self.tx.on_frame(SID, RawFrame(seq, 10.0 + seq * FN / FS, x[seq * FN:(seq + 1) * FN]))
            if seq % 10 == 9:
                self.deliver()


@pytest.mark.parametrize(("target", "chunk_samples", "every"),
                         [("meta", 300, 1), ("chunk", 300, 1), ("meta", 70, 2), ("chunk", 70, 2), ("log", 70, 2)],
                         ids=["meta-save", "chunk-write", "meta-save-mid-block", "chunk-write-mid-block",
                              "log-write-mid-block"])
def test_failed_writes_never_advance_the_acked_durable_point(tmp_path, monkeypatch, caplog, target, chunk_samples,
                                                             every):
    """Blocks of 200 samples; chunks of 300 (a block completes at most one) or 70 (a block completes 2-3, and
    ``every=2`` fails the second write inside a block after the first succeeded: the rollback must restore it;
    the failures flap, and are still logged once)."""
    caplog.set_level(logging.WARNING, logger="neurolink")
    x = _data(300, seed=5)
    link = Link(tmp_path, chunk_samples)
    disk = DiskFull(monkeypatch, target, every)

    async def run() -> None:
        await link.frames(x, 0, 100)
        before = link.rel.streams[SID].archive.next_seq
        assert before and before == _stored_next_seq(link.path)
        disk.on = True
        await link.frames(x, 100, 200)
        await link.rounds(20)  # resends arrive and fail again
        st = link.rel.streams[SID]
        assert disk.raised > 0 and st.archive.write_errors > 0 and st.blocks_write_failed > 0
        if every == 1:  # nothing could be written: the durable point (and every ack) stayed put
            assert st.archive.next_seq == before == _stored_next_seq(link.path)
            assert max(link.acked) == before
        assert link.tx.streams[SID].spool.frames > 0  # the sender still holds what is not durable
        disk.on = False  # room again
        await link.frames(x, 200, 300)
        await link.tx.on_end(SID, 300, CH, "int16")
        await link.rounds(300)

    asyncio.run(run())
    assert link.done(), link.rel.summary()
    y, ts = read_archive(link.path)
    assert np.array_equal(y, x)
    assert np.allclose(ts, 10.0 + np.arange(x.shape[0]) / FS, rtol=0, atol=1e-9)  # per frame: t0 + i / fs
    rep = verify_archive(link.path)
    assert rep["ok"], rep["problems"]
    assert link.tx.streams[SID].spool.frames == 0  # everything acknowledged only once durable, then freed
    s = link.rel.summary()[SID]
    assert s["write_errors"] == disk.raised and s["lost_for_good"] == 0 and s["frames_archived"] == 300
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0] and link.path in errors[0]  # not one per block


def test_marker_stream_on_the_reliable_path_under_a_failing_save(tmp_path, monkeypatch):
    """String stream, reliable path, receiver event loop running (timer flushes every 50 ms, chunks of 7
    markers): the save fails for a while. Markers keep arriving and are buffered, full chunks are refused and
    resent, acks never pass the saved durable point, and the archive ends up with every marker exactly."""
    n = 60
    rows = [[f"m{i} ∑", "" if i % 3 else f'{{"n": {i}}}'] for i in range(n)]
    stamps = list(100.0 + np.cumsum(np.random.default_rng(3).exponential(0.3, n)))
    h = StreamHeader(SID, "mk", "Markers", "mk-1", 0.0, 2, "string", session="s1")
    link = Link(tmp_path, 7, header=h, block_frames=2, flush_s=0.05)
    disk = DiskFull(monkeypatch, "meta")

    def frame(i: int) -> np.ndarray:
        a = np.empty((1, 2), dtype=object)
        a[0] = rows[i]
        return a

    async def run() -> None:
        for i in range(n):
            disk.on = 15 <= i < 40
            await link.tx.on_frame(SID, RawFrame(i, stamps[i], frame(i)))
            link.deliver()
            link.ack()
            await asyncio.sleep(0.02)
            if i == 39:
                st = link.rel.streams[SID]
                assert st.archive.write_errors > 0 and st.blocks_write_failed > 0
                assert st.archive.next_seq == _stored_next_seq(link.path) <= 8  # nothing past marker 15 durable
        await link.tx.on_end(SID, n, 2, "string")
        await link.rounds(300, sleep=0.01)

    asyncio.run(run())
    assert link.done(), link.rel.summary()
    x, t = read_archive(link.path)
    assert x.tolist() == rows and t.tolist() == stamps
    rep = verify_archive(link.path)
    assert rep["ok"], rep["problems"]
    assert link.tx.streams[SID].spool.frames == 0


def test_a_frame_spanning_chunks_is_rolled_back_and_accepted_again(tmp_path, monkeypatch):
    """The first chunk a frame completes is written, the second fails: the sink is as before the frame."""
    h = StreamHeader(SID, "wf", "EEG", "wf-1", FS, CH, "int16", session="s1")
    x = _data(40, seed=6)  # 4 frames of 200 samples
    path = str(tmp_path / "a.zarr")
    s = ArchiveSink(path, chunk_samples=70)
    s.open(h)
    s.write_frame(0, x[:200], np.arange(200.0))
    state = (s.buffered_next_seq, s._chunk_start, s._fill, s._buf[:s._fill].copy())
    disk = DiskFull(monkeypatch, "chunk", every=3)  # samples+timestamps of the first chunk pass, the next fails
    disk.on = True
    with pytest.raises(OSError):
        s.write_frame(1, x[200:400], np.arange(200.0, 400.0))
    assert disk.raised == 1 and s.write_errors == 1
    assert (s.buffered_next_seq, s._chunk_start, s._fill) == state[:3]  # frame 1 not buffered
    assert np.array_equal(s._buf[:s._fill], state[3])  # the buffer's old content back (it was overwritten)
    assert s.next_seq == 1 == _stored_next_seq(path)  # frame 0 ended inside the chunk that was written
    disk.on = False
    s.write_frame(1, x[200:400], np.arange(200.0, 400.0))  # the resend
    s.write_frame(1, x[200:400], np.arange(200.0, 400.0))  # a duplicate of a held frame: a no-op
    s.write_frame(2, x[400:600], np.arange(400.0, 600.0))
    s.write_frame(3, x[600:800], np.arange(600.0, 800.0))
    s.add_eos(4)
    s.close()
    y, ts = read_archive(path)
    assert np.array_equal(y, x) and np.array_equal(ts, np.arange(800.0))
    assert verify_archive(path)["ok"] and open_archive(path).meta["next_seq"] == 5


def test_end_of_stream_under_a_failing_save_is_retried(tmp_path, monkeypatch):
    h = StreamHeader(SID, "wf", "EEG", "wf-1", FS, CH, "int16", session="s1")
    x = _data(10, seed=7)
    path = str(tmp_path / "a.zarr")
    s = ArchiveSink(path, chunk_samples=300)
    s.open(h)
    s.write_frame(0, x[:100], np.arange(100.0))
    s.write_frame(1, x[100:200], np.arange(100.0, 200.0))
    disk = DiskFull(monkeypatch, "meta")
    disk.on = True
    with pytest.raises(OSError):
        s.add_eos(2)
    assert s.next_seq is None and s.buffered_next_seq == 2 and _stored_next_seq(path) == 0
    disk.on = False
    s.add_eos(2)
    assert s.next_seq == 3 == _stored_next_seq(path)
    s.close()
    assert np.array_equal(read_archive(path)[0], x) and verify_archive(path)["ok"]


def test_open_after_a_failed_metadata_save_starts_over(tmp_path, monkeypatch):
    """open() on a full disk may create the empty arrays and fail on the metadata: the next open succeeds."""
    h = StreamHeader(SID, "wf", "EEG", "wf-1", FS, CH, "int16", session="s1")
    path = str(tmp_path / "a.zarr")
    disk = DiskFull(monkeypatch, "meta")
    disk.on = True
    with pytest.raises(OSError):
        ArchiveSink(path, chunk_samples=50).open(h)
    disk.on = False
    s = ArchiveSink(path, chunk_samples=50)
    s.open(h)
    x = _data(5, seed=8)
    s.write_frame(0, x, np.arange(100.0))
    s.close()
    assert np.array_equal(read_archive(path)[0], x) and verify_archive(path)["ok"]


def test_plain_sink_push_that_cannot_be_written_is_a_recorded_gap(tmp_path, monkeypatch):
    h = StreamHeader(SID, "wf", "EEG", "wf-1", FS, CH, "int16", session="s1")
    x = _data(30, seed=9)
    path = str(tmp_path / "a.zarr")
    s = ArchiveSink(path, chunk_samples=100)
    s.open(h)
    disk = DiskFull(monkeypatch, "chunk")
    kept = []
    for i in range(0, 600, 60):
        disk.on = i == 240  # this push completes chunk 2: not archived
        try:
            s.push(x[i:i + 60], np.arange(i, i + 60.0))
            kept.append(i)
        except OSError:
            pass
    disk.on = False
    s.close()
    assert kept == [0, 60, 120, 180, 300, 360, 420, 480, 540]
    y, ts = read_archive(path)
    assert np.array_equal(y, np.concatenate([x[i:i + 60] for i in kept]))
    rep = verify_archive(path)
    assert rep["ok"], rep["problems"]
    gaps = open_archive(path).gaps
    assert len(gaps) == 1 and gaps[0]["sample_index"] == 240 and "60 samples not archived" in gaps[0]["reason"]


def test_marker_timer_flush_retries_under_a_failing_save(tmp_path, monkeypatch, caplog):
    """String streams: the 1 s timer flush. A failing save keeps the durable point, logs one ERROR (not one per
    marker or per retry), reschedules itself with a backoff, and writes everything once the disk has room."""
    h = StreamHeader(SID, "mk", "Markers", "mk-1", 0.0, 1, "string", session="s1")
    path = str(tmp_path / "m.zarr")
    disk = DiskFull(monkeypatch, "meta")

    def fr(i: int) -> np.ndarray:
        a = np.empty((1, 1), dtype=object)
        a[0, 0] = f"marker {i} ∑"
        return a

    async def wait_for(cond, timeout: float = 5.0) -> None:
        t0 = time.monotonic()
        while not cond() and time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.01)

    async def run() -> ArchiveSink:
        s = ArchiveSink(path, chunk_samples=100, flush_s=0.05)
        s.open(h)
        for i in range(3):
            s.write_frame(i, fr(i), np.array([float(i)]))
        await wait_for(lambda: s.next_seq == 3)
        assert s.next_seq == 3 == _stored_next_seq(path)
        disk.on = True
        with caplog.at_level(logging.WARNING, logger="neurolink.sinks.archive"):
            for i in range(3, 9):
                s.write_frame(i, fr(i), np.array([float(i)]))
                await asyncio.sleep(0.03)
            await wait_for(lambda: s.write_errors >= 4)
            assert s.write_errors >= 4  # the timer retried on its own (backoff 0.1, 0.2, 0.4 s...)
            assert s.next_seq == 3 == _stored_next_seq(path)  # what acks report did not move
            assert s._timer is not None  # still rescheduled
            disk.on = False
            await wait_for(lambda: s.next_seq == 9)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "No space left on device" in errors[0].getMessage() and path in errors[0].getMessage()
        assert any("writing again" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert s.next_seq == 9 == _stored_next_seq(path)
        return s

    s = asyncio.run(run())
    s.close()
    x, ts = read_archive(path)
    assert x.ravel().tolist() == [f"marker {i} ∑" for i in range(9)] and ts.tolist() == [float(i) for i in range(9)]
    assert verify_archive(path)["ok"]


# ------------------------------------------------------------------------------------------ end to end
def test_disk_full_for_a_second_end_to_end_over_zeromq(tmp_path, monkeypatch, caplog):
    """Real sender and receiver over ZeroMQ (in one process): archive writes fail for ~1 s mid-stream. The
    receiver keeps running and delivering live frames, counts the failures, and the archive ends up exact."""
    caplog.set_level(logging.WARNING, logger="neurolink")
    fs, n, ch = 2000.0, 8000, 4  # 4 s of data
    x = synthetic_recording(n, ch, fs, seed=11)
    rec = Recording(x, fs, [], "diskfull", "EEG", "uV")
    pd, pf = free_port(), free_port()
    eps = dict(data=f"tcp://127.0.0.1:{pd}", feedback=f"tcp://127.0.0.1:{pf}")
    rel_tx = ReliableSender(tmp_path / "spool", block_frames=5, block_s=0.2, rto_s=0.2, tail_s=0.5, linger_s=15.0)
    sender = Sender([StreamSpec(ReplaySource(rec, chunk_samples=20), 1, Ladder([{"id": "delta-zstd"}]), frame_ms=10.0)],
                    ZmqSender(**eps), wait_receiver_s=10.0, reliable=rel_tx)
    path = str(tmp_path / "arch.zarr")
    mem = MemorySink()
    rel_rx = ReliableReceiver(lambda h: ArchiveSink(path, chunk_samples=300), nack_holdoff_s=0.2)
    receiver = Receiver(ZmqReceiver(**eps), lambda h: [mem], reliable=rel_rx)
    disk_chunk = DiskFull(monkeypatch, "chunk")
    disk_meta = DiskFull(monkeypatch, "meta")
    seen: dict[str, object] = {}

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            rx = tg.create_task(receiver.run())
            tx = tg.create_task(sender.run())
            await asyncio.wait_for(receiver.header_event.wait(), 15)
            await asyncio.sleep(1.0)
            seen["live_before"] = mem.data().shape[0]
            seen["durable_before"] = rel_rx.streams[1].archive.next_seq
            disk_chunk.on = disk_meta.on = True  # disk full
            await asyncio.sleep(1.0)
            disk_chunk.on = disk_meta.on = False  # room again
            seen["live_after"] = mem.data().shape[0]
            seen["durable_during"] = rel_rx.streams[1].archive.next_seq
            seen["rx_alive"] = not rx.done()
            await asyncio.wait_for(tx, 30)  # the sender drains: waits for the archive's acks
            await asyncio.wait_for(receiver.ended_event.wait(), 5)
            seen["summary"] = receiver.summary()[1]
            receiver.stop()
            await rx

    asyncio.run(run())
    s = seen["summary"]
    assert isinstance(s, dict)
    assert seen["rx_alive"] and seen["live_after"] > seen["live_before"]  # type: ignore[operator]
    assert np.array_equal(mem.data(), x)  # the live path went on, every frame
    assert disk_chunk.raised + disk_meta.raised > 0
    assert s["archive_write_errors"] == disk_chunk.raised + disk_meta.raised
    assert s["archive_blocks_write_failed"] > 0 and s["archive_lost_for_good"] == 0
    assert seen["durable_during"] == seen["durable_before"]  # nothing claimed durable while nothing was written
    y, _ = read_archive(path)
    assert np.array_equal(y, x)
    rep = verify_archive(path)
    assert rep["ok"], rep["problems"]
    assert rel_tx.summary()[1]["spool_blocks"] == 0  # all acknowledged after the recovery, all freed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0] and path in errors[0], errors
