"""LSL inlet source: resolve by name/type/source_id, bounded buffer, flush on start, recover on loss.

A reader thread blocks in liblsl (``pull_chunk(min_samples=1)``) so the event loop never polls; chunks
are handed to the loop through a bounded drop-oldest queue whose overflow is counted, never silent.
"""

from __future__ import annotations

import asyncio
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

    # -- lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> StreamMeta:
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, resolve_stream, self.predicate, self.resolve_timeout)
        self._inlet = await loop.run_in_executor(None, self._make_inlet, info)
        full = self._inlet.info()
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
        if self.meta.channel_format == "string":
            raise SourceLostError(self.meta.name, "string streams are not supported by the frame codecs yet")
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
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, args=(loop,), name=f"lsl-in:{self.meta.name}", daemon=True)
        self._thread.start()
        try:
            while True:
                yield await self._queue.get()
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
    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._queue is not None
        q = self._queue
        while not self._stop.is_set():
            inlet = self._inlet
            if inlet is None:
                if not self._recover():
                    return
                continue
            try:
                data, ts = inlet.pull_chunk(timeout=0.2, max_samples=self.max_chunk, min_samples=1, as_numpy=True)
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
            if data is None or len(ts) == 0:
                continue
            chunk = Chunk(np.array(data, copy=True), np.asarray(ts, dtype=np.float64).copy())
            self.samples_in += len(ts)
            loop.call_soon_threadsafe(q.put_nowait, chunk)

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
