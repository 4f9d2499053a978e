"""LSL inlet source: resolve by name/type/source_id, bounded buffer, flush on start, recover on loss.

A reader thread blocks in liblsl so the event loop never polls; chunks are handed to the loop through a
bounded drop-oldest queue whose overflow is counted, never silent.

Per chunk the reader makes one liblsl call into preallocated buffers (:class:`ChunkPuller`) and one
copy. When the consumer cuts frames (:meth:`LSLSource.align_to_frames`), each pull waits for the rest
of the current frame instead of returning after the first sample: liblsl hands a pushed chunk over
sample by sample, so ``min_samples=1`` often split a 1 ms chunk into 1 + 29 samples and the frame
waited for a second thread hand-off.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from collections.abc import AsyncIterator

import numpy as np

from neurolink.errors import ConfigError, SourceLostError
from neurolink.lsl import FORMAT_NAMES, desc_xml, pylsl
from neurolink.queues import DropOldestQueue
from neurolink.sources.base import Chunk, Source, StreamMeta

log = logging.getLogger(__name__)


def build_predicate(name: str | None, type_: str | None, source_id: str | None) -> str:
    parts = []
    for key, val in (("name", name), ("type", type_), ("source_id", source_id)):
        if val is not None:
            if "'" in val:
                raise ConfigError(f"source.{key}", f"must not contain a quote: {val!r}")
            parts.append(f"{key}='{val}'")
    if not parts:
        raise ConfigError("source", "give at least one of name, type, source_id to resolve an LSL stream")
    return " and ".join(parts)


def resolve_stream(predicate: str, timeout: float) -> pylsl.StreamInfo:
    """Blocking resolve; raises SourceLostError naming the predicate when nothing matches in time."""
    found = pylsl.resolve_bypred(predicate, 1, timeout)
    if not found:
        raise SourceLostError(predicate, f"no LSL stream matched within {timeout:g} s")
    return found[0]


class ChunkPuller:
    """Pull numeric samples from a pylsl inlet into preallocated buffers, one liblsl call per pull.

    Why: ``StreamInlet.pull_chunk(min_samples=1)`` allocates a ``max_samples x channels`` array on every
    call (twice, then concatenates): ~8 MB of address space per 1 ms chunk at 1024 channels.
    The returned arrays are views into the reused buffers: copy what you keep.
    """

    def __init__(self, inlet: pylsl.StreamInlet, max_samples: int) -> None:
        dtype = getattr(inlet, "np_dtype", None)
        if dtype is None:
            raise SourceLostError("LSL inlet", "a string stream needs StringPuller, not ChunkPuller")
        self.n_ch = int(inlet.channel_count)
        self.max_samples = int(max_samples)
        self.data = np.empty((self.max_samples, self.n_ch), dtype=dtype)
        self.ts = np.empty(self.max_samples, dtype=np.float64)
        self._fn = inlet.do_pull_chunk
        self._obj = inlet.obj
        self._row = self.data.strides[0]
        self._d0 = self.data.ctypes.data
        self._t0 = self.ts.ctypes.data
        self._err = ctypes.c_int()
        self._inlet = inlet  # keeps the liblsl handle alive as long as this puller

    def _call(self, off: int, k: int, timeout: float) -> int:
        got = self._fn(self._obj, ctypes.c_void_p(self._d0 + off * self._row), ctypes.c_void_p(self._t0 + 8 * off),
                       ctypes.c_size_t(k * self.n_ch), ctypes.c_size_t(k), ctypes.c_double(timeout),
                       ctypes.byref(self._err))
        if self._err.value:
            pylsl.util.handle_error(self._err)  # LostError, TimeoutError, ...
        return int(got) // self.n_ch

    def pull(self, timeout: float, need: int = 1) -> int:
        """Wait up to ``timeout`` s for ``need`` samples, then add what else is queued; returns the count
        (fewer than ``need`` on timeout). Samples are ``data[:n]``, timestamps ``ts[:n]``."""
        need = min(max(1, need), self.max_samples)
        n = self._call(0, need, timeout)
        if n == need and n < self.max_samples:
            n += self._call(n, self.max_samples - n, 0.0)
        return n


class StringPuller:
    """Pull samples of a string stream (markers) into a reused ``char*``/length table, one liblsl call per pull.

    Why not ``pull_chunk``: pylsl keeps one buffer set per distinct ``max_samples`` it is called with, and the
    frame-aligned waits of :class:`ChunkPuller` ask for a different count almost every time, so its cache
    would grow with the stream. Same calls and semantics as :class:`ChunkPuller`; values are copied out by
    their lengths (a NUL inside a marker survives), the strings liblsl allocated are freed after each pull,
    and ``data[:n]`` is a fresh object array of ``str`` (safe to keep).

    LSL strings are bytes; neurolink carries text. A value that is not valid UTF-8 is decoded with U+FFFD
    replacements, counted in ``invalid_utf8`` and logged (first, 10th, 100th, ... time).
    """

    def __init__(self, inlet: pylsl.StreamInlet, max_samples: int) -> None:
        if getattr(inlet, "np_dtype", None) is not None:
            raise SourceLostError("LSL inlet", "StringPuller needs a string stream; numeric streams use ChunkPuller")
        self.n_ch = int(inlet.channel_count)
        self.max_samples = int(max_samples)
        n_values = self.max_samples * self.n_ch
        self._ptrs = (ctypes.c_char_p * n_values)()
        self._lens = (ctypes.c_uint32 * n_values)()
        self._ptr_view = np.frombuffer(memoryview(self._ptrs).cast("B"), dtype=np.uintp)  # the same memory, as integers
        self._len_view = np.frombuffer(memoryview(self._lens).cast("B"), dtype=np.uint32)
        self.ts = np.empty(self.max_samples, dtype=np.float64)
        self.data = np.empty((0, self.n_ch), dtype=object)
        self._fn = inlet.do_pull_chunk
        self._obj = inlet.obj
        self._p0 = ctypes.addressof(self._ptrs)
        self._l0 = ctypes.addressof(self._lens)
        self._t0 = self.ts.ctypes.data
        self._err = ctypes.c_int()
        self.invalid_utf8 = 0
        self._inlet = inlet

    def _call(self, off: int, k: int, timeout: float) -> int:
        v = off * self.n_ch
        got = self._fn(self._obj, ctypes.c_void_p(self._p0 + v * ctypes.sizeof(ctypes.c_char_p)),
                       ctypes.c_void_p(self._l0 + 4 * v), ctypes.c_void_p(self._t0 + 8 * off),
                       ctypes.c_size_t(k * self.n_ch), ctypes.c_size_t(k), ctypes.c_double(timeout),
                       ctypes.byref(self._err))
        if self._err.value:
            self._free()
            pylsl.util.handle_error(self._err)  # LostError, TimeoutError, ...
        return int(got) // self.n_ch

    def pull(self, timeout: float, need: int = 1) -> int:
        """As :meth:`ChunkPuller.pull`; the values are ``data`` (an (n, channels) object array of str)."""
        need = min(max(1, need), self.max_samples)
        try:
            n = self._call(0, need, timeout)
            if n == need and n < self.max_samples:
                n += self._call(n, self.max_samples - n, 0.0)
            self.data = self._take(n)
        finally:
            self._free()
        return n

    def _take(self, n: int) -> np.ndarray:
        k = n * self.n_ch
        out = np.empty(k, dtype=object)
        for i, (ptr, ln) in enumerate(zip(self._ptr_view[:k].tolist(), self._len_view[:k].tolist(), strict=True)):
            raw = ctypes.string_at(ptr, ln) if ln else b""
            try:
                out[i] = raw.decode("utf-8")
            except UnicodeDecodeError:
                out[i] = raw.decode("utf-8", "replace")
                self.invalid_utf8 += 1
                if self.invalid_utf8 in (1, 10, 100) or self.invalid_utf8 % 1000 == 0:
                    log.warning("LSL string stream: value is not valid UTF-8, sent with U+FFFD replacements "
                                "(%d so far)", self.invalid_utf8)
        return out.reshape(n, self.n_ch)

    def _free(self) -> None:
        """Release every string liblsl allocated into the table (older liblsl fills every slot it was
        given, newer ones only the pulled values) and clear the slots, so none is freed twice."""
        used = np.flatnonzero(self._ptr_view)
        if used.size:
            top = int(used[-1]) + 1
            pylsl.inlet.free_char_p_array_memory(self._ptrs, top)
            ctypes.memset(self._ptrs, 0, top * ctypes.sizeof(ctypes.c_char_p))


class LSLSource(Source):
    def __init__(
        self,
        name: str | None = None,
        type: str | None = None,  # noqa: A002 - mirrors LSL's field name
        source_id: str | None = None,
        resolve_timeout: float = 5.0,
        max_buffer_s: float = 2.0,
        queue_chunks: int = 8192,
        max_chunk: int = 4096,
        reconnect: bool = True,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.predicate = build_predicate(name, type, source_id)
        self.resolve_timeout = resolve_timeout
        self.max_buffer_s = max_buffer_s
        self.max_chunk = max_chunk
        self.reconnect = reconnect
        self.backoff_max_s = backoff_max_s
        self._queue_chunks = queue_chunks
        self._queue: DropOldestQueue[Chunk] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._inlet: pylsl.StreamInlet | None = None
        self.samples_in = 0
        self.lost_events = 0
        self.connected = False
        self.meta: StreamMeta
        self._align = 1  # consumer's frame length in samples (see align_to_frames)
        self._evicted = 0  # samples of chunks the queue dropped (keeps the frame phase right)

    def align_to_frames(self, frame_samples: int) -> None:
        """The consumer cuts frames of ``frame_samples``: return chunks ending on frame boundaries when
        the source allows it, so a frame never waits for a second hand-off."""
        self._align = max(1, int(frame_samples))

    # -- lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> StreamMeta:
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, resolve_stream, self.predicate, self.resolve_timeout)
        inlet = await loop.run_in_executor(None, self._make_inlet, info)
        self._inlet = inlet
        full = inlet.info()
        self.meta = StreamMeta(
            name=full.name(),
            type=full.type(),
            source_id=full.source_id(),
            nominal_srate=full.nominal_srate(),
            channel_count=full.channel_count(),
            channel_format=FORMAT_NAMES[full.channel_format()],
            desc_xml=desc_xml(full),
            hostname=full.hostname(),
        )
        if self.reconnect and not self.meta.source_id:
            log.warning("stream %r has no source_id: recovery after loss will match by name/type", self.meta.name)
        self.connected = True
        return self.meta

    def _make_inlet(self, info: pylsl.StreamInfo) -> pylsl.StreamInlet:
        srate = info.nominal_srate()
        # max_buflen is in seconds for regular streams and in hundreds of samples for irregular ones
        buflen = max(1, int(np.ceil(self.max_buffer_s))) if srate > 0 else 10
        inlet = pylsl.StreamInlet(info, max_buflen=buflen, recover=False, processing_flags=pylsl.proc_clocksync)
        inlet.time_correction(timeout=self.resolve_timeout)  # else the first pull blocks ~0.65 s on clock sync
        inlet.open_stream(timeout=self.resolve_timeout)
        inlet.flush()  # no stale data: start from now
        return inlet

    async def chunks(self) -> AsyncIterator[Chunk]:
        if self._inlet is None:
            await self.open()
        loop = asyncio.get_running_loop()
        self._queue = DropOldestQueue(self._queue_chunks)
        self._evicted = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, args=(loop,), name=f"lsl-in:{self.meta.name}", daemon=True)
        self._thread.start()
        try:
            while (chunk := await self._queue.get()) is not None:  # None: the queue was closed
                yield chunk
        finally:
            self._stop.set()

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 2.0)
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # pragma: no cover - liblsl teardown
                pass
            self._inlet = None

    @property
    def dropped_chunks(self) -> int:
        return self._queue.dropped if self._queue else 0

    @property
    def backlog_samples(self) -> int:
        if self._queue is None:
            return 0
        return sum(c.data.shape[0] for c in self._queue.peek_all())

    # -- reader thread -----------------------------------------------------------------------------
    def _put(self, chunk: Chunk) -> None:
        """Runs on the event loop: enqueue, and remember evicted samples so the reader's frame phase holds."""
        assert self._queue is not None
        evicted = self._queue.put_nowait(chunk)
        if evicted is not None:
            self._evicted += evicted.data.shape[0]

    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        puller: ChunkPuller | StringPuller | None = None
        puller_cls = StringPuller if self.meta.channel_format == "string" else ChunkPuller
        delivered = 0
        while not self._stop.is_set():
            inlet = self._inlet
            if inlet is None:
                puller = None
                if not self._recover():
                    return
                continue
            try:
                if puller is None:
                    puller = puller_cls(inlet, self.max_chunk)
                align = self._align
                need = align - (delivered - self._evicted) % align  # samples to the end of the current frame
                n = puller.pull(0.2, need)
            except pylsl.util.LostError:
                self.lost_events += 1
                self.connected = False
                log.warning("LSL source %r lost; recovering by %s", self.meta.name, self._recover_predicate())
                self._inlet = None
                continue
            except Exception as exc:  # liblsl raised something unexpected: log once per event, recover
                self.lost_events += 1
                log.error("LSL source %r failed: %s", self.meta.name, exc)
                self._inlet = None
                continue
            if n == 0:
                continue
            # numeric: a view of the reused buffer, copied; strings: a fresh array already
            data = puller.data[:n] if puller_cls is StringPuller else puller.data[:n].copy()
            chunk = Chunk(data, puller.ts[:n].copy())
            self.samples_in += n
            delivered += n
            loop.call_soon_threadsafe(self._put, chunk)

    def _recover_predicate(self) -> str:
        if self.meta.source_id:
            return f"source_id='{self.meta.source_id}'"
        return self.predicate

    def _recover(self) -> bool:
        """Re-resolve with exponential backoff until found or stopped; logs once per outage."""
        if not self.reconnect:
            return False
        delay = 0.1
        pred = self._recover_predicate()
        while not self._stop.is_set():
            try:
                info = resolve_stream(pred, min(1.0, self.resolve_timeout))
                inlet = self._make_inlet(info)
            except (SourceLostError, Exception):
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            self._inlet = inlet
            self.connected = True
            log.info("LSL source %r recovered", self.meta.name)
            return True
        return False


def wait_until(predicate, timeout: float, step: float = 0.01) -> bool:
    """Small polling helper for tests and the demo."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
