"""Reliable path in background mode (the daemon's): the sender codes blocks and the receiver decodes and writes
them in worker threads, in order, never holding the live frames; the same bytes on the wire and in the archive
as inline, errors surfaced, write failures NACKed and resent, back-pressure bounded, close waits for the worker."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import neurolink.reliable.receiver as rreceiver
import neurolink.reliable.sender as rsender
from neurolink.archive import read_archive, verify_archive
from neurolink.errors import CodecError
from neurolink.framer import RawFrame
from neurolink.reliable.sender import MAX_WAITING_BLOCKS, ReliableSender
from neurolink.sinks.archive import ArchiveSink
from neurolink.testing_pipeline import ReliableLink
from neurolink.wire.format import StreamHeader

FS, FN, CH, SID = 2000.0, 20, 6, 4


def _data(n_frames: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(3).integers(-40, 41, (n_frames * FN, CH)), axis=0).astype(np.int16)


def _frame(x: np.ndarray, seq: int) -> RawFrame:
    return RawFrame(seq, 5.0 + seq * FN / FS, x[seq * FN:(seq + 1) * FN])


async def _wire(background: bool, x: np.ndarray, n: int) -> list[bytes]:
    out: list[bytes] = []

    async def send(m: bytes) -> None:
        out.append(m)

    tx = ReliableSender(None, block_frames=7, background=background)
    tx.attach(SID, send, "int16")
    for seq in range(n):
        await tx.on_frame(SID, _frame(x, seq))
    await tx.on_end(SID, n, CH, "int16")
    tx.close()
    return out


def test_background_sends_the_same_bytes_in_the_same_order():
    x = _data(100)
    inline, background = asyncio.run(_wire(False, x, 100)), asyncio.run(_wire(True, x, 100))
    assert len(inline) == 100 // 7 + 2  # full blocks, the partial one, the end of stream
    assert background == inline


class _Gate:
    """pack_block that waits for ``open`` (a threading.Event): stands for a slow block coder."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        self.open = threading.Event()
        self.calls = 0
        real = rsender.pack_block

        def gated(frames, codec):
            self.calls += 1
            self.open.wait(30)
            if fail:
                raise CodecError("nl-lossless: test failure")
            return real(frames, codec)

        monkeypatch.setattr(rsender, "pack_block", gated)


async def _spin(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_live_frames_do_not_wait_for_block_coding(monkeypatch):
    gate = _Gate(monkeypatch)
    x = _data(60)

    async def go() -> list[bytes]:
        out: list[bytes] = []

        async def send(m: bytes) -> None:
            out.append(m)

        tx = ReliableSender(None, block_frames=5, background=True)
        tx.attach(SID, send, "int16")
        for seq in range(20):  # four full blocks while the coder is stuck on the first: every call returns
            await tx.on_frame(SID, _frame(x, seq))
        await _spin()
        assert gate.calls == 1 and not out and len(tx.streams[SID].waiting) == 4
        gate.open.set()
        await tx.flush_blocks(tx.streams[SID])
        tx.close()
        return out

    out = asyncio.run(go())
    assert len(out) == 4 and gate.calls == 4


def test_backlog_beyond_the_bound_holds_the_caller(monkeypatch):
    gate = _Gate(monkeypatch)
    x = _data(200)

    async def go() -> None:
        async def send(m: bytes) -> None:
            pass

        tx = ReliableSender(None, block_frames=2, background=True)
        tx.attach(SID, send, "int16")
        for seq in range(2 * (MAX_WAITING_BLOCKS + 1) - 1):
            await tx.on_frame(SID, _frame(x, seq))
        last = asyncio.ensure_future(tx.on_frame(SID, _frame(x, 2 * (MAX_WAITING_BLOCKS + 1) - 1)))
        await _spin()
        assert not last.done()  # the block over the bound waits for the coder (as inline coding would)
        gate.open.set()
        await last
        assert not tx.streams[SID].waiting
        tx.close()

    asyncio.run(go())


def test_a_coding_error_reaches_the_caller(monkeypatch):
    gate = _Gate(monkeypatch, fail=True)
    gate.open.set()
    x = _data(20)

    async def go() -> None:
        tx = ReliableSender(None, block_frames=3, background=True)

        async def send(m: bytes) -> None:
            pass

        tx.attach(SID, send, "int16")
        for seq in range(3):
            await tx.on_frame(SID, _frame(x, seq))
        with pytest.raises(CodecError, match="test failure"):
            await tx.on_end(SID, 3, CH, "int16")
        tx.close()

    asyncio.run(go())


def test_background_link_archives_bit_exact_through_loss(tmp_path):
    x = _data(240)
    header = StreamHeader(SID, "bg", "EEG", "bg-1", FS, CH, "int16", session="s1")
    link = ReliableLink(tmp_path, header, sink_kw={"chunk_samples": 400}, block_frames=10, background=True)
    rng = np.random.default_rng(5)

    async def go() -> None:
        for a in range(0, 240, 40):
            for seq in range(a, a + 40):
                await link.tx.on_frame(SID, _frame(x, seq))
            await link.tx.flush_blocks(link.tx.streams[SID])
            link.deliver(drop=lambda i: rng.random() < 0.3)
        await link.finish(240)

    asyncio.run(go())
    y, ts = read_archive(link.path)
    assert np.array_equal(y, x)
    assert np.allclose(ts, 5.0 + np.arange(x.shape[0]) / FS)
    assert verify_archive(link.path)["ok"] and link.rel.streams[SID].retransmits_in > 0


# --------------------------------------------------------------------------- receiver in background mode


def _bg_link(tmp_path, **kw) -> ReliableLink:
    header = StreamHeader(SID, "bgr", "EEG", "bgr-1", FS, CH, "int16", session="s2")
    return ReliableLink(tmp_path, header, sink_kw={"chunk_samples": 400}, receiver_kw={"background": True},
                        block_frames=10, background=True, **kw)


async def _send(link: ReliableLink, x: np.ndarray, first: int, last: int) -> None:
    for seq in range(first, last):
        await link.tx.on_frame(SID, _frame(x, seq))
    await link.tx.flush_blocks(link.tx.streams[SID])


def test_background_receiver_archives_bit_exact_through_loss_and_reordering(tmp_path):
    x = _data(300)
    link = _bg_link(tmp_path)
    rng = np.random.default_rng(8)

    async def go() -> None:
        for a in range(0, 300, 50):
            await _send(link, x, a, a + 50)
            link.deliver(drop=lambda i: rng.random() < 0.3, reverse=a % 100 == 0)
            await _spin()
        await link.tx.on_end(SID, 300, CH, "int16")
        await link.rounds(300, sleep=0.002)
        await link.rel.aclose()

    asyncio.run(go())
    y, ts = read_archive(link.path)
    assert np.array_equal(y, x) and np.allclose(ts, 5.0 + np.arange(x.shape[0]) / FS)
    st = link.rel.streams[SID]
    assert verify_archive(link.path)["ok"] and st.ended and st.retransmits_in > 0 and st.frames_archived == 300


def test_background_receiver_does_not_hold_the_loop_and_close_waits_for_the_block(tmp_path, monkeypatch):
    gate = threading.Event()
    calls = []
    real = rreceiver.unpack_block

    entered = threading.Event()

    def gated(*a, **k):
        calls.append(1)
        entered.set()
        gate.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(rreceiver, "unpack_block", gated)
    x = _data(60)
    link = _bg_link(tmp_path)

    async def go() -> None:
        await _send(link, x, 0, 60)
        link.deliver()  # six blocks: on_message returns for each while the first is stuck in the worker
        await asyncio.to_thread(entered.wait, 30)
        await _spin()
        st = link.rel.streams[SID]
        assert len(calls) == 1 and len(st.held) == 6 and st.blocks_archived == 0
        a = link.rel.ack_for(st)  # acks go on meanwhile: nothing durable yet, nothing NACKed (all held)
        assert a.next_seq == 0 and not a.nacks
        closing = asyncio.ensure_future(link.rel.aclose())
        await _spin()
        assert not closing.done()  # the block in the worker finishes before the archive closes
        gate.set()
        await closing
        assert st.blocks_archived == 1 and len(calls) == 1  # no new block started once closing

    asyncio.run(go())
    y, _ = read_archive(link.path)
    assert np.array_equal(y, x[:10 * FN]) and verify_archive(link.path)["ok"]


def test_background_receiver_write_failures_are_nacked_and_resent(tmp_path, monkeypatch):
    real = ArchiveSink.write_frame
    failed: set[int] = set()

    def flaky(self, seq, data, ts):
        if seq % 4 == 1 and seq not in failed:  # each fourth block fails once (disk full), before touching the store
            failed.add(seq)
            raise OSError(28, "No space left on device")
        return real(self, seq, data, ts)

    monkeypatch.setattr(ArchiveSink, "write_frame", flaky)
    x = _data(200)
    link = _bg_link(tmp_path)

    async def go() -> None:
        await _send(link, x, 0, 200)
        link.deliver()
        await link.tx.on_end(SID, 200, CH, "int16")
        await link.rounds(400, sleep=0.002)
        await link.rel.aclose()

    asyncio.run(go())
    st = link.rel.streams[SID]
    assert failed and st.blocks_write_failed == len(failed) and st.ended
    y, _ = read_archive(link.path)
    assert np.array_equal(y, x) and verify_archive(link.path)["ok"]
