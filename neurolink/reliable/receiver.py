"""Receiver half of the reliable archive path: reorder archive frames, write them in sequence, ack and NACK.

Plugged into :class:`neurolink.receiver.Receiver` as ``reliable=ReliableReceiver(factory)``: the receiver
hands it every ``archive_frame`` message (:meth:`on_message`) and runs :meth:`run` (periodic acks).

Selective-repeat ARQ with a bounded window: frames within ``window_frames`` of the next one to write are
decoded and held; frames beyond it are dropped (not acked, so the sender retransmits them later) which keeps
receiver memory bounded after a long outage. The cumulative ack is the archive's *durable* point, so a
receiver killed at any moment loses nothing the sender has already freed.

A block the archive cannot write (disk full, I/O error) is not consumed: the sink rolls it back, counts and logs
the failure, the block is dropped unacknowledged and NACKed again (with the usual backoff), and the sender's
retransmission brings it back; the live path is not affected, and archiving resumes when the disk has room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurolink.codecs import get_codec
from neurolink.errors import CodecError, NeurolinkError, WireFormatError
from neurolink.reliable.block import unpack_block
from neurolink.runtime import in_bulk_thread
from neurolink.sinks.archive import ARCHIVE_CODEC, ArchiveSink, archive_codec_for
from neurolink.wire import ack as wack
from neurolink.wire import format as wire

log = logging.getLogger(__name__)

HEADER_REQUEST_S = 0.25
#: after an archive failed to open (disk full), no new attempt for this long (each archive frame would retry)
OPEN_RETRY_S = 1.0

ArchiveFactory = Callable[[wire.StreamHeader], ArchiveSink]


@dataclass
class _Rx:
    header: wire.StreamHeader
    archive: ArchiveSink
    next: int | None
    held: dict[int, wire.Frame | None] = field(default_factory=dict)  # coded blocks; None: end of stream
    highest: int = -1
    ended: bool = False
    blocks_archived: int = 0
    frames_archived: int = 0
    duplicates: int = 0
    beyond_window: int = 0
    retransmits_in: int = 0
    lost_for_good: int = 0
    bad_blocks: int = 0  # blocks that passed the CRCs but did not decode (dropped, NACKed again)
    blocks_write_failed: int = 0  # blocks the archive could not write (disk full: dropped, NACKed again)
    nacked: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq -> (last NACK time, times NACKed)
    offset: float | None = None  # the live stream's clock offset when the latest archive frame arrived
    gap_to: int | None = None  # background: the sender's spool overflowed up to here (applied between blocks)
    task: asyncio.Task | None = None  # background: decodes and writes the held blocks in a worker thread
    codec: Any = None  # background: this stream's own block decoder (threads never share one)


def _busy(st: _Rx) -> bool:
    """A block of this stream is in a worker thread (background mode): its archive and sequence are not the
    loop's to touch until the task is done."""
    return st.task is not None and not st.task.done()


class ReliableReceiver:
    def __init__(self, factory: ArchiveFactory, *, window_frames: int = 64, ack_interval_s: float = 0.1,
                 nack_holdoff_s: float = 0.5, background: bool = False) -> None:
        self.factory = factory
        #: decode and write blocks in a worker thread, one task per stream (the daemon's mode): a 100-frame block
        #: of 1024 channels is ~3 M samples to decode, and every archive chunk ~30 M to code, which would hold
        #: the live frames behind them on the event loop. String (marker) streams stay inline (tiny; the sink's
        #: flush timer needs the loop). Off: :meth:`on_message` returns with the blocks written (tests).
        self.background = background
        self._closing = False
        self.nack_holdoff_s = nack_holdoff_s
        self.window = window_frames
        self.ack_interval_s = ack_interval_s
        self.streams: dict[int, _Rx] = {}
        self.codec = get_codec(ARCHIVE_CODEC)
        self.codec.decode(self.codec.encode(np.zeros((4, 2), np.int16)))  # load the jitted kernels up front
        self._codecs: dict[str, Any] = {"int16": self.codec, "int32": self.codec}  # block decoder per sample format
        self.without_header = 0
        self.header_requests = 0
        self._header_asked: dict[int, float] = {}  # stream id -> when its header was last requested
        self.bad = 0
        self.open_errors = 0  # archives that failed to open or close (disk full...): logged, retried
        self._open_failed: dict[int, float] = {}  # stream id -> when opening its archive last failed

    # -- hooks called by the Receiver ----------------------------------------------------------------
    def on_message(self, rx: Any, msg: bytes) -> None:
        """One archive frame; ``rx`` is the Receiver (its live streams give the header and clock offset)."""
        af = wack.parse_archive_frame(msg)
        h = af.frame.header
        live = rx.streams.get(h.stream_id)
        if live is None:
            self.without_header += 1  # not acked: it comes back once the header is known
            if self.without_header in (1, 10, 100) or self.without_header % 1000 == 0:
                log.debug("stream %d: archive frame %d before its stream header (%d so far)", h.stream_id, h.seq,
                          self.without_header)
            self._ask_header(rx, h.stream_id)
            return
        hdr = live.header
        st = self.streams.get(h.stream_id)
        if st is None or st.header.session != hdr.session:
            if st is not None and _busy(st):
                return  # not acked: it comes back once the old session's block in the worker is done
            if time.monotonic() - self._open_failed.get(h.stream_id, -1e9) < OPEN_RETRY_S:
                return  # not acked: it comes back
            if st is not None:
                self._close(st)
                del self.streams[h.stream_id]
            try:
                st = self._open(hdr)
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop the receiver: retried later
                self.open_errors += 1
                self._open_failed[h.stream_id] = time.monotonic()
                if self.open_errors in (1, 10, 100) or self.open_errors % 1000 == 0:
                    log.error("stream %d: archive not opened (%d failures so far; retried every %.0f s): %s: %s",
                              h.stream_id, self.open_errors, OPEN_RETRY_S, type(exc).__name__, exc)
                return
        if st.ended:
            return
        if st.next is None:
            st.next = af.oldest_seq
        if h.flags & wire.FLAG_RETRANSMIT:
            st.retransmits_in += 1
        st.highest = max(st.highest, h.seq, af.end_seq - 1)
        if af.oldest_seq > st.next:  # the sender's spool overflowed: those frames are gone
            st.gap_to = max(st.gap_to or 0, af.oldest_seq)
            if not _busy(st):
                self._apply_gap(st)
        if h.seq < st.next or h.seq in st.held:
            st.duplicates += 1
        elif h.seq >= st.next + self.window:
            st.beyond_window += 1
        elif h.flags & wire.FLAG_END_OF_STREAM:
            st.held[h.seq] = None
        else:
            st.held[h.seq] = af.frame  # decoded when its turn comes: the window holds coded bytes only
        st.offset = live.applied_offset
        if not self.background or st.header.channel_format == "string":
            self._drain(st)
        elif not _busy(st) and not self._closing:
            st.task = asyncio.get_running_loop().create_task(self._drain_async(st), name=f"archive-{h.stream_id}")

    async def run(self, send: Callable[[int, bytes], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(self.ack_interval_s)
            for sid, st in self.streams.items():
                await send(sid, wack.pack_ack(self.ack_for(st)))

    def close(self) -> None:
        """Close every archive (no block may be in a worker thread: see :meth:`aclose`)."""
        for st in self.streams.values():
            self._close(st)

    async def aclose(self) -> None:
        """Let each stream finish the block its worker thread holds (a write cannot be interrupted halfway),
        start no other, then close every archive."""
        self._closing = True
        tasks = [st.task for st in self.streams.values() if st.task is not None and not st.task.done()]
        if tasks:
            await asyncio.wait(tasks)
        self.close()

    def summary(self) -> dict[int, dict[str, Any]]:
        return {sid: {"frames_archived": st.frames_archived, "blocks_archived": st.blocks_archived, "next_seq": st.next, "durable_next_seq": st.archive.next_seq,
                      "duplicates": st.duplicates, "beyond_window": st.beyond_window, "retransmits_in": st.retransmits_in,
                      "lost_for_good": st.lost_for_good, "bad_blocks": st.bad_blocks, "held": len(st.held), "ended": st.ended,
                      "write_errors": getattr(st.archive, "write_errors", 0), "blocks_write_failed": st.blocks_write_failed,
                      "open_errors": self.open_errors}
                for sid, st in self.streams.items()}

    # -- internals ---------------------------------------------------------------------------------
    def _ask_header(self, rx: Any, stream_id: int) -> None:
        """Ask the sender for a stream header (at most every HEADER_REQUEST_S): after the live stream has ended
        only archive frames arrive, and nothing else would prompt one before the next periodic header."""
        ids = getattr(rx, "stream_ids", None)
        request = getattr(rx, "_request_header", None)
        if request is None or (ids is not None and stream_id not in ids):
            return
        now = time.monotonic()
        if now - self._header_asked.get(stream_id, -1e9) < HEADER_REQUEST_S:
            return
        self._header_asked[stream_id] = now
        self.header_requests += 1
        request(stream_id)

    def ack_for(self, st: _Rx, now: float | None = None) -> wack.Ack:
        """Cumulative durable point + NACKs; a block NACKed recently is not NACKed again (backoff), since an
        overloaded receiver still has retransmissions queued in its socket."""
        durable = st.archive.next_seq or 0
        missing: list[int] = []
        if st.next is not None and not st.ended:
            now = time.monotonic() if now is None else now
            for s in [s for s in st.nacked if s < st.next]:
                del st.nacked[s]
            top = min(max(st.highest + 1, st.next), st.next + self.window)
            for s in range(st.next, top):
                if s in st.held:
                    continue
                prev = st.nacked.get(s)
                if prev is not None and now - prev[0] < self.nack_holdoff_s * (1 << min(prev[1] - 1, 4)):
                    continue
                st.nacked[s] = (now, (prev[1] if prev else 0) + 1)
                missing.append(s)
        return wack.Ack(st.header.stream_id, durable, wack.ranges_from_missing(missing))

    def _close(self, st: _Rx) -> None:
        """Close one archive; a failure (disk full) is logged by the sink and costs only what was not durable,
        which the sender still holds."""
        try:
            st.archive.close()
        except Exception as exc:  # noqa: BLE001 - the other archives still close
            self.open_errors += 1
            log.error("stream %d: archive %s not closed cleanly: %s: %s", st.header.stream_id, st.archive.path,
                      type(exc).__name__, exc)

    def _open(self, hdr: wire.StreamHeader) -> _Rx:
        sink = self.factory(hdr)
        sink.open(hdr)
        st = _Rx(hdr, sink, sink.buffered_next_seq)
        self.streams[hdr.stream_id] = st
        log.info("stream %d: archiving to %s from frame %s%s", hdr.stream_id, sink.path, st.next,
                 " (resumed)" if sink.resumed else "")
        return st

    def _codec_for(self, dtype: str) -> Any:
        c = self._codecs.get(dtype)
        if c is None:
            c = self._codecs[dtype] = get_codec(archive_codec_for(dtype))
        return c

    def _apply_gap(self, st: _Rx) -> None:
        """Frames below ``gap_to`` will never come (the sender's spool overflowed): record them and move on."""
        if st.gap_to is None or st.next is None:
            return
        if st.gap_to > st.next:
            st.archive.add_gap(st.next, st.gap_to, "sender spool overflow")
            st.lost_for_good += st.gap_to - st.next
            st.held = {s: v for s, v in st.held.items() if s >= st.gap_to}
            st.next = st.gap_to
        st.gap_to = None

    def _drain(self, st: _Rx) -> None:
        """Write the held blocks that are next in sequence, inline."""
        self._apply_gap(st)
        while st.next in st.held and self._advance(st, self._write(st, st.next, st.held[st.next], self._codec_for)):
            self._apply_gap(st)

    async def _drain_async(self, st: _Rx) -> None:
        """:meth:`_drain` with each block's decode and write in a worker thread; the loop only moves the
        sequence on (nothing else touches this stream's archive meanwhile: see :func:`_busy`)."""
        if st.codec is None:
            st.codec = get_codec(archive_codec_for(st.header.channel_format))
        try:
            self._apply_gap(st)
            while st.next in st.held and not self._closing:
                status = await in_bulk_thread(self._write, st, st.next, st.held[st.next], lambda _d: st.codec)
                if not self._advance(st, status):
                    break
                self._apply_gap(st)
        except Exception:  # noqa: BLE001 - a bug here must not end the receiver: the next block restarts the task
            log.exception("stream %d: archive drain failed", st.header.stream_id)

    def _write(self, st: _Rx, seq: int, item: wire.Frame | None, codec_for: Callable[[str], Any]) -> str:
        """Decode and write block ``seq`` (``None``: the end of stream): "ok", "eos", "bad" (corrupt or refused:
        dropped, NACKed again) or "failed" (the archive could not write it: rolled back, NACKed again)."""
        if item is None:  # end of stream: make everything durable so the sender can let go
            try:
                st.archive.add_eos(seq)
            except Exception:  # noqa: BLE001 - disk full: counted and logged by the sink; NACKed, sent again
                return "failed"
            return "eos"
        try:
            data, ts = unpack_block(item.payload, item.header.n_samples, item.header.n_channels,
                                    codec_for(item.header.dtype), st.header.nominal_srate, item.header.dtype)
        except (CodecError, WireFormatError, NeurolinkError) as exc:  # corrupt despite the CRCs: drop it, NACK it again
            log.warning("stream %d: archive block %d rejected: %s", st.header.stream_id, seq, exc)
            return "bad"
        if st.offset is not None:
            st.archive.set_clock_offset(st.offset)
        try:
            st.archive.write_frame(seq, data, ts)
        except NeurolinkError as exc:  # refused (not a write failure): like an undecodable block
            log.warning("stream %d: archive block %d refused: %s", st.header.stream_id, seq, exc)
            return "bad"
        except Exception:  # noqa: BLE001 - disk full / I/O error: the sink rolled the block back, counted and
            return "failed"  # logged it; not acked, NACKed again: the sender's resend retries it
        return "ok"

    def _advance(self, st: _Rx, status: str) -> bool:
        """Account for :meth:`_write`'s outcome of block ``st.next`` (on the loop); True: go on with the next."""
        seq = st.next
        assert seq is not None  # set by on_message before any block is held
        item = st.held.pop(seq, None)
        if status == "bad":
            st.bad_blocks += 1
            return False
        if status == "failed":
            st.blocks_write_failed += 1
            return False
        st.next = seq + 1
        if status == "eos":
            st.ended = True
            return False
        st.blocks_archived += 1
        st.frames_archived += int(np.frombuffer(item.payload, "<u4", 1)[0]) if item is not None else 0
        return True
