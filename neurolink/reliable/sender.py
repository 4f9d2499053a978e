"""Sender half of the reliable archive path: level-0 copy of every frame, spooled on disk until acknowledged.

Plugged into :class:`neurolink.sender.Sender` as ``reliable=ReliableSender(...)``; the sender calls
:meth:`attach` per stream, :meth:`on_frame` after each live frame, :meth:`on_feedback` for ack messages,
runs :meth:`run` (the paced retransmitter) beside its other tasks and :meth:`drain` before shutting down.

Why a separate copy: the archive must be lossless whatever level the live path runs at, and every archive
frame must decode on its own (retransmits arrive out of order), so it uses nl-lossless *archive* mode.
In the daemon (``background=True``) full blocks are coded in a worker thread by one task per stream, in
order, so the live frames never wait behind tens of milliseconds of archive coding.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurolink.codecs import get_codec
from neurolink.codecs.base import MAX_DECODED_BYTES, MAX_STRING_VALUES
from neurolink.errors import ConfigError
from neurolink.framer import RawFrame
from neurolink.reliable.block import MAX_BLOCK_FRAMES, pack_block
from neurolink.reliable.spool import Spool
from neurolink.runtime import in_bulk_thread
from neurolink.sinks.archive import archive_codec_for
from neurolink.wire import ack as wack
from neurolink.wire import format as wire
from neurolink.wire.crc import crc32

log = logging.getLogger(__name__)

SendFn = Callable[[bytes], Awaitable[None]]
#: background mode: full blocks queued for coding beyond this many hold the live path (the CPU cannot keep up;
#: without a bound the queue of raw frames would grow without limit: ~6 MB a block at 1024 channels)
MAX_WAITING_BLOCKS = 8


@dataclass
class ReliableStats:
    frames_spooled: int = 0
    blocks_spooled: int = 0
    blocks_acked: int = 0
    retransmits: int = 0
    acks: int = 0
    nacked: int = 0
    tail_retransmits: int = 0
    probes: int = 0  # oldest unacknowledged block resent because no ack came (receiver away or restarting)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Tx:
    stream_id: int
    send: SendFn
    spool: Spool
    codec: Any
    dtype: str = "int16"  # the stream's channel format ("string": nl-text blocks, bounded per block)
    acked: int = 0  # receiver's cumulative next_seq
    last_progress: float = field(default_factory=time.monotonic)
    last_ack: float = -1e9  # when the last ack arrived: no acks = nobody listening, do not resend blindly
    last_probe: float = field(default_factory=time.monotonic)  # ack silence: when the oldest block was last resent
    eos_seq: int | None = None
    pending: collections.deque = field(default_factory=collections.deque)
    queued: set = field(default_factory=set)
    last_retx: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq -> (time, times resent)
    block: list[RawFrame] = field(default_factory=list)  # live frames waiting to form the next archive block
    block_values: int = 0  # string streams: values and a UTF-8 size bound of the block so far (frame limits)
    block_text: int = 0
    block_started: float = 0.0
    next_seq: int = 0  # archive sequence numbers count blocks
    tokens: float = 0.0
    stats: ReliableStats = field(default_factory=ReliableStats)
    waiting: collections.deque = field(default_factory=collections.deque)  # full blocks (frame lists) to code, in order
    coder: asyncio.Task | None = None  # background mode: codes ``waiting`` in a worker thread, then spools and sends
    error: BaseException | None = None  # what stopped the coder task: raised to the next caller


class ReliableSender:
    def __init__(self, spool_dir: str | Path | None = None, *, spool_mb: float = 1024.0, segment_mb: float = 8.0,
                 retransmit_per_s: float = 25.0, rto_s: float = 1.0, tail_s: float = 3.0, window_frames: int = 64,
                 block_frames: int = 100, block_s: float = 0.5, linger_s: float = 10.0, probe_s: float = 1.0,
                 background: bool = False) -> None:
        if retransmit_per_s <= 0:
            raise ConfigError("reliable.retransmit_per_s", f"must be > 0, got {retransmit_per_s}")
        if not probe_s > 0:
            raise ConfigError("reliable.probe_s", f"must be > 0, got {probe_s}")
        if not 1 <= block_frames <= MAX_BLOCK_FRAMES:
            raise ConfigError("reliable.block_frames", f"must be in [1, {MAX_BLOCK_FRAMES}], got {block_frames}")
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.spool_bytes = int(spool_mb * (1 << 20))
        self.segment_bytes = int(segment_mb * (1 << 20))
        self.retransmit_per_s = retransmit_per_s
        self.block_frames = block_frames
        self.block_s = block_s
        self.rto_s = rto_s
        self.tail_s = tail_s
        self.window = window_frames
        self.linger_s = linger_s
        self.probe_s = probe_s
        #: code full blocks in a worker thread (the numba kernels release the GIL) instead of in the caller: a
        #: 100-frame block of 1024 channels is ~3 M samples, tens of ms of coding that would stall the live
        #: frames behind it. The daemon sets it; off, :meth:`on_frame` returns with the block sent (tests).
        self.background = background
        self.streams: dict[int, _Tx] = {}

    # -- hooks called by the Sender ------------------------------------------------------------------
    def attach(self, stream_id: int, send: SendFn, dtype: str = "int16") -> None:
        d = (self.spool_dir / f"stream-{stream_id}") if self.spool_dir else None
        codec = get_codec(archive_codec_for(dtype))
        if dtype != "string":  # load the jitted kernels now, not mid-stream (nl-text has none)
            get_codec(codec.get_config()).encode(np.zeros((4, 2), dtype))
        self.streams[stream_id] = _Tx(stream_id, send, Spool(d, capacity_bytes=self.spool_bytes, segment_bytes=self.segment_bytes),
                                      codec, dtype)

    async def on_frame(self, stream_id: int, f: RawFrame) -> None:
        """Collect a live frame; a full (or old) block is coded, spooled and sent."""
        tx = self.streams[stream_id]
        if tx.dtype == "string":
            # a block is one frame message: keep it within what a receiver accepts (MAX_STRING_VALUES values,
            # MAX_DECODED_BYTES of text; 4 bytes per character bounds UTF-8)
            text = 4 * sum(map(len, f.data.ravel().tolist()))
            if tx.block and (tx.block_values + f.data.size > MAX_STRING_VALUES
                             or tx.block_text + text > MAX_DECODED_BYTES // 2):
                await self._emit_block(tx)
            tx.block_values += f.data.size
            tx.block_text += text
        if not tx.block:
            tx.block_started = time.monotonic()
        tx.block.append(f)
        tx.stats.frames_spooled += 1
        if len(tx.block) >= self.block_frames:
            await self._block_full(tx)

    async def on_end(self, stream_id: int, seq: int, n_channels: int, dtype: str) -> None:
        """End of stream: the partial block, then an archive EOS so the receiver makes everything durable."""
        tx = self.streams[stream_id]
        if tx.block:
            await self._block_full(tx)
        await self.flush_blocks(tx)
        tx.eos_seq = tx.next_seq
        log.debug("stream %d: end of stream is archive frame %d (%d acknowledged)", stream_id, tx.eos_seq, tx.acked)
        eos = wire.pack_frame(stream_id, tx.next_seq, 0.0, 0, n_channels, dtype, 0, b"", wire.FLAG_END_OF_STREAM)
        tx.next_seq += 1
        tx.spool.append(tx.eos_seq, eos)
        await tx.send(wack.pack_archive_frame(eos, tx.spool.oldest_seq or 0, tx.spool.end_seq or 0))

    async def _block_full(self, tx: _Tx) -> None:
        """The current block is complete: code it now, or (``background``) queue it for the coder task."""
        if not self.background or tx.dtype == "string":  # markers: tiny blocks, and the sink's timers need the loop
            await self._emit_block(tx)
            return
        if tx.error is not None:
            raise tx.error
        frames, tx.block = tx.block, []
        tx.block_values = tx.block_text = 0
        tx.waiting.append(frames)
        if tx.coder is None or tx.coder.done():
            tx.coder = asyncio.get_running_loop().create_task(self._code_waiting(tx), name=f"archive-blocks-{tx.stream_id}")
        if len(tx.waiting) > MAX_WAITING_BLOCKS:  # the CPU cannot keep up: hold the caller, as coding inline would
            await self.flush_blocks(tx)

    async def _code_waiting(self, tx: _Tx) -> None:
        """Code the queued blocks in order, each in a worker thread, then spool and send it (on the loop)."""
        try:
            while tx.waiting:
                frames = tx.waiting[0]
                data, payload = await in_bulk_thread(pack_block, frames, tx.codec)
                tx.waiting.popleft()
                await self._send_block(tx, frames, data, payload)
        except Exception as exc:  # noqa: BLE001 - kept and raised to the next caller (as inline coding would)
            tx.error = exc
            log.error("stream %d: archive block not coded: %s: %s", tx.stream_id, type(exc).__name__, exc)

    async def flush_blocks(self, tx: _Tx) -> None:
        """Wait until every queued block is coded, spooled and sent (background mode); raises what stopped it."""
        while tx.coder is not None and not tx.coder.done():
            await asyncio.shield(tx.coder)
        if tx.error is not None:
            raise tx.error

    async def _emit_block(self, tx: _Tx) -> None:
        frames, tx.block = tx.block, []
        tx.block_values = tx.block_text = 0
        data, payload = pack_block(frames, tx.codec)
        await self._send_block(tx, frames, data, payload)

    async def _send_block(self, tx: _Tx, frames: list[RawFrame], data: np.ndarray, payload: bytes) -> None:
        n, c = data.shape
        seq = tx.next_seq
        tx.next_seq += 1
        dtype = "string" if data.dtype == object else data.dtype.name  # string frames are object arrays of str
        msg = wire.pack_frame(tx.stream_id, seq, frames[0].timestamp, n, c, dtype, 0, payload, wire.FLAG_KEYFRAME)
        tx.spool.append(seq, msg)
        tx.stats.blocks_spooled += 1
        if seq == tx.acked:  # nothing older is waiting: ack silence counts from this block's first send
            tx.last_probe = time.monotonic()
        await tx.send(wack.pack_archive_frame(msg, tx.spool.oldest_seq or 0, tx.spool.end_seq or 0))

    def on_feedback(self, msg: bytes) -> None:
        a = wack.parse_ack(msg)
        tx = self.streams.get(a.stream_id)
        if tx is None:
            return
        now = time.monotonic()
        tx.last_ack = now
        tx.stats.acks += 1
        if a.next_seq > tx.acked:
            tx.stats.blocks_acked += a.next_seq - tx.acked
            tx.acked = a.next_seq
            tx.last_progress = now
            tx.spool.release_below(a.next_seq)
            for s in [s for s in tx.last_retx if s < a.next_seq]:
                del tx.last_retx[s]
        elif a.next_seq < tx.acked:  # a receiver restarted from an older durable point
            tx.acked = a.next_seq
            tx.last_progress = now
        for first, count in a.nacks:
            # only blocks this sender produced and still holds: a forged or corrupt range (count up to
            # 2**32 - 1, 256 of them) would otherwise stall the event loop iterating over it
            lo, hi = max(first, tx.acked, tx.spool.oldest_seq or 0), min(first + count, tx.next_seq)
            if hi > lo:
                tx.stats.nacked += hi - lo
                self._queue(tx, range(lo, hi), now)

    async def run(self, dt: float = 0.01) -> None:
        """Paced retransmitter (and tail-loss timer); the live path is never blocked by it."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(dt)
            now = time.monotonic()
            # tokens for the time that really passed: a CPU-starved loop wakes up late, and crediting only
            # ``dt`` per wake-up would cut the retransmit rate (and stretch a catch-up past the linger)
            await self.step(max(now - last, dt))
            last = now

    async def step(self, dt: float) -> None:
        """One retransmit round: at most ``retransmit_fps * dt`` frames per stream."""
        now = time.monotonic()
        for tx in self.streams.values():
            if tx.block and now - tx.block_started > self.block_s:  # slow streams: do not hold a block forever
                await self._block_full(tx)
            tx.tokens = min(tx.tokens + self.retransmit_per_s * dt, max(1.0, self.retransmit_per_s))  # token bucket
            end = tx.spool.end_seq
            # tail timer: a receiver that acks but makes no progress and NACKs nothing lost the last blocks
            if (end is not None and tx.acked < end and now - tx.last_progress > self.tail_s and not tx.pending
                    and now - tx.last_ack <= max(self.tail_s, 1.0)):
                tx.stats.tail_retransmits += 1
                tx.last_progress = now
                log.debug("stream %d: no progress for %.1f s at %d of %d: resending the window", tx.stream_id,
                          self.tail_s, tx.acked, end)
                self._queue(tx, range(tx.acked, min(end, tx.acked + self.window)), now - self.rto_s)
            # ack silence: NACKs and the tail timer both need acks, and a receiver acks only a stream it has
            # seen an archive block of. One restarted after the last block (or whose first acks were lost)
            # would never hear of the stream again: resend the oldest unacknowledged block every probe_s
            # while no ack comes; the receiver opens the stream from it and NACKs the rest.
            if (end is not None and tx.acked < end and now - tx.last_ack > self.probe_s
                    and now - tx.last_probe >= self.probe_s):
                tx.last_probe = now
                await self._probe(tx, now)
            while tx.pending and tx.tokens >= 1.0:
                seq = tx.pending.popleft()
                tx.queued.discard(seq)
                msg = tx.spool.get(seq)
                if msg is None:
                    continue
                tx.last_retx[seq] = (time.monotonic(), tx.last_retx.get(seq, (0.0, 0))[1] + 1)
                tx.stats.retransmits += 1
                tx.tokens -= 1.0
                await self._resend(tx, msg)

    @staticmethod
    async def _resend(tx: _Tx, msg: bytes) -> None:
        """A spooled block again, marked as a retransmission, with the spool's current range."""
        await tx.send(wack.pack_archive_frame(_mark_retransmit(msg), tx.spool.oldest_seq or 0, tx.spool.end_seq or 0))

    async def _probe(self, tx: _Tx, now: float) -> None:
        seq = max(tx.acked, tx.spool.oldest_seq or 0)
        msg = tx.spool.get(seq)
        if msg is None:
            return
        tx.stats.probes += 1
        if tx.stats.probes in (1, 10, 100) or tx.stats.probes % 1000 == 0:
            log.info("stream %d: no ack %s: resending archive frame %d as a probe (%d probes so far)", tx.stream_id,
                     f"for {now - tx.last_ack:.1f} s" if tx.last_ack > -1e8 else "yet", seq, tx.stats.probes)
        await self._resend(tx, msg)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until every stream's end of stream is acknowledged; True if all were."""
        deadline = time.monotonic() + (self.linger_s if timeout is None else timeout)
        for tx in self.streams.values():
            if tx.coder is not None and not tx.coder.done():
                await asyncio.wait([tx.coder], timeout=max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            if all(tx.eos_seq is None or tx.acked > tx.eos_seq for tx in self.streams.values()):
                return True
            await asyncio.sleep(0.05)
        for tx in self.streams.values():
            if tx.eos_seq is not None and tx.acked <= tx.eos_seq:
                log.error("stream %d: %d archive frames not acknowledged at shutdown (kept in %s)",
                          tx.stream_id, tx.eos_seq + 1 - tx.acked, tx.spool.dir)
        return False

    def close(self, keep: bool = False) -> None:
        for tx in self.streams.values():
            if tx.coder is not None and not tx.coder.done():  # blocks not coded yet: the live frames are gone
                tx.coder.cancel()  # with the sender, so they are lost to the archive (logged)
                log.error("stream %d: %d archive blocks not coded at close (lost to the archive)", tx.stream_id,
                          len(tx.waiting))
            if not keep:
                tx.spool.close()

    def summary(self) -> dict[int, dict[str, Any]]:
        return {sid: {**tx.stats.as_dict(), "acked": tx.acked, "spool_blocks": tx.spool.frames,
                      "spool_mb": tx.spool.bytes / (1 << 20), "spool_peak_mb": tx.spool.peak_bytes / (1 << 20),
                      "spool_overflow_frames": tx.spool.overflow_frames} for sid, tx in self.streams.items()}

    # -- internals ---------------------------------------------------------------------------------
    def _queue(self, tx: _Tx, seqs: range, now: float) -> None:
        for s in seqs:
            if s < tx.acked or s in tx.queued or s not in tx.spool:
                continue
            prev = tx.last_retx.get(s)
            # exponential backoff per frame: an overloaded receiver NACKs frames still queued in its socket
            if prev is not None and now - prev[0] < self.rto_s * (1 << min(prev[1] - 1, 5)):
                continue
            tx.pending.append(s)
            tx.queued.add(s)


_FLAGS = struct.Struct("<H")


def _mark_retransmit(msg: bytes) -> bytes:
    b = bytearray(msg)
    (flags,) = _FLAGS.unpack_from(b, 6)
    _FLAGS.pack_into(b, 6, flags | wire.FLAG_RETRANSMIT)
    struct.pack_into("<I", b, len(b) - 4, crc32(memoryview(b)[:-4]))
    return bytes(b)
