"""The receiver pipeline: transport -> parse -> gap detection -> decode -> conceal -> sinks, plus feedback.

Timestamps: frames carry the sender's LSL timestamp of their first sample; the receiver maps it into its
own clock with an NTP-style offset estimated from clock probes (never the arrival time), keeps the result
monotonic, and derives per-sample stamps as ``t0 + i / fs``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from neurolink.codecs import get_codec
from neurolink.codecs.base import frame_decode_limit
from neurolink.codecs.text import text_nbytes
from neurolink.conceal import check_mode, conceal
from neurolink.errors import CodecError, ConfigError, MissingReferenceError, SecurityError, WireFormatError
from neurolink.lsl import pylsl
from neurolink.sinks.base import Sink
from neurolink.stats import ClockOffset, Ring
from neurolink.transports.base import ReceiverTransport
from neurolink.wire import format as wire

log = logging.getLogger(__name__)

#: a sequence gap this long may wrap a codec's frame counter (the lossy family counts mod 16)
COUNTER_SAFE_GAP = 16

SinkFactory = Callable[[wire.StreamHeader], list[Sink]]
KEYFRAME_REQUEST_S = 0.02  # repeat a keyframe request for the same level at most this often
# Capacity estimate: the probe bytes of the last CAPACITY_WINDOW packet pairs (no older than
# CAPACITY_MAX_AGE control intervals) over the sum of their gaps. One pair per interval is noisy: on a
# cellular link, which delivers in bursts (a Mahimahi trace is a list of 1500-byte delivery slots), a
# frame and its probe often leave in one slot (gap ~0: reads 10-100x the link) and otherwise wait for
# the next; a median of per-pair rates stays 1.3-1.5x high, pooling the gaps is unbiased (measured on the
# demo's Verizon trace: pooled/true p10/p50/p90 0.6/1.0/2.1, median of rates 0.8/1.5/3.4).
CAPACITY_WINDOW = 8
CAPACITY_MAX_AGE = 10
# Gaps longer than this are not filled: the republished stream jumps in time instead (LSL consumers see the
# jump in the timestamps), counted in ``gaps_unfilled``. Filling a 10-minute outage of 1024 ch at 30 kHz
# would be one 37 GB allocation; concealment is for short losses, where holding a value or interpolating
# is a fair stand-in for the signal. The default of ``Receiver(max_conceal_s=...)`` / ``receiver.max_conceal_s``.
MAX_CONCEAL_S = 2.0


@dataclass
class RxStats:
    frames_ok: int = 0
    frames_lost: int = 0  # sequence gaps
    frames_undecodable: int = 0  # e.g. predicted frame after a loss, before the next keyframe
    frames_late: int = 0  # duplicates or behind the playout point
    samples_out: int = 0
    samples_concealed: int = 0
    gaps_unfilled: int = 0  # gaps longer than max_conceal_s: left as a jump in the timestamps
    bytes_in: int = 0
    raw_bytes: int = 0
    timestamp_clamps: int = 0
    restarts: int = 0
    keyframe_requests: int = 0  # sent after undecodable frames (see Receiver._request_keyframe)
    capacity_probes: int = 0  # FLAG_PROBE copies paired with their frame (dispersion samples)
    capacity_probes_unpaired: int = 0  # the frame before it was lost, late or reordered
    capacity_bps: float = float("nan")  # last interval's capacity estimate
    level: int = 0
    latency_ms: Ring = field(default_factory=Ring)
    decode_us: Ring = field(default_factory=Ring)
    ended: bool = False
    sinks_failed: int = 0  # sinks that failed to open for this stream (logged; the others run)
    sink_errors: int = 0  # pushes a sink raised on (logged; the data went to the other sinks)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.bytes_in if self.bytes_in else float("nan")


class _RxStream:
    def __init__(self, header: wire.StreamHeader, sinks: list[Sink], conceal_mode: str) -> None:
        self.header = header
        self.sinks = sinks
        self.conceal_mode = conceal_mode
        self.fs = header.nominal_srate
        # string streams (markers): nothing is concealed (a lost marker cannot be invented) and their
        # timestamps are delivered as sent (equal or out-of-order marker times are data, not jitter)
        self.text = header.channel_format == "string"
        self.dtype = np.dtype(object) if self.text else np.dtype(header.channel_format)  # what decoders must return
        self.ladder = header.ladder or [header.codec]
        self.decoders: dict[int, Any] = {}
        self.expected: int | None = None
        self.last_sample: np.ndarray | None = None
        self.last_ts = -np.inf
        self.stats = RxStats()
        self.clock = ClockOffset()
        self.applied_offset: float | None = None
        self.held: dict[int, tuple[wire.Frame, int]] = {}  # jitter buffer: frames waiting for a missing one
        self.pending: list[tuple[np.ndarray, np.ndarray, bool]] = []  # held until the clock settles
        self.created = time.monotonic()
        self._offsets: dict[int, np.ndarray] = {}  # n_samples -> arange(n) / fs (read-only)
        # LSL's local_clock is the machine's monotonic clock: on the sender's own host the offset is 0
        self.same_host = bool(header.hostname) and header.hostname == socket.gethostname()
        if self.same_host:
            self.applied_offset = 0.0
        # per control interval
        self.iv_bytes = 0
        self.kf_requested: dict[int, float] = {}  # level -> monotonic time of the last keyframe request
        self.iv_pairs: list[tuple[int, float]] = []  # packet pairs this interval: (probe bytes, gap s)
        self.capacity_window: collections.deque[tuple[int, int, float]] = collections.deque(maxlen=CAPACITY_WINDOW)
        self.last_seq = -1  # seq and arrival time (perf_counter) of the last data frame: the probe's pair
        self.last_arrival = 0.0
        self.iv_ok = 0
        self.iv_lost = 0
        self.iv_delay: list[float] = []
        self.prev_delay = float("nan")
        self.interval = 0
        self.probe_echo = 0.0
        self.sinks = []
        for s in sinks:
            try:
                s.open(header)
            except Exception as exc:  # noqa: BLE001 - one sink (e.g. a full disk) must not stop the others
                self.stats.sinks_failed += 1
                log.error("stream %d: %s not opened, the stream goes on without it: %s", header.stream_id,
                          type(s).__name__, exc)
                continue
            self.sinks.append(s)

    def offsets(self, n: int) -> np.ndarray:
        """``arange(n) / fs``, computed once per frame length (every frame but the last has the same)."""
        o = self._offsets.get(n)
        if o is None:
            if len(self._offsets) > 64:
                self._offsets.clear()
            o = self._offsets[n] = np.arange(n) / self.fs
            o.flags.writeable = False
        return o

    def decoder(self, level: int):
        if level not in self.decoders:
            if not 0 <= level < len(self.ladder):
                raise CodecError(f"level {level} outside the stream's ladder of {len(self.ladder)} levels")
            self.decoders[level] = get_codec(self.ladder[level])
        return self.decoders[level]


class Receiver:
    """One receiver daemon: any number of streams from the transport, each to its sinks."""

    def __init__(
        self,
        transport: ReceiverTransport,
        sink_factory: SinkFactory,
        *,
        conceal: str = "hold",
        control_interval_s: float = 0.1,
        stream_ids: set[int] | None = None,
        clock_settle_s: float = 0.5,
        max_slew_s: float = 5e-6,
        opener: Any = None,
        jitter_ms: float = 0.0,
        reliable: Any = None,
        max_conceal_s: float = MAX_CONCEAL_S,
    ) -> None:
        self.transport = transport
        self.sink_factory = sink_factory
        self.conceal_mode = check_mode(conceal)
        if control_interval_s <= 0:
            raise ConfigError("receiver.control_interval_s", f"must be > 0, got {control_interval_s}")
        self.control_interval_s = control_interval_s
        if not 0 <= jitter_ms <= 10_000:
            raise ConfigError("receiver.jitter_ms", f"expected a value in [0, 10000], got {jitter_ms!r}")
        self.jitter_s = jitter_ms / 1000.0  # reorder window; 0 = conceal gaps at once (lowest latency)
        if not 0 <= max_conceal_s <= 600:
            raise ConfigError("receiver.max_conceal_s", f"expected a value in [0, 600], got {max_conceal_s!r}")
        self.max_conceal_s = max_conceal_s  # longest gap filled; longer ones leave a jump in the timestamps
        self.stream_ids = stream_ids
        self.clock_settle_s = clock_settle_s  # longest hold of output while the first probes return
        self.max_slew_s = max_slew_s  # largest clock-offset correction per frame
        self.opener = opener  # optional end-to-end decryption: .open(msg) -> wire bytes, .seal(msg) -> bytes
        self._open_parsed = getattr(opener, "open_parsed", None)  # FrameCipher: frames come back parsed
        self.reliable = reliable  # optional archive path (neurolink.reliable.receiver.ReliableReceiver)
        self.streams: dict[int, _RxStream] = {}
        self.rejected_security = 0
        self._t_in = 0.0  # perf_counter() when the message being handled arrived
        self.bad_messages = 0
        self.frames_without_header = 0
        # frames that arrive before their stream header (PUB/SUB slow joiner) wait here, bounded
        self._orphans: dict[int, collections.deque] = {}
        self.max_orphans = 4096
        self._stopping = asyncio.Event()
        self.header_event = asyncio.Event()
        self.ended_event = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        async with self.transport:
            async with asyncio.TaskGroup() as tg:
                rx = tg.create_task(self._recv_loop(), name="recv")
                fb = tg.create_task(self._feedback_loop(), name="feedback")
                # --- reliable archive path (optional): periodic acks/NACKs ---
                ack = tg.create_task(self.reliable.run(self._send_ack), name="acks") if self.reliable is not None else None
                await self._stopping.wait()
                rx.cancel()
                fb.cancel()
                if ack is not None:
                    ack.cancel()
        for st in self.streams.values():
            for s in st.sinks:
                s.close()
        if self.reliable is not None:
            await self.reliable.aclose()  # lets a block being written in a worker thread finish first

    # -- receive -----------------------------------------------------------------------------------
    async def _recv_loop(self) -> None:
        n = 0
        while True:
            msg = await self.transport.recv()
            self.handle(msg)
            n += 1
            if n % 64 == 0:  # a queued backlog completes recv() without yielding: let feedback/acks run
                await asyncio.sleep(0)

    def handle(self, msg: bytes) -> None:
        """Process one wire message; malformed input is counted and logged (rate-limited), never raised."""
        self._t_in = time.perf_counter()  # arrival time, before decryption and decoding (packet pairs)
        if self.opener is not None:
            try:
                if self._open_parsed is not None:  # frames come back parsed: no rebuilt CRC, no second parse
                    opened = self._open_parsed(msg)
                    if isinstance(opened, wire.Frame):
                        self._on_frame_checked(opened)
                        return
                    msg = opened
                else:
                    msg = self.opener.open(msg)
            except SecurityError as exc:
                self.rejected_security += 1
                if self.rejected_security in (1, 10, 100) or self.rejected_security % 1000 == 0:
                    log.warning("rejected message (%d so far): %s", self.rejected_security, exc)
                return
        try:
            mtype = wire.message_type(msg)
            if mtype == wire.MSG_FRAME:
                self._on_frame(wire.parse_frame(msg), len(msg))
            elif mtype == wire.MSG_STREAM_HEADER:
                self._on_header(wire.parse_stream_header(msg))
            elif mtype == wire.MSG_CLOCK:
                self._on_clock(wire.parse_clock(msg))
            elif mtype == wire.MSG_ARCHIVE_FRAME:  # reliable archive path; ignored by live-only receivers
                if self.reliable is not None:
                    self.reliable.on_message(self, msg)
            else:
                raise WireFormatError("msg_type", 5, f"unexpected message type {mtype} on the data channel")
        except (WireFormatError, CodecError) as exc:
            self.bad_messages += 1
            if self.bad_messages in (1, 10, 100) or self.bad_messages % 1000 == 0:
                log.warning("rejected message (%d so far): %s", self.bad_messages, exc)

    def _on_frame_checked(self, f: wire.Frame) -> None:
        """An already parsed (decrypted) frame: same accounting as :meth:`handle` for a plaintext one."""
        try:
            self._on_frame(f, wire.FRAME_HEADER_SIZE + len(f.payload) + 4)  # its plaintext wire size
        except (WireFormatError, CodecError) as exc:
            self.bad_messages += 1
            if self.bad_messages in (1, 10, 100) or self.bad_messages % 1000 == 0:
                log.warning("rejected message (%d so far): %s", self.bad_messages, exc)

    def _on_capacity_probe(self, st: _RxStream, seq: int, nbytes: int) -> None:
        """A FLAG_PROBE copy of frame ``seq``: the gap since that frame arrived is its dispersion at the
        bottleneck, so ``size / gap`` samples the link's capacity (see Sender's ``probe_msg``)."""
        if seq != st.last_seq:
            st.stats.capacity_probes_unpaired += 1
            return
        gap = max(self._t_in - st.last_arrival, 1e-6)  # same loop batch: the link was not the bottleneck
        st.iv_pairs.append((nbytes, gap))
        st.stats.capacity_probes += 1
        st.last_seq = -1  # one sample per pair

    def _on_header(self, h: wire.StreamHeader) -> None:
        if self.stream_ids is not None and h.stream_id not in self.stream_ids:
            return
        st = self.streams.get(h.stream_id)
        if st is not None and st.header == h:
            return
        if st is not None:
            log.info("stream %d: new stream header (sender restarted or reconfigured)", h.stream_id)
            for s in st.sinks:
                s.close()
        try:
            sinks = self.sink_factory(h)
        except Exception as exc:
            raise WireFormatError("json", 14, f"cannot create sinks for stream {h.stream_id}: {exc}") from exc
        self.streams[h.stream_id] = _RxStream(h, sinks, self.conceal_mode)
        log.info("stream %d: %r %s, %d ch @ %g Hz, %s", h.stream_id, h.name, h.type, h.channel_count,
                 h.nominal_srate, h.channel_format)
        self.header_event.set()
        for f, nbytes in self._orphans.pop(h.stream_id, ()):
            self._on_frame(f, nbytes)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # offline use (tests, file decoding): no clock probes
            return
        for i in range(8):  # a burst of probes so the clock offset settles within ~100 ms
            loop.call_later(0.01 * i, self._probe, h.stream_id)

    def _on_clock(self, c: wire.ClockProbe) -> None:
        st = self.streams.get(c.stream_id)
        if st is not None and c.kind == 1:
            st.clock.add(c.t0, c.t1, c.t2, pylsl.local_clock())

    def _on_frame(self, f: wire.Frame, nbytes: int) -> None:
        h = f.header
        st = self.streams.get(h.stream_id)
        if h.flags & wire.FLAG_PROBE:
            if st is not None:
                self._on_capacity_probe(st, h.seq, nbytes)
            return
        if st is None:
            if self.stream_ids is not None and h.stream_id not in self.stream_ids:
                return
            q = self._orphans.setdefault(h.stream_id, collections.deque(maxlen=self.max_orphans))
            if len(q) == q.maxlen:
                self.frames_without_header += 1  # the oldest waiting frame is dropped
            q.append((f, nbytes))
            if len(q) == 1 or len(q) % 256 == 0:
                self._request_header(h.stream_id)
            return
        s = st.stats
        st.last_seq, st.last_arrival = h.seq, self._t_in
        if h.flags & wire.FLAG_END_OF_STREAM:
            if st.held:
                self._flush_held(st)
            if st.applied_offset is None:  # ended before the clock settled: what is held goes out now
                self._settle(st)
            if st.expected is not None and h.seq > st.expected:  # frames lost right before the end
                gap = h.seq - st.expected
                s.frames_lost += gap
                st.iv_lost += gap
                st.expected = h.seq
                self._conceal_tail(st, gap, h.timestamp)
            s.ended = True
            self.ended_event.set()
            return
        if h.n_channels != st.header.channel_count or h.dtype != st.header.channel_format:
            raise WireFormatError("n_channels", 32, f"frame {h.n_channels} ch {h.dtype} does not match the stream header")
        if 0 < st.header.frame_samples < h.n_samples:  # a sender never frames more: forged, and it would raise the
            # decode limit and the concealment length with it
            raise WireFormatError("n_samples", 28, f"frame of {h.n_samples} samples; stream {h.stream_id}'s frames hold "
                                  f"at most {st.header.frame_samples}")
        if st.expected is None:
            st.expected = h.seq
        if h.seq < st.expected:
            if st.expected - h.seq > 10_000:
                log.info("stream %d: sequence restarted at %d (was %d)", h.stream_id, h.seq, st.expected)
                s.restarts += 1
                st.expected = h.seq
                st.decoders.clear()
            else:
                s.frames_late += 1
                return
        if self.jitter_s > 0 and h.seq > st.expected and len(st.held) < 10_000:
            # out of order or a loss: wait up to jitter_s for the missing frames before concealing
            if h.seq not in st.held:
                st.held[h.seq] = (f, nbytes)
                if len(st.held) == 1:
                    self._schedule_flush(st)
            return
        self._process(st, f, nbytes)
        while st.held and st.expected in st.held:
            self._process(st, *st.held.pop(st.expected))

    def _schedule_flush(self, st: _RxStream) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(self.jitter_s, self._flush_held, st)

    def _flush_held(self, st: _RxStream) -> None:
        """Jitter deadline passed: the missing frames are lost; conceal them and release the rest in order."""
        for seq in sorted(st.held):
            if seq >= (st.expected or 0):
                self._process(st, *st.held[seq])
        st.held.clear()

    def _process(self, st: _RxStream, f: wire.Frame, nbytes: int) -> None:
        h = f.header
        s = st.stats
        gap = h.seq - cast(int, st.expected)  # set by the caller before any frame is processed
        st.expected = h.seq + 1
        s.bytes_in += nbytes
        st.iv_bytes += nbytes
        s.level = h.level
        if gap >= COUNTER_SAFE_GAP:
            # a codec's own frame counter (4 to 6 bits) wraps over a loss this long: it could take the frame
            # for its reference's successor. Restart the decoders: the next keyframe (requested) resumes.
            for d in st.decoders.values():
                d.reset()
        t = time.perf_counter_ns()
        try:
            with frame_decode_limit(h.n_samples, h.n_channels, h.dtype):  # no payload decodes beyond its frame
                data = st.decoder(h.level).decode(f.payload)
            if data.shape != (h.n_samples, h.n_channels):
                raise CodecError(f"payload decodes to {data.shape}, header says {(h.n_samples, h.n_channels)}")
            if data.dtype != st.dtype:  # e.g. text for a numeric stream: no sink could take it
                raise CodecError(f"payload decodes to {data.dtype.name}, the stream is {st.header.channel_format}")
        except MissingReferenceError:
            s.frames_undecodable += 1
            data = None
            self._request_keyframe(st, h.level)
        except Exception as exc:  # noqa: BLE001 - CodecError, or a codec bug: neither may stop the receiver
            # a payload that passed the wire checksum but does not decode (tampered, or a codec fault): its
            # samples are concealed like a lost frame, never skipped, and a streaming decoder restarts from
            # the next keyframe rather than carry state the bad payload may have touched
            s.frames_undecodable += 1
            st.decoders.pop(h.level, None)
            data = None
            self._request_keyframe(st, h.level)
            if s.frames_undecodable in (1, 10, 100) or s.frames_undecodable % 1000 == 0:
                log.warning("stream %d frame %d (level %d): undecodable payload, concealed (%d so far): %s",
                            h.stream_id, h.seq, h.level, s.frames_undecodable, exc,
                            exc_info=not isinstance(exc, CodecError))  # a codec bug: with its traceback
        s.decode_us.add((time.perf_counter_ns() - t) / 1000.0)
        t0 = h.timestamp  # sender clock; mapped in _emit
        fs = st.fs
        if gap > 0:
            s.frames_lost += gap
            st.iv_lost += gap
        missing = gap * (st.header.frame_samples or h.n_samples) if fs > 0 and not st.text else 0
        if data is None and fs > 0 and not st.text:
            missing += h.n_samples
        if missing > 0 and self._fillable(st, missing):
            # lost samples end right before this frame's first sample (or include it when undecodable)
            end_t = t0 + (h.n_samples / fs if data is None else 0.0)
            ts = end_t - np.arange(missing, 0, -1) / fs
            nxt = data[0] if data is not None else None
            fill = conceal(st.conceal_mode, missing, h.n_channels, np.dtype(h.dtype), st.last_sample, nxt)
            self._emit(st, fill, ts, concealed=True)
        if data is None:
            return
        s.frames_ok += 1
        st.iv_ok += 1
        s.raw_bytes += data.nbytes if not st.text else text_nbytes(data)
        ts = t0 + st.offsets(h.n_samples) if fs > 0 else np.full(h.n_samples, t0)
        self._emit(st, data, ts, concealed=False)
        now = pylsl.local_clock()
        lat = (now - (ts[-1] - (st.applied_offset or 0.0))) * 1000.0
        s.latency_ms.add(lat)
        st.iv_delay.append(lat)

    def _conceal_tail(self, st: _RxStream, frames: int, end_ts: float) -> None:
        """Frames lost right before the end of stream: their samples are concealed like any other gap, so
        the output is never silently short. Their timestamps continue the republished clock at the nominal
        rate. The end-of-stream marker's timestamp (sender clock, one past the last sample; 0 from older
        senders) bounds the count, so a lost partial last frame is not filled as a whole one; irregular
        streams have nothing to fill."""
        n = frames * (st.header.frame_samples or 0)
        if n <= 0 or st.fs <= 0 or st.text or not np.isfinite(st.last_ts) or st.applied_offset is None:
            return
        if end_ts > 0 and np.isfinite(end_ts):
            n = int(min(n, max(0, round((end_ts - st.applied_offset - st.last_ts) * st.fs) - 1)))
        if n == 0 or not self._fillable(st, n):
            return
        ts = st.last_ts + np.arange(1, n + 1) / st.fs
        fill = conceal(st.conceal_mode, n, st.header.channel_count, np.dtype(st.header.channel_format), st.last_sample, None)
        self._deliver(st, fill, ts, concealed=True)

    def _fillable(self, st: _RxStream, n: int) -> bool:
        """Whether a gap of ``n`` samples is short enough to conceal (``max_conceal_s``, see MAX_CONCEAL_S)."""
        if n <= st.fs * self.max_conceal_s:
            return True
        st.stats.gaps_unfilled += 1
        if st.stats.gaps_unfilled in (1, 10, 100) or st.stats.gaps_unfilled % 1000 == 0:
            log.warning("stream %d: a gap of %.1f s is longer than %.0f s: not filled, the output jumps in time "
                        "(%d such gaps so far)", st.header.stream_id, n / st.fs, self.max_conceal_s, st.stats.gaps_unfilled)
        return False

    def _settle(self, st: _RxStream) -> None:
        """Fix the clock offset now (settled, timed out, or the stream ended) and deliver the held output."""
        st.applied_offset = st.clock.offset
        pending, st.pending = st.pending, []
        for d, t, c in pending:
            self._deliver(st, d, t - st.applied_offset, concealed=c)

    def _settle_if_held(self, st: _RxStream) -> None:
        if st.applied_offset is None and st.pending and self.streams.get(st.header.stream_id) is st:
            self._settle(st)

    def _emit(self, st: _RxStream, data: np.ndarray, ts_sender: np.ndarray, *, concealed: bool) -> None:
        """Map sender timestamps into this clock and deliver; hold output until the offset is settled."""
        if data.shape[0] == 0:
            return
        if st.applied_offset is None:
            wait = self.clock_settle_s - (time.monotonic() - st.created)
            if not st.clock.settled and wait > 0:
                if not st.pending:  # sparse streams (markers): the next frame may be far off, so a timer settles
                    try:
                        asyncio.get_running_loop().call_later(wait, self._settle_if_held, st)
                    except RuntimeError:  # offline use: the next frame or the end of the stream settles
                        pass
                st.pending.append((data, ts_sender, concealed))
                return
            self._settle(st)
        elif not st.same_host and st.clock.known:
            # slew towards the best estimate: never a step in the republished clock
            step = st.clock.offset - st.applied_offset
            st.applied_offset += float(np.clip(step, -self.max_slew_s, self.max_slew_s))
        self._deliver(st, data, ts_sender - st.applied_offset, concealed=concealed)

    def _deliver(self, st: _RxStream, data: np.ndarray, ts: np.ndarray, *, concealed: bool) -> None:
        if ts[0] <= st.last_ts and not st.text:  # keep the republished clock monotonic (offset updates, sender jitter)
            st.stats.timestamp_clamps += 1
            ts = ts + (st.last_ts - ts[0]) + (1.0 / st.fs if st.fs > 0 else 1e-6)
        for s in st.sinks:
            try:
                s.push(data, ts, concealed=concealed)
            except Exception as exc:  # noqa: BLE001 - one failing sink (disk full, outlet gone) must not stop the others
                st.stats.sink_errors += 1
                n = st.stats.sink_errors
                if n in (1, 10, 100, 1000) or n % 10000 == 0:
                    log.error("stream %d: %s failed to take %d samples (%d failures so far): %s",
                              st.header.stream_id, type(s).__name__, data.shape[0], n, exc)
        st.last_ts = float(ts[-1])
        st.last_sample = data[-1]
        st.stats.samples_out += data.shape[0]
        if concealed:
            st.stats.samples_concealed += data.shape[0]

    # -- feedback ----------------------------------------------------------------------------------
    def _request_header(self, stream_id: int) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        msg = self._seal(wire.pack_clock(wire.ClockProbe(stream_id, 2, pylsl.local_clock(), 0.0, 0.0)))
        asyncio.ensure_future(self.transport.send_feedback(msg, stream_id=stream_id))

    def _request_keyframe(self, st: _RxStream, level: int) -> None:
        """Ask the sender for a keyframe at ``level`` instead of waiting up to a keyframe interval (~100 ms of
        concealment) for the next scheduled one; at most one request per level per ``KEYFRAME_REQUEST_S``."""
        now = time.monotonic()
        if now - st.kf_requested.get(level, -1e9) < KEYFRAME_REQUEST_S:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        st.kf_requested[level] = now
        st.stats.keyframe_requests += 1
        sid = st.header.stream_id
        msg = self._seal(wire.pack_clock(wire.ClockProbe(sid, 3, pylsl.local_clock(), float(level), 0.0)))
        asyncio.ensure_future(self.transport.send_feedback(msg, stream_id=sid))

    def _probe(self, stream_id: int) -> None:
        msg = self._seal(wire.pack_clock(wire.ClockProbe(stream_id, 0, pylsl.local_clock(), 0.0, 0.0)))
        asyncio.ensure_future(self.transport.send_feedback(msg, stream_id=stream_id))

    async def _feedback_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.control_interval_s)
            now = time.monotonic()
            dt = max(now - last, 1e-6)
            last = now
            for sid, st in self.streams.items():
                n = st.iv_ok + st.iv_lost
                delay = float(np.mean(st.iv_delay)) if st.iv_delay else float("nan")
                grad = 0.0 if (np.isnan(delay) or np.isnan(st.prev_delay)) else delay - st.prev_delay
                fb = wire.Feedback(
                    stream_id=sid,
                    interval=st.interval,
                    receiver_time=pylsl.local_clock(),
                    probe_echo=0.0,
                    throughput_bps=self._capacity(st, dt),
                    delay_ms=0.0 if np.isnan(delay) else delay,
                    delay_gradient=grad,
                    loss_fraction=(st.iv_lost / n) if n else 0.0,
                    jitter_buffer_ms=self.jitter_s * 1000.0 if st.held else 0.0,
                    fidelity=-1.0,
                    frames_received=st.stats.frames_ok,
                    frames_lost=st.stats.frames_lost,
                    decode_us=st.stats.decode_us.pct(50) if len(st.stats.decode_us) else 0.0,
                )
                if not np.isnan(delay):
                    st.prev_delay = delay
                st.interval += 1
                st.iv_bytes = st.iv_ok = st.iv_lost = 0
                st.iv_delay.clear()
                st.iv_pairs.clear()
                await self.transport.send_feedback(self._seal(wire.pack_feedback(fb)), stream_id=sid)
                self._probe(sid)

    @staticmethod
    def _capacity(st: _RxStream, dt: float) -> float:
        """Feedback's ``throughput_bps``: the link capacity seen by the recent packet pairs (pooled, see
        CAPACITY_WINDOW), never less than what was delivered; without pairs (fixed-level senders do not
        probe) the delivered rate."""
        delivered = 8.0 * st.iv_bytes / dt
        win = st.capacity_window
        # a pair's gap can be no longer than its probe takes at the delivered rate (capacity >= delivered): a
        # stall of the receiver between the two must not drag the window's estimate down for 8 intervals
        win.extend((st.interval, nbytes, min(gap, 8.0 * nbytes / delivered) if delivered > 0 else gap)
                   for nbytes, gap in st.iv_pairs)
        while win and st.interval - win[0][0] > CAPACITY_MAX_AGE:  # the sender stopped probing
            win.popleft()
        if not win:
            return delivered
        est = max(8.0 * sum(b for _, b, _ in win) / sum(g for _, _, g in win), delivered)
        st.stats.capacity_bps = est
        return est

    async def _send_ack(self, stream_id: int, msg: bytes) -> None:
        await self.transport.send_feedback(self._seal(msg), stream_id=stream_id)

    def _seal(self, msg: bytes) -> bytes:
        return self.opener.seal(msg) if self.opener is not None else msg

    def summary(self) -> dict[int, dict[str, Any]]:
        out = {}
        for sid, st in self.streams.items():
            s = st.stats
            out[sid] = {
                "name": st.header.name, "frames_ok": s.frames_ok, "frames_lost": s.frames_lost,
                "frames_undecodable": s.frames_undecodable, "frames_late": s.frames_late,
                "samples_out": s.samples_out, "samples_concealed": s.samples_concealed,
                "gaps_unfilled": s.gaps_unfilled, "sinks_failed": s.sinks_failed, "sink_errors": s.sink_errors,
                "ratio": s.ratio,
                "latency_ms_p50": s.latency_ms.pct(50), "latency_ms_p99": s.latency_ms.pct(99),
                "decode_us_p50": s.decode_us.pct(50), "clock_offset_ms": st.clock.offset * 1000,
                "level": s.level, "ended": s.ended, "keyframe_requests": s.keyframe_requests,
                "capacity_probes": s.capacity_probes,
                "capacity_probes_unpaired": s.capacity_probes_unpaired, "capacity_mbps": s.capacity_bps / 1e6,
            }
            if self.reliable is not None:  # archive progress in the status file / metrics
                out[sid].update({f"archive_{k}": v for k, v in self.reliable.summary().get(sid, {}).items()})
        return out
