"""Float and other-width integer streams archive losslessly too: reliable path blocks (nl-float on the
recovered counts, delta-zstd) and the Zarr archive (blosc), read back bit for bit, with loss and reordering."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from neurolink.archive import read_archive, verify_archive
from neurolink.framer import RawFrame
from neurolink.reliable.receiver import ReliableReceiver
from neurolink.reliable.sender import ReliableSender
from neurolink.sinks.archive import ArchiveSink
from neurolink.wire import ack as wack
from neurolink.wire.format import StreamHeader

FS, FN, CH = 1000.0, 10, 3


def _data(dtype: str, n: int) -> np.ndarray:
    q = np.cumsum(np.random.default_rng(3).integers(-30, 31, (n, CH)), axis=0)
    if dtype.startswith("float"):
        x = (q * 0.195).astype(dtype)
        x[17, 1] = np.nan  # a dropout sample: archived as it was
        return x
    return q.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int64"])
def test_reliable_archive_of_other_formats_bit_exact(tmp_path, dtype):
    x = _data(dtype, 200 * FN)
    header = StreamHeader(9, "rel", "EEG", "rel-1", FS, CH, dtype, session="abc")
    rx = SimpleNamespace(streams={9: SimpleNamespace(header=header, applied_offset=0.0)})
    path = str(tmp_path / "arch.zarr")
    wire: list[bytes] = []
    tx = ReliableSender(tmp_path / "spool", spool_mb=16, segment_mb=0.0625, rto_s=0.0, tail_s=0.0, block_frames=10,
                        retransmit_per_s=1000)

    async def send(msg: bytes) -> None:
        wire.append(msg)

    tx.attach(9, send, dtype)
    rel = ReliableReceiver(lambda h: ArchiveSink(path, chunk_samples=300), nack_holdoff_s=0.0)
    rng = np.random.default_rng(1)

    async def run() -> None:
        for seq in range(200):
            await tx.on_frame(9, RawFrame(seq, 10.0 + seq * FN / FS, x[seq * FN:(seq + 1) * FN]))
            if seq % 50 == 49:  # a burst delivered with loss, reversed
                msgs = wire[:]
                wire.clear()
                for m in reversed(msgs):
                    if rng.random() > 0.3:
                        rel.on_message(rx, m)
        await tx.on_end(9, 200, CH, dtype)
        for _ in range(200):
            for st in rel.streams.values():
                tx.on_feedback(wack.pack_ack(rel.ack_for(st)))
            await tx.step(1.0)
            msgs = wire[:]
            wire.clear()
            for m in msgs:
                rel.on_message(rx, m)
            st = rel.streams.get(9)
            if st is not None and st.ended and tx.streams[9].acked > (tx.streams[9].eos_seq or 0):
                return

    asyncio.run(run())
    y, _ts = read_archive(path)
    assert y.dtype == np.dtype(dtype)
    assert np.array_equal(y.view(np.uint8), x.view(np.uint8))
    assert rel.streams[9].bad_blocks == 0 and verify_archive(path)["ok"]
