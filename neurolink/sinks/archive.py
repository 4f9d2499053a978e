"""Lossless archive sink: a Zarr v3 group (local folder or fsspec URL) chunked in time, nl-lossless compressed.

Layout (format documented in docs/archive.md)::

    <store>/samples      (n_samples, n_channels) stream dtype, chunks (chunk_samples, n_channels),
                         serializer ``numcodecs.neurolink.lossless`` (nl-lossless archive mode); string
                         (marker) streams: zarr's variable-length UTF-8 ``string`` data type (vlen-utf8 + zstd)
    <store>/timestamps   (n_samples,) float64, one per sample, in the clock named by attrs["timestamps_clock"]
    <store> attrs["neurolink_archive"]: stream header, chunk size, per-chunk CRC32s, gaps, clock offsets,
                         codec history, and the durable point (next_seq, n_samples) used to resume.

Why whole chunks: a numeric chunk is written once, when full (or at close), so its CRC32 is computed from the
exact bytes written and a receiver killed mid-chunk loses only what it has not acknowledged; on restart the
archive is reopened at its durable point and the sender retransmits the rest from its spool. String streams
are sparse (a marker every few seconds would take an hour to fill a chunk), so their partial chunk is also
rewritten (each object write is atomic in zarr's local store: temp file + rename) at most ``flush_s`` after a
marker arrives.

Failed writes (disk full, I/O errors) never move the durable point: the new metadata is built aside and only
becomes the sink's (what acks report) once it is saved. A frame whose chunk cannot be written is rolled back (the
sink is as before the call, so the reliable path's resend of that frame is accepted); a string stream's timer
flush retries with a backoff. Failures are counted (``write_errors``) and logged once per episode.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import warnings
import zlib
from dataclasses import asdict
from typing import Any

import numpy as np

from neurolink.errors import ConfigError, NeurolinkError
from neurolink.sinks.base import Sink
from neurolink.wire.format import StreamHeader

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ATTR = "neurolink_archive"
ARCHIVE_CODEC = {"id": "nl-lossless", "mode": "archive"}
#: the reliable path's block codec per sample format (every block decodes on its own, exactly)
_BLOCK_CODECS: dict[str, dict] = {
    "int16": ARCHIVE_CODEC,
    "int32": ARCHIVE_CODEC,
    "float32": {"id": "nl-float", "inner": ARCHIVE_CODEC},  # counts x scale: the counts in archive mode
    "float64": {"id": "nl-float", "inner": ARCHIVE_CODEC},
    "int8": {"id": "delta-zstd", "level": 19},
    "int64": {"id": "delta-zstd", "level": 19},
    "string": {"id": "nl-text"},  # markers: exact UTF-8 text, one frame (= one marker when irregular) per entry
}
#: how string chunks are stored: zarr v3's ``string`` data type (vlen-utf8), zstd-compressed
TEXT_ZSTD_LEVEL = 3
#: the name of the text CRC definition recorded in string archives (see :func:`text_crc32`)
TEXT_CHECKSUM = "crc32-u32len-utf8"
_U32 = struct.Struct("<I")
#: after a failed write, a string stream's flush is retried after max(flush_s, RETRY_MIN_S) doubling up to RETRY_MAX_S
RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0
#: failed writes log one ERROR line at most this often (and the recovery once after it), even if they flap
ERROR_LOG_EVERY_S = 30.0


def archive_codec_for(dtype: str) -> dict:
    """The codec config of the reliable path's archive blocks for streams of ``dtype``."""
    try:
        return _BLOCK_CODECS[dtype]
    except KeyError:
        raise NeurolinkError(f"no archive codec for sample format {dtype!r} "
                             f"(known: {', '.join(_BLOCK_CODECS)})") from None


def _zarr():
    import zarr

    return zarr


def is_text_array(a: np.ndarray) -> bool:
    """Object arrays of str (the live path's string frames) and numpy StringDType arrays (what zarr returns)."""
    return a.dtype.kind in ("O", "T", "U")


def text_crc32(a: np.ndarray) -> int:
    """CRC32 of a string chunk: its values in C order (sample by sample, channel by channel), each as its
    UTF-8 byte length (uint32 little-endian) followed by its UTF-8 bytes. The length prefix makes the
    definition unambiguous (``["ab", ""]`` and ``["a", "b"]`` differ) and independent of how a zarr version
    lays the chunk out on disk."""
    parts = []
    for i, v in enumerate(np.asarray(a).ravel().tolist()):
        if not isinstance(v, str):
            raise NeurolinkError(f"string archive: value {i} is {type(v).__name__}, expected str")
        try:
            b = v.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 form, zarr could not store it either
            raise NeurolinkError(f"string archive: value {i} is not encodable as UTF-8: {exc.reason}") from None
        parts.append(_U32.pack(len(b)))
        parts.append(b)
    return zlib.crc32(b"".join(parts))


def crc32(a: np.ndarray) -> int:
    """CRC32 of an array's little-endian C-order bytes (what verify recomputes from the store); string
    arrays: :func:`text_crc32`."""
    if is_text_array(a):
        return text_crc32(a)
    return zlib.crc32(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


class ArchiveSink(Sink):
    """Appends samples to a Zarr v3 archive; resumes an existing archive of the same stream.

    Two ways in: :meth:`push` (the plain :class:`Sink` contract: concealed samples are written and recorded
    as gaps) and :meth:`write_frame` (the reliable path: frames in sequence order, sender-clock timestamps).
    String (marker) streams are archived too: values are object arrays of ``str`` in and out, stored exactly.
    ``flush_s`` (string streams only): the longest a marker waits in memory before its (partial) chunk is
    written, while an asyncio loop runs; without one, at the next marker at least ``flush_s`` later or at close.
    """

    def __init__(self, path: str, *, chunk_s: float = 1.0, chunk_samples: int | None = None,
                 storage_options: dict[str, Any] | None = None, flush_s: float = 1.0) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError("archive.path", f"expected a folder or fsspec URL, got {path!r}")
        if chunk_samples is not None and chunk_samples < 1:
            raise ConfigError("archive.chunk_samples", f"must be >= 1, got {chunk_samples}")
        if chunk_s <= 0:
            raise ConfigError("archive.chunk_s", f"must be > 0, got {chunk_s}")
        if not flush_s >= 0:
            raise ConfigError("archive.flush_s", f"must be >= 0, got {flush_s}")
        self.path = path
        self.chunk_s = chunk_s
        self.chunk_samples_cfg = chunk_samples
        self.storage_options = storage_options
        self.flush_s = flush_s
        self.meta: dict[str, Any] = {}
        self.header: StreamHeader | None = None
        self.resumed = False
        self.text = False  # a string (marker) stream
        self.closed = False
        self._frames: list[tuple[int, int]] = []  # (next_seq after the frame, sample index after it)
        self._written = 0  # samples of the current chunk already in the store (string streams' partial flushes)
        self._last_write = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self.write_errors = 0  # failed store writes (chunk or metadata), each attempt counted
        self._failing_since: float | None = None  # start of the current run of failed writes
        self._fail_streak = 0
        self._last_error_log = -float("inf")
        self._run_logged = False  # an ERROR was logged for the current run (then its end is logged too)
        self._retry_at = 0.0  # string streams: no flush before this (backoff after a failed write)

    # -- Sink contract -----------------------------------------------------------------------------
    def open(self, header: StreamHeader) -> None:
        zarr = _zarr()
        from neurolink.codecs.numcodecs_adapter import NeurolinkLosslessZarr

        self.header = header
        self.text = header.channel_format == "string"
        self.closed = False  # a sink factory may hand the same sink a new header after closing it
        fs = header.nominal_srate
        cs = self.chunk_samples_cfg or max(1, int(round((fs if fs > 0 else 1000.0) * self.chunk_s)))
        hdr = header.to_json_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr warns that numcodecs codecs are not in the v3 spec
            self.group = zarr.open_group(self.path, mode="a", storage_options=self.storage_options)
            old = self.group.attrs.get(ATTR)
            if old is not None and _same_stream(old["header"], hdr):
                self._resume(old)
                return
            if old is not None:
                raise NeurolinkError(f"archive {self.path} holds stream {old['header'].get('name')!r} "
                                     f"({old['header'].get('source_id')!r}): refusing to mix in {header.name!r}")
            overwrite = self._leftover_arrays()
            c = header.channel_count
            if self.text:  # zarr's variable-length UTF-8 "string" data type (vlen-utf8; no pickle, no object codec)
                dtype: Any = str
                codecs: dict = {"compressors": [zarr.codecs.ZstdCodec(level=TEXT_ZSTD_LEVEL)]}
                archive_codec: dict = {"id": "vlen-utf8", "compressor": {"id": "zstd", "level": TEXT_ZSTD_LEVEL}}
            elif header.channel_format in ("int16", "int32"):  # nl-lossless archive mode, through numcodecs
                dtype = header.channel_format
                codecs = {"serializer": NeurolinkLosslessZarr(), "compressors": None}
                archive_codec = {"id": "neurolink.lossless"}
            else:  # float/int8/int64 chunks: zarr's own blosc (zstd, byte shuffle), readable by any zarr
                dtype = header.channel_format
                blosc = zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle=zarr.codecs.BloscShuffle.shuffle)
                codecs = {"compressors": [blosc]}
                archive_codec = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": "shuffle"}
            self.samples = self.group.create_array("samples", shape=(0, c), chunks=(cs, c), dtype=dtype,
                                                   overwrite=overwrite, **codecs)
            self.timestamps = self.group.create_array("timestamps", shape=(0,), chunks=(cs,), dtype="float64",
                                                      overwrite=overwrite)
        self.meta = {
            "format_version": FORMAT_VERSION,
            "header": hdr,
            "stream_id": header.stream_id,
            "nominal_srate": fs,
            "chunk_samples": cs,
            "timestamps_clock": "sender",  # receiver_time = timestamp - clock_offset_s
            "next_seq": None,  # reliable path: first frame not yet durably archived
            "n_samples": 0,  # durable sample count (frames complete)
            "checksums": {"samples": [], "timestamps": []},
            "gaps": [],
            "clock_offsets": [],  # [sample_index, offset_s]: sender clock minus receiver clock from there on
            "codec_history": [{"sample_index": 0, "archive_codec": archive_codec,
                               "wire_codec": archive_codec_for(header.channel_format), "ladder": hdr.get("ladder", [])}],
            "sessions": [hdr.get("session", "")],
        }
        if self.text:
            self.meta["samples_checksum"] = TEXT_CHECKSUM
        self._init_buffers(0)
        self._save(dict(self.meta))
        self._last_write = time.monotonic()

    def push(self, data: np.ndarray, timestamps: np.ndarray, *, concealed: bool = False) -> None:
        """Plain-sink path: receiver-clock timestamps; concealed runs are written and listed as gaps. A push
        whose chunk cannot be written (disk full) is not archived (the plain path has no resend): it raises and
        is listed as a gap."""
        if self.meta["n_samples"] == 0 and self._fill == 0 and self._chunk_start == 0:
            self.meta["timestamps_clock"] = "receiver"
        at, n = self._total, int(data.shape[0])
        checked = self._checked(data, timestamps)
        try:
            self._append(checked, timestamps, None)
        except Exception as exc:
            self._add_gap_record({"sample_index": at, "n_samples": 0, "concealed": False,
                                  "reason": f"archive write failed ({exc}): {n} samples not archived"})
            raise
        if concealed:
            self._add_gap_record({"sample_index": at, "n_samples": n, "concealed": True,
                                  "reason": "concealed by the receiver (frames lost on the live path)"})
        self._flush_text_soon()

    def close(self) -> None:
        """Write what is buffered and the metadata. Raises if that fails (disk full): the archive keeps its last
        durable point (the reliable path's sender still holds the rest; the plain path loses it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not hasattr(self, "_buf"):
            return
        self.closed = True
        try:
            if self._fill > self._written:
                self._write_chunk(self._fill)
                self._frames.clear()
            self._save(dict(self.meta))
        except Exception:
            log.error("archive %s: closed with %d buffered samples not written; durable point: frame %s, "
                      "%d samples", self.path, self._total - int(self.meta["n_samples"]), self.next_seq,
                      int(self.meta["n_samples"]))
            raise

    # -- reliable path -----------------------------------------------------------------------------
    @property
    def next_seq(self) -> int | None:
        """First sequence number not yet durably archived (None: nothing archived yet)."""
        return self.meta.get("next_seq")

    @property
    def buffered_next_seq(self) -> int | None:
        return self._frames[-1][0] if self._frames else self.next_seq

    def write_frame(self, seq: int, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append frame ``seq`` (must follow the last one, or :meth:`add_gap` first). If a chunk it completes
        cannot be written, it raises with the sink as before the call (send frame ``seq`` again later). A frame
        the sink already holds (``seq`` < :attr:`buffered_next_seq`: buffered or durable) is accepted again as a
        no-op, so a caller that retries after an error cannot wedge it."""
        expect = self.buffered_next_seq
        if expect is not None and seq < expect:
            self._flush_text_soon()  # a string stream whose flush is failing: a retry (if its backoff allows)
            return
        if expect is not None and seq != expect:
            raise NeurolinkError(f"archive {self.path}: frame {seq} out of order (expected {expect})")
        self._append(self._checked(data, timestamps), timestamps, seq + 1)
        self._flush_text_soon()

    def add_gap(self, first_seq: int, end_seq: int, reason: str) -> None:
        """Record frames [first_seq, end_seq) as lost for good (no samples are invented for them)."""
        log.error("archive %s: frames %d..%d lost for good: %s", self.path, first_seq, end_seq - 1, reason)
        self._add_gap_record({"first_seq": int(first_seq), "end_seq": int(end_seq), "sample_index": self._total,
                              "n_samples": 0, "concealed": False, "reason": reason})
        self._frames.append((end_seq, self._total))
        if self._fill == self._written:
            self.meta["next_seq"] = int(end_seq)

    def add_eos(self, seq: int) -> None:
        """Sender's end of stream (frame ``seq``): write the partial chunk so everything is durable. Raises if
        that fails, with the durable point unmoved (call again when the end of stream comes back)."""
        frames = self._frames
        self._frames = frames + [(seq + 1, self._total)]
        try:
            if self._fill > self._written:
                self._write_chunk(self._fill)
            self._save({**self.meta, "next_seq": int(seq + 1), "n_samples": self._total})
        except BaseException:
            self._frames = frames
            raise
        self._frames = []

    def set_clock_offset(self, offset_s: float) -> None:
        hist = self.meta["clock_offsets"]
        if not hist or abs(hist[-1][1] - offset_s) > 1e-4:
            hist.append([self._total, float(offset_s)])

    def record_codec(self, level: int, codec: dict[str, Any]) -> None:
        hist = self.meta["codec_history"]
        if hist[-1].get("wire_codec") != codec:
            hist.append({"sample_index": self._total, "level": level, "wire_codec": codec})

    # -- internals ---------------------------------------------------------------------------------
    @property
    def _total(self) -> int:
        return self._chunk_start + self._fill

    def _checked(self, data: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Shape (and for strings: str values with a UTF-8 form) checked before anything is buffered, so a bad
        frame raises here, naming the problem, and never half-fills a chunk that then cannot be written."""
        c = self.meta["header"]["channel_count"]
        if data.ndim != 2 or data.shape[1] != c or np.shape(ts) != (data.shape[0],):
            raise NeurolinkError(f"archive {self.path}: expected ({c} channels) samples with one timestamp each, "
                                 f"got samples {data.shape}, timestamps {np.shape(ts)}")
        if self.text:
            text_crc32(data)  # raises NeurolinkError on a non-str value or a lone surrogate
        return data

    def _init_buffers(self, chunk_start: int) -> None:
        cs = self.meta["chunk_samples"]
        h = self.meta["header"]
        self._buf = np.empty((cs, h["channel_count"]), dtype=object if self.text else h["channel_format"])
        self._tbuf = np.empty(cs, dtype=np.float64)
        self._fill = 0
        self._written = 0
        self._chunk_start = chunk_start
        self._frames = []

    def _resume(self, old: dict[str, Any]) -> None:
        self.meta = old
        self.resumed = True
        self.samples = self.group["samples"]
        self.timestamps = self.group["timestamps"]
        cs = old["chunk_samples"]
        n = int(old["n_samples"])
        start = (n // cs) * cs
        tail = np.asarray(self.samples[start:n])
        ttail = np.asarray(self.timestamps[start:n])
        # cut to the durable point, not to the chunk start: the durable tail stays in the store (a resize that
        # deletes its chunk would lose it to a second kill before the chunk is rewritten); anything a kill left
        # beyond the durable point (written, never recorded) goes
        if self.samples.shape[0] != n:
            self.samples.resize((n, self.samples.shape[1]))
        if self.timestamps.shape[0] != n:
            self.timestamps.resize((n,))
        k = start // cs
        for key in ("samples", "timestamps"):
            del old["checksums"][key][k:]
        session = (self.header.session if self.header else "") or ""
        if session and session != old["sessions"][-1]:  # the sender restarted: its sequence numbers restart too
            old["sessions"].append(session)
            old["next_seq"] = None
            old["gaps"].append({"sample_index": n, "n_samples": 0, "concealed": False,
                                "reason": f"new sender session {session}: frames the old session did not deliver are lost"})
        self._init_buffers(start)
        self._buf[: n - start] = tail
        self._tbuf[: n - start] = ttail
        self._fill = n - start
        log.info("archive %s: resumed at %d samples, next frame %s", self.path, n, old.get("next_seq"))

    def _append(self, data: np.ndarray, ts: np.ndarray, next_seq: int | None) -> None:
        """Buffer a frame, writing each chunk it completes. All or nothing: if a chunk write fails, the buffer
        is put back as it was before the call (the frame is not buffered) and the error raised."""
        n = data.shape[0]
        cs = self._buf.shape[0]
        before = (self._chunk_start, self._fill, self._written, self._frames)
        self._frames = list(self._frames)
        # a frame completing two chunks or more overwrites the buffer after the first write: keep its old part
        kept = (self._buf[:self._fill].copy(), self._tbuf[:self._fill].copy()) if self._fill + n >= 2 * cs else None
        try:
            i = 0
            while i < n:
                take = min(cs - self._fill, n - i)
                self._buf[self._fill:self._fill + take] = data[i:i + take]
                self._tbuf[self._fill:self._fill + take] = ts[i:i + take]
                self._fill += take
                i += take
                if self._fill == cs:
                    if i == n and next_seq is not None:
                        self._frames.append((next_seq, self._total))
                        next_seq = None
                    self._write_chunk(cs)
        except BaseException:
            self._chunk_start, self._fill, self._written, self._frames = before
            if kept is not None:  # chunks this frame already completed stay in the store; rewritten identically
                self._buf[:self._fill] = kept[0]
                self._tbuf[:self._fill] = kept[1]
            raise
        if next_seq is not None:
            self._frames.append((next_seq, self._total))

    def _write_chunk(self, n: int) -> None:
        """Write the current chunk's first ``n`` samples (``n`` < chunk size: a partial chunk, rewritten
        whole later; its checksum entry is replaced then) and move the durable point. All or nothing for the
        sink's state: if the store or the metadata write fails, it raises with nothing changed in memory (the
        durable point stays where the saved metadata has it; the store may hold data beyond it, which resume
        cuts and the retry rewrites)."""
        start = self._chunk_start
        cs = self._buf.shape[0]
        c = self._buf.shape[1]
        k = start // cs
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.samples.resize((start + n, c))
                self.timestamps.resize((start + n,))
                self.samples[start:start + n] = self._buf[:n]
                self.timestamps[start:start + n] = self._tbuf[:n]
        except Exception as exc:
            self._write_failed(exc, f"writing chunk {k} ({n} samples)")
            raise
        sums = self.meta["checksums"]
        end = start + n
        # durable point: the last frame that ends inside what is now written
        next_seq, n_samples = self.meta["next_seq"], self.meta["n_samples"]
        done = [f for f in self._frames if f[1] <= end]
        if done:
            next_seq, n_samples = int(done[-1][0]), int(done[-1][1])
        elif next_seq is None:
            n_samples = end  # plain-sink path: every sample counts
        if n < cs:  # a short chunk (close, end of stream, a string stream's flush): rewritten whole once it grows
            n_samples = end
        self._save({**self.meta, "next_seq": next_seq, "n_samples": n_samples,
                    "checksums": {"samples": sums["samples"][:k] + [crc32(self._buf[:n])],
                                  "timestamps": sums["timestamps"][:k] + [crc32(self._tbuf[:n])]}})
        self._frames = [f for f in self._frames if f[1] > end]
        if n == cs:
            self._chunk_start = end
            self._fill = 0
            self._written = 0
        else:
            self._written = n
        self._last_write = time.monotonic()

    def _flush_text_soon(self) -> None:
        """String streams: write the partial chunk now if the last write is ``flush_s`` old, else schedule it
        (on the running asyncio loop, if any: the receiver's), so a lone marker does not wait for the next."""
        if not self.text or self._fill <= self._written or self.closed:
            return
        now = time.monotonic()
        wait = max(self.flush_s - (now - self._last_write), self._retry_at - now)
        if wait <= 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                self._write_chunk(self._fill)
            except Exception:  # noqa: BLE001 - counted and logged; the frames stay buffered, retried after a backoff
                self._schedule_flush(self._retry_at - time.monotonic())
            return
        if self._timer is None:
            self._schedule_flush(wait)

    def _schedule_flush(self, wait: float) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (offline use): the next marker or close() writes it
        self._timer = loop.call_later(max(0.0, wait), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self.closed and self._fill > self._written:
            try:
                self._write_chunk(self._fill)
            except Exception:  # noqa: BLE001 - a timer must not kill the loop; counted and logged, retried
                self._schedule_flush(self._retry_at - time.monotonic())

    def _add_gap_record(self, rec: dict[str, Any]) -> None:
        self.meta["gaps"].append(rec)

    def _leftover_arrays(self) -> bool:
        """A group without archive metadata: True if its ``samples`` / ``timestamps`` are the empty arrays of an
        :meth:`open` whose metadata save failed (disk full), which are created again; other arrays are not ours
        to replace (zarr refuses to create over them)."""
        names = [k for k in ("samples", "timestamps") if k in self.group]
        return bool(names) and all(self.group[k].shape[0] == 0 for k in names)

    def _save(self, meta: dict[str, Any]) -> None:
        """Save ``meta`` and only then make it the sink's metadata (the durable point acks report)."""
        try:
            self._save_meta(meta)
        except Exception as exc:
            self._write_failed(exc, "saving the archive metadata")
            raise
        self.meta = meta
        self._write_ok()

    def _save_meta(self, meta: dict[str, Any] | None = None) -> None:
        self.group.attrs[ATTR] = self.meta if meta is None else meta

    def _write_failed(self, exc: BaseException, what: str) -> None:
        """Count a failed write and set the retry backoff; one ERROR line per ERROR_LOG_EVERY_S at most."""
        self.write_errors += 1
        self._fail_streak += 1
        now = time.monotonic()
        self._retry_at = now + min(RETRY_MAX_S, max(self.flush_s, RETRY_MIN_S) * 2 ** min(self._fail_streak - 1, 10))
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_error_log < ERROR_LOG_EVERY_S:
            return
        self._last_error_log = now
        self._run_logged = True
        if self._fail_streak == 1:
            log.error("archive %s: %s failed (%s: %s); durable point stays at frame %s, %s samples; retrying "
                      "(%d failed writes so far)", self.path, what, type(exc).__name__, exc, self.next_seq,
                      self.meta.get("n_samples"), self.write_errors)
        else:
            log.error("archive %s: writes still failing (%d failed in %.0f s; last: %s: %s); durable point frame %s",
                      self.path, self._fail_streak, now - self._failing_since, type(exc).__name__, exc, self.next_seq)

    def _write_ok(self) -> None:
        if self._failing_since is not None:
            if self._run_logged:
                log.warning("archive %s: writing again after %d failed writes in %.1f s; durable point frame %s",
                            self.path, self._fail_streak, time.monotonic() - self._failing_since, self.next_seq)
            self._failing_since = None
            self._run_logged = False
        self._fail_streak = 0
        self._retry_at = 0.0


def _same_stream(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("name", "type", "source_id", "nominal_srate", "channel_count", "channel_format")
    return all(a.get(k) == b.get(k) for k in keys)


__all__ = ["ArchiveSink", "ARCHIVE_CODEC", "ATTR", "FORMAT_VERSION", "TEXT_CHECKSUM", "archive_codec_for", "crc32",
           "text_crc32", "asdict"]
