"""The sender pipeline: source -> framer -> bounded queue -> encoder (level from controller) -> transport.

Task ownership: :meth:`Sender.run` creates every task inside one ``asyncio.TaskGroup`` and cancels them
all on :meth:`Sender.stop`; on the way out each stream flushes its partial frame and sends an
end-of-stream frame, so a clean shutdown loses no sample.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neurolink.codecs import Ladder, get_codec, load_ladder
from neurolink.codecs.dtype_ladder import resolve_ladder
from neurolink.codecs.text import text_nbytes
from neurolink.errors import CodecError, NeurolinkError, SecurityError, TransportError, WireFormatError
from neurolink.framer import Framer, RawFrame
from neurolink.lsl import pylsl
from neurolink.queues import DropOldestQueue
from neurolink.sources.base import Source, StreamMeta
from neurolink.stats import Ring
from neurolink.transports.base import SenderTransport
from neurolink.wire import format as wire

if TYPE_CHECKING:
    from neurolink.sender_control import LiveControl

log = logging.getLogger(__name__)


@dataclass
class StreamSpec:
    """One stream of a sender daemon: where samples come from and how they are coded."""

    source: Source
    stream_id: int = 1
    ladder: Ladder | None = None
    frame_ms: float = 1.0
    queue_frames: int = 2000
    controller: dict[str, Any] = field(default_factory=lambda: {"id": "fixed", "level": 0})


# A capacity probe (see _Stream.probe_msg) carries at least this many payload bytes: a pair of 60-byte
# frames crosses a 10 Mbit/s bottleneck 48 us apart, lost in scheduling noise; 600 bytes take 0.5 ms.
PROBE_MIN_BYTES = 600


@dataclass
class StreamStats:
    frames_sent: int = 0
    frames_dropped_queue: int = 0
    frames_dropped_transport: int = 0
    frames_dropped_codec: int = 0  # frames the codec refused (logged): the receiver conceals the gap
    samples_in: int = 0
    raw_bytes: int = 0
    wire_bytes: int = 0
    payload_bytes: int = 0
    level: int = 0
    level_switches: int = 0
    levels_used: set = field(default_factory=set)
    capacity_probes: int = 0  # frame copies sent for the receiver's dispersion (capacity) estimate
    keyframe_requests: int = 0  # honoured receiver requests (the next frame at that level was a keyframe)
    frames_by_level: list = field(default_factory=list)  # frames encoded at each ladder level
    backlog_ms: float = 0.0
    encode_us: Ring = field(default_factory=Ring)
    last_feedback: wire.Feedback | None = None

    @property
    def ratio(self) -> float:
        """Raw bytes over bytes on the wire (frame headers and CRC included)."""
        return self.raw_bytes / self.wire_bytes if self.wire_bytes else float("nan")

    @property
    def codec_ratio(self) -> float:
        """Raw bytes over codec payload bytes (what the codec alone achieves)."""
        return self.raw_bytes / self.payload_bytes if self.payload_bytes else float("nan")


class _Stream:
    def __init__(self, spec: StreamSpec, meta: StreamMeta) -> None:
        self.spec = spec
        self.meta = meta
        self.id = spec.stream_id
        base = spec.ladder or load_ladder()
        levels = resolve_ladder(list(base), meta.channel_format, explicit=spec.ladder is not None, stream=meta.name)
        base_names = getattr(base, "names", None) or [str(c.get("id")) for c in base]  # a Ladder or a plain list
        names = [n if lv == c else f"{n}->{lv['id']}" for n, lv, c in zip(base_names, levels, base, strict=True)]
        self.ladder = Ladder(levels, names, getattr(base, "source", "<dict>"))
        self.codecs = [get_codec(c) for c in self.ladder]
        regular = meta.nominal_srate > 0
        self.frame_samples = max(1, int(round(meta.nominal_srate * spec.frame_ms / 1000.0))) if regular else 1
        self.framer = Framer(self.frame_samples, meta.channel_count, meta.channel_format, regular=regular)
        self.queue: DropOldestQueue[RawFrame] = DropOldestQueue(spec.queue_frames)
        self.stats = StreamStats(frames_by_level=[0] * len(self.codecs))
        self.level = 0
        self.controller: LiveControl | None = None
        self.observer = None
        self.header_msg = wire.pack_stream_header(
            wire.StreamHeader(
                stream_id=self.id,
                name=meta.name,
                type=meta.type,
                source_id=meta.source_id,
                nominal_srate=float(meta.nominal_srate),
                channel_count=meta.channel_count,
                channel_format=meta.channel_format,
                desc_xml=meta.desc_xml,
                codec=self.ladder[0],
                ladder=list(self.ladder),
                frame_samples=self.frame_samples,
                hostname=meta.hostname or socket.gethostname(),
                session=uuid.uuid4().hex,
            )
        )
        self.frame_s = self.frame_samples / meta.nominal_srate if regular else 0.0
        # the frames' dtype on the wire, once (np.dtype.name is slow): the channel format, as LSL names it (string
        # streams are framed as object arrays of str, which numpy calls "object")
        self.dtype_name = meta.channel_format
        self.unsent: tuple[bytes, bool] | None = None  # encoded, send interrupted by shutdown
        self.probe_due = False  # send a copy of the next frame right behind it (see probe_msg)
        self.last_frame: tuple[int, float, int, int, int, bytes, int] | None = None
        self.fs = meta.nominal_srate if regular else 0.0
        self.end_ts = 0.0  # one past the last framed sample (sender clock): sent in the end-of-stream marker

    def set_level(self, level: int) -> None:
        level = int(min(max(level, 0), len(self.codecs) - 1))
        if level != self.level:
            self.codecs[level].reset()  # the first frame at a new level is a keyframe
            self.level = level
            self.stats.level_switches += 1
        self.stats.level = level

    def encode(self, f: RawFrame, sealer: Any = None) -> bytes:
        """Encode one frame into a wire message; sealed in the same step when ``sealer`` can seal frames
        directly (``seal_frame``: no plaintext message to build, checksum and re-parse)."""
        codec = self.codecs[self.level]
        stats = self.stats
        t = time.perf_counter_ns()
        payload = codec.encode(f.data)
        stats.encode_us.add((time.perf_counter_ns() - t) / 1000.0)
        stats.levels_used.add(self.level)
        stats.frames_by_level[self.level] += 1
        flags = 0
        if not codec.streaming:
            flags |= wire.FLAG_KEYFRAME
        else:
            is_kf = getattr(codec, "is_keyframe", None)
            if is_kf is not None and is_kf(payload):
                flags |= wire.FLAG_KEYFRAME
        n, c = f.data.shape
        self.last_frame = (f.seq, f.timestamp, n, c, self.level, payload, flags)
        dtype_name = self.dtype_name
        if sealer is not None:
            msg = sealer.seal_frame(self.id, f.seq, f.timestamp, n, c, dtype_name, self.level, payload, flags)
            plain_len = wire.FRAME_HEADER_SIZE + len(payload) + 4  # what the frame is before sealing
        else:
            msg = wire.pack_frame(self.id, f.seq, f.timestamp, n, c, dtype_name, self.level, payload, flags)
            plain_len = len(msg)
        # string frames hold pointers to str objects: their raw size is the UTF-8 text
        stats.raw_bytes += f.data.nbytes if dtype_name != "string" else text_nbytes(f.data)
        stats.wire_bytes += plain_len
        stats.payload_bytes += len(payload)
        if self.controller is not None:
            self.controller.observe_frame(self.level, plain_len)
        return msg

    def probe_msg(self, sealer: Any = None) -> bytes | None:
        """A copy of the last frame flagged ``FLAG_PROBE``, to be sent right behind it.

        Why: an adaptive controller needs the link's capacity, but the stream is paced by acquisition, so
        the receiver's delivered rate only ever shows what the sender chose to send (a throughput-driven
        controller then ratchets down to its smallest level and never comes back). A back-to-back pair
        leaves the bottleneck spaced by its size over the capacity there (packet-pair dispersion), which
        is what the simulator's controllers are trained to observe. One pair per control interval costs
        about one frame in a hundred (probes of small frames are padded to PROBE_MIN_BYTES). A sealed copy gets its own nonce (the AEAD counter), never the seq."""
        if self.last_frame is None:
            return None
        seq, ts, n, c, level, payload, flags = self.last_frame
        flags |= wire.FLAG_PROBE
        if len(payload) < PROBE_MIN_BYTES:  # never decoded: padding, so timer noise does not swamp the gap
            payload = payload + bytes(PROBE_MIN_BYTES - len(payload))
        if sealer is not None:
            return sealer.seal_frame(self.id, seq, ts, n, c, self.dtype_name, level, payload, flags)
        return wire.pack_frame(self.id, seq, ts, n, c, self.dtype_name, level, payload, flags)


class Sender:
    """One sender daemon: several streams sharing one transport and one feedback channel."""

    def __init__(
        self,
        specs: list[StreamSpec],
        transport: SenderTransport,
        *,
        control_interval_s: float = 0.1,
        header_interval_s: float = 0.5,
        shaper: Any = None,
        sealer: Any = None,
        wait_receiver_s: float = 0.0,
        reliable: Any = None,
    ) -> None:
        ids = [s.stream_id for s in specs]
        if len(set(ids)) != len(ids):
            raise NeurolinkError(f"stream ids must be unique, got {ids}")
        self.specs = specs
        self.transport = transport
        self.control_interval_s = control_interval_s
        self.header_interval_s = header_interval_s
        self.shaper = shaper
        self.wait_receiver_s = wait_receiver_s  # hold the sources until a receiver subscribes (exact counts)
        self.sealer = sealer  # optional end-to-end encryption: .seal(wire_msg) -> bytes
        self._frame_sealer = sealer if hasattr(sealer, "seal_frame") else None  # seals while framing
        self.reliable = reliable  # optional archive path (neurolink.reliable.sender.ReliableSender)
        self._flushed = False
        self._shaped_pending = 0  # messages the in-process link shaper still holds (call_later)
        self._shaped_tasks: set[asyncio.Task] = set()  # their sends, once released
        self.streams: dict[int, _Stream] = {}
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.bad_feedback = 0

    # -- public ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the pipeline to flush and exit (safe from signal handlers)."""
        self._stopping.set()

    async def run(self) -> None:
        async with self.transport:
            if self.wait_receiver_s > 0 and not await self.transport.wait_ready(self.wait_receiver_s):
                log.warning("no receiver after %.1f s: streaming anyway", self.wait_receiver_s)
            for spec in self.specs:
                meta = await spec.source.open()
                st = _Stream(spec, meta)
                align = getattr(spec.source, "align_to_frames", None)
                if align is not None:  # let the source hand over whole frames (one hand-off per frame)
                    align(st.frame_samples)
                self._setup_controller(st)
                self.streams[spec.stream_id] = st
                if self.reliable is not None:
                    self.reliable.attach(st.id, lambda m, st=st: self._send_now(st, m, "data"), meta.channel_format)
                await self._send(st, st.header_msg, kind="header")
            self.started.set()
            drained = False
            try:
                async with asyncio.TaskGroup() as tg:
                    aux = [tg.create_task(self._pump(st), name=f"pump:{st.id}") for st in self.streams.values()]
                    aux += [
                        tg.create_task(self._headers(), name="headers"),
                        tg.create_task(self._feedback(), name="feedback"),
                        tg.create_task(self._control(), name="control"),
                    ]
                    # --- reliable archive path (optional): the feedback task stays up until the archive acks ---
                    keep = []
                    if self.reliable is not None:
                        keep = [t for t in aux if t.get_name() in ("feedback", "headers")]
                        aux = [t for t in aux if t not in keep]
                        keep.append(tg.create_task(self.reliable.run(), name="retransmit"))
                    await self._stopping.wait()
                    for t in aux:
                        t.cancel()
                    for st in self.streams.values():
                        st.queue.close()  # drain what is queued, in order, then return
                    await asyncio.gather(*(self._encode_send(st) for st in self.streams.values()))
                    if self.reliable is not None:
                        await self._flush_all()
                        drained = await self.reliable.drain()
                        for t in keep:
                            t.cancel()
            finally:
                await self._flush_all()
                if self.shaper is not None:
                    await self._drain_shaped()
                for st in self.streams.values():
                    await st.spec.source.close()
                if self.reliable is not None:
                    # a temporary spool is removed; a configured spool_dir keeps what was never acknowledged
                    self.reliable.close(keep=bool(self.reliable.spool_dir) and not drained)

    # -- tasks -------------------------------------------------------------------------------------
    async def _pump(self, st: _Stream) -> None:
        """Source -> framer -> bounded frame queue -> encode and send, in this one task.

        Why one task: handing each frame to a separate encoder task cost an extra event-loop pass
        (~20 us per 1 ms frame at 1024 channels) and bought nothing, since transports queue without
        suspending. The drop-oldest frame queue still bounds a backlog if a send ever suspends; what is
        left in it at shutdown is drained by :meth:`_encode_send`."""
        archived = self._archived(st)
        async for chunk in st.spec.source.chunks():
            st.stats.samples_in += chunk.data.shape[0]
            for f in st.framer.push(chunk.data, chunk.timestamps):
                if st.fs > 0:
                    st.end_ts = f.timestamp + f.data.shape[0] / st.fs
                if archived:  # archive copy first: immune to live-queue drops
                    await self.reliable.on_frame(st.id, f)
                if st.queue.put_nowait(f) is not None:
                    st.stats.frames_dropped_queue += 1
                    if st.stats.frames_dropped_queue in (1, 10, 100, 1000) or st.stats.frames_dropped_queue % 10000 == 0:
                        log.warning("stream %d: send queue full, dropped %d oldest frames so far", st.id, st.stats.frames_dropped_queue)
            while (queued := st.queue.get_nowait()) is not None:
                await self._encode_one(st, queued)
        # source ended (finite replay): finish the stream
        self._stopping.set()

    def _archived(self, st: _Stream) -> bool:
        """Whether the reliable archive path keeps a copy of this stream (every format, markers included)."""
        return self.reliable is not None and st.id in self.reliable.streams

    def _encode_or_drop(self, st: _Stream, f: RawFrame, sealer: Any = None) -> bytes | None:
        """Encode a frame; a frame the codec refuses (beyond its limits, a value it cannot code) or fails on
        (a bug: logged with its traceback) is dropped and counted, the codec restarts with a keyframe, and
        the stream goes on (the receiver sees a sequence gap and conceals it)."""
        try:
            return st.encode(f, sealer)
        except (SecurityError, TransportError):
            raise
        except Exception as exc:  # noqa: BLE001 - CodecError, or a codec bug: neither may stop acquisition
            st.stats.frames_dropped_codec += 1
            n = st.stats.frames_dropped_codec
            if n in (1, 10, 100, 1000) or n % 10000 == 0:
                log.error("stream %d: frame %d not encoded at level %d (%d dropped so far): %s", st.id, f.seq,
                          st.level, n, exc, exc_info=not isinstance(exc, CodecError))
            st.codecs[st.level].reset()
            return None

    async def _encode_one(self, st: _Stream, f: RawFrame) -> None:
        sealer = self._frame_sealer
        msg = self._encode_or_drop(st, f, sealer)
        if msg is None:
            return
        try:
            await self._send(st, msg, sealed=sealer is not None)
        except asyncio.CancelledError:  # stopped inside a suspending send: the shutdown drain resends it
            st.unsent = (msg, sealer is not None)
            raise
        st.stats.frames_sent += 1
        if st.probe_due:
            st.probe_due = False
            probe = st.probe_msg(sealer)
            if probe is not None:
                await self._send(st, probe, sealed=sealer is not None)
                st.stats.capacity_probes += 1

    async def _encode_send(self, st: _Stream) -> None:
        """Shutdown: send what the cancelled pump left behind, in order, until the closed queue is empty."""
        if st.unsent is not None:
            (msg, sealed), st.unsent = st.unsent, None
            await self._send(st, msg, sealed=sealed)
            st.stats.frames_sent += 1
        while (f := await st.queue.get()) is not None:
            await self._encode_one(st, f)

    async def _flush_all(self) -> None:
        if self._flushed:
            return
        self._flushed = True
        for st in self.streams.values():
            f = st.framer.flush()
            try:
                if f is not None:
                    if st.fs > 0:
                        st.end_ts = f.timestamp + f.data.shape[0] / st.fs
                    if self._archived(st):
                        await self.reliable.on_frame(st.id, f)
                    msg = self._encode_or_drop(st, f)
                    if msg is not None:
                        await self._send(st, msg)
                        st.stats.frames_sent += 1
                # its timestamp: where the stream ends, so a receiver that lost the last frames fills exactly them
                eos = wire.pack_frame(st.id, st.framer.seq, st.end_ts, 0, st.meta.channel_count, st.meta.channel_format,
                                      st.level, b"", wire.FLAG_END_OF_STREAM)
                await self._send(st, eos)
                if self._archived(st):
                    await self.reliable.on_end(st.id, st.framer.seq, st.meta.channel_count, st.meta.channel_format)
            except TransportError as exc:
                log.error("stream %d: flush failed: %s", st.id, exc)

    async def _send(self, st: _Stream, msg: bytes, kind: str = "data", *, sealed: bool = False) -> None:
        if self.shaper is not None and kind == "data":
            deliver_at = self.shaper.admit(len(msg), time.monotonic())
            if deliver_at is None:
                st.stats.frames_dropped_transport += 1
                return
            delay = deliver_at - time.monotonic()
            if delay > 0:
                self._shaped_pending += 1
                asyncio.get_running_loop().call_later(delay, self._release_shaped, st, msg, kind, sealed)
                return
        await self._send_now(st, msg, kind, sealed=sealed)

    def _release_shaped(self, st: _Stream, msg: bytes, kind: str, sealed: bool) -> None:
        """The shaped link delivers a held message now; its send task is owned until it completes."""
        self._shaped_pending -= 1
        task = asyncio.ensure_future(self._send_shaped(st, msg, kind, sealed))
        self._shaped_tasks.add(task)
        task.add_done_callback(self._shaped_tasks.discard)

    async def _send_shaped(self, st: _Stream, msg: bytes, kind: str, sealed: bool) -> None:
        try:
            await self._send_now(st, msg, kind, sealed=sealed)
        except TransportError as exc:
            st.stats.frames_dropped_transport += 1
            if st.stats.frames_dropped_transport in (1, 10, 100) or st.stats.frames_dropped_transport % 1000 == 0:
                log.warning("stream %d: shaped send failed (%d so far): %s", st.id, st.stats.frames_dropped_transport, exc)

    async def _drain_shaped(self, timeout_s: float = 10.0) -> None:
        """Shutdown with a shaped link: wait until what the link still holds has been delivered (the last
        frames and the end-of-stream marker), before the transport closes under them."""
        deadline = time.monotonic() + timeout_s
        while (self._shaped_pending or self._shaped_tasks) and time.monotonic() < deadline:
            if self._shaped_tasks:
                await asyncio.wait(set(self._shaped_tasks), timeout=max(0.0, deadline - time.monotonic()))
            else:
                await asyncio.sleep(0.005)
        if self._shaped_pending or self._shaped_tasks:
            log.warning("shutdown: %d shaped messages still held by the link after %.0f s: dropped",
                        self._shaped_pending + len(self._shaped_tasks), timeout_s)

    async def _send_now(self, st: _Stream, msg: bytes, kind: str, *, sealed: bool = False) -> None:
        if self.sealer is not None and not sealed:
            msg = self.sealer.seal(msg)
        ok = await self.transport.send(msg, stream_id=st.id, kind=kind)
        if not ok:
            st.stats.frames_dropped_transport += 1

    async def _headers(self) -> None:
        while True:
            await asyncio.sleep(self.header_interval_s)
            for st in self.streams.values():
                await self._send_now(st, st.header_msg, "header")

    async def _feedback(self) -> None:
        while True:
            msg = await self.transport.recv_feedback()
            try:
                if self.sealer is not None:
                    msg = self.sealer.open(msg)
                mtype = wire.message_type(msg)
                if mtype == wire.MSG_FEEDBACK:
                    fb = wire.parse_feedback(msg)
                    st = self.streams.get(fb.stream_id)
                    if st is not None:
                        st.stats.last_feedback = fb
                elif mtype == wire.MSG_ACK and self.reliable is not None:  # reliable archive path
                    self.reliable.on_feedback(msg)
                elif mtype == wire.MSG_CLOCK:
                    probe = wire.parse_clock(msg)
                    if probe.kind == 2 and probe.stream_id in self.streams:
                        st = self.streams[probe.stream_id]
                        await self._send_now(st, st.header_msg, "header")
                    elif probe.kind == 3 and probe.stream_id in self.streams:  # the receiver lost a reference
                        st = self.streams[probe.stream_id]
                        level = int(probe.t1) if 0 <= probe.t1 < len(st.codecs) else -1
                        if level >= 0:
                            st.codecs[level].request_keyframe()
                            st.stats.keyframe_requests += 1
                    elif probe.kind == 0 and probe.stream_id in self.streams:  # not another sender's stream
                        t1 = pylsl.local_clock()
                        reply = wire.ClockProbe(probe.stream_id, 1, probe.t0, t1, pylsl.local_clock())
                        out = wire.pack_clock(reply)
                        if self.sealer is not None:
                            out = self.sealer.seal(out)
                        await self.transport.send(out, stream_id=probe.stream_id, kind="clock")
                else:
                    raise WireFormatError("msg_type", 5, f"unexpected message type {mtype} on the feedback channel")
            except (WireFormatError, SecurityError) as exc:
                self.bad_feedback += 1
                if self.bad_feedback in (1, 10, 100) or self.bad_feedback % 1000 == 0:
                    log.warning("feedback channel: rejected message (%d so far): %s", self.bad_feedback, exc)

    def _setup_controller(self, st: _Stream) -> None:
        cfg = st.spec.controller
        if cfg.get("id") == "fixed" and "level" in cfg and len(cfg) == 2:
            st.set_level(int(cfg["level"]))
            st.controller = None
            return
        from neurolink.control import get_controller  # the controller family lives in neurolink.control
        from neurolink.sender_control import LiveControl

        # the framer's itemsize: the stream's for numeric formats, a pointer (8) for string streams, whose real
        # size is their text (markers: a few bytes each)
        raw_frame_bytes = st.frame_samples * st.meta.channel_count * st.framer.dtype.itemsize
        st.controller = LiveControl(get_controller(cfg), len(st.codecs), st.frame_s, raw_frame_bytes)
        st.set_level(0)

    async def _control(self) -> None:
        while True:
            await asyncio.sleep(self.control_interval_s)
            for st in self.streams.values():
                st.stats.backlog_ms = 1000.0 * (len(st.queue) * st.frame_s + st.spec.source.backlog_samples / max(st.meta.nominal_srate, 1e-9))
                if st.controller is None:
                    continue
                st.probe_due = True  # one pair per interval feeds the receiver's capacity estimate
                st.set_level(st.controller.decide(st.stats.last_feedback, st.stats.backlog_ms, st.level))

    # -- reporting ---------------------------------------------------------------------------------
    def summary(self) -> dict[int, dict[str, Any]]:
        out = {}
        for sid, st in self.streams.items():
            s = st.stats
            out[sid] = {
                "name": st.meta.name, "frames_sent": s.frames_sent, "samples_in": s.samples_in,
                "ratio": s.ratio, "codec_ratio": s.codec_ratio, "level": s.level, "decisions": getattr(st.controller, "decisions", 0),
                "level_switches": s.level_switches, "levels_used": sorted(s.levels_used), "backlog_ms": s.backlog_ms,
                "capacity_probes": s.capacity_probes, "frames_by_level": list(s.frames_by_level),
                "keyframe_requests": s.keyframe_requests,
                "dropped_queue": s.frames_dropped_queue,
                "dropped_source_chunks": getattr(st.spec.source, "dropped_chunks", 0), "dropped_transport": s.frames_dropped_transport,
                "dropped_codec": s.frames_dropped_codec,
                "encode_us_p50": s.encode_us.pct(50), "encode_us_p99": s.encode_us.pct(99),
            }
            if self.reliable is not None:  # spool state and overflow counter in the status file / metrics
                out[sid].update({f"archive_{k}": v for k, v in self.reliable.summary().get(sid, {}).items()})
        return out


__all__ = ["Sender", "StreamSpec", "StreamStats"]
