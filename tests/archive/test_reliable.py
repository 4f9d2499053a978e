"""Reliable archive path without sockets: loss, reordering, receiver restart and spool overflow.

A list stands in for the link so every drop is deterministic; acks go straight back to the sender.
"""

from __future__ import annotations

import asyncio

import numpy as np

from neurolink.archive import read_archive, verify_archive
from neurolink.framer import RawFrame
from neurolink.testing_pipeline import ReliableLink
from neurolink.wire.format import StreamHeader

FS, FN, CH = 2000.0, 20, 4


def _data(n_frames: int, seed: int = 0) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).integers(-30, 31, (n_frames * FN, CH)), axis=0).astype(np.int16)


def Link(tmp_path, *, spool_mb: float = 16.0, window: int = 64) -> ReliableLink:  # noqa: N802 - reads as a class
    header = StreamHeader(9, "rel", "EEG", "rel-1", FS, CH, "int16", session="abc")
    return ReliableLink(tmp_path, header, sink_kw={"chunk_samples": 300}, receiver_kw={"window_frames": window},
                        offset=0.25, spool_mb=spool_mb, window_frames=window, block_frames=10)


def _send_frames(link: ReliableLink, x: np.ndarray, first: int, last: int) -> None:
    async def go():
        for seq in range(first, last):
            await link.tx.on_frame(9, RawFrame(seq, 10.0 + seq * FN / FS, x[seq * FN:(seq + 1) * FN]))
    asyncio.run(go())


def test_loss_and_reordering_recovered_bit_exact(tmp_path):
    x = _data(300)
    link = Link(tmp_path)
    rng = np.random.default_rng(1)
    for a in range(0, 300, 50):
        _send_frames(link, x, a, a + 50)
        link.deliver(drop=lambda i: rng.random() < 0.3, reverse=a % 100 == 0)
    asyncio.run(link.tx.on_end(9, 300, CH, "int16"))

    asyncio.run(link.rounds())
    y, ts = read_archive(link.path)
    assert np.array_equal(y, x)
    assert np.allclose(ts, 10.0 + np.arange(x.shape[0]) / FS)
    st = link.rel.streams[9]
    assert st.retransmits_in > 0 and st.ended and st.lost_for_good == 0
    assert link.tx.streams[9].spool.frames == 0  # everything acknowledged and freed
    assert verify_archive(link.path)["ok"]
    assert link.rel.summary()[9]["frames_archived"] == 300


def test_receiver_killed_and_restarted(tmp_path):
    x = _data(400, seed=2)
    link = Link(tmp_path)
    _send_frames(link, x, 0, 165)
    link.deliver()
    link.ack()
    durable = link.rel.streams[9].archive.next_seq
    assert durable is not None and 0 < durable < 16  # 16 blocks sent, a partial chunk was only in memory
    link.new_receiver()  # killed: no close(); the buffered tail is lost with the process
    _send_frames(link, x, 165, 300)
    link.wire.clear()  # nobody listening
    _send_frames(link, x, 300, 400)
    asyncio.run(link.tx.on_end(9, 400, CH, "int16"))
    link.deliver()
    asyncio.run(link.rounds())
    assert np.array_equal(read_archive(link.path)[0], x)
    assert verify_archive(link.path)["ok"]


def test_spool_overflow_becomes_a_recorded_gap(tmp_path):
    x = _data(3000, seed=3)
    link = Link(tmp_path, spool_mb=0.125)
    _send_frames(link, x, 0, 20)
    link.deliver()
    link.up = False  # long outage: the spool must evict
    _send_frames(link, x, 20, 3000)
    link.up = True
    asyncio.run(link.tx.on_end(9, 3000, CH, "int16"))
    asyncio.run(link.rounds())
    lost = link.tx.streams[9].spool.overflow_frames
    assert lost > 0 and link.tx.summary()[9]["spool_overflow_frames"] == lost
    rep = verify_archive(link.path)
    assert rep["ok"] and rep["frames_lost_for_good"] >= lost - 2  # counted in archive blocks
    y = read_archive(link.path)[0]
    first_kept = (link.rel.streams[9].lost_for_good + 2) * 10  # blocks of 10 frames
    assert np.array_equal(y[:20 * FN], x[:20 * FN]) and np.array_equal(y[20 * FN:], x[first_kept * FN:])


def test_nack_backoff(tmp_path):
    """A block NACKed a moment ago is not NACKed again until its holdoff has passed."""
    x = _data(60)
    link = Link(tmp_path)
    link.rel.nack_holdoff_s = 1.0
    _send_frames(link, x, 0, 60)
    link.deliver(drop=lambda i: i in (1, 3))
    st = link.rel.streams[9]
    assert link.rel.ack_for(st, now=100.0).nacks == ((1, 1), (3, 1))
    assert link.rel.ack_for(st, now=100.5).nacks == ()
    assert link.rel.ack_for(st, now=101.1).nacks == ((1, 1), (3, 1))
    assert link.rel.ack_for(st, now=102.0).nacks == ()  # second holdoff is twice as long
