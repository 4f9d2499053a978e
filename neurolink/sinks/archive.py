"""Lossless archive sink: a Zarr v3 group (local folder or fsspec URL) chunked in time, nl-lossless compressed.

Layout (format_version 2, documented in docs/archive.md)::

    <store>/samples      (n, n_channels) stream dtype, chunks (chunk_samples, n_channels), serializer
                         ``numcodecs.neurolink.lossless`` (nl-lossless archive mode); string (marker) streams:
                         zarr's variable-length UTF-8 ``string`` data type (vlen-utf8 + zstd)
    <store>/timestamps   (n,) float64, one per sample, in the clock named by attrs["timestamps_clock"]
    <store>/log/...      append-only logs, one zarr array each: ``checksums`` (uint32 pairs: CRC32 of each complete
                         chunk's samples and timestamps), ``clock_offsets`` (float64 pairs), ``gaps``,
                         ``codec_history``, ``sessions`` (one JSON text per entry)
    <store> attrs["neurolink_archive"]: small and bounded: stream header, chunk size, the durable point
                         (next_seq, n_samples), what the checksums cover (n_written, the partial last chunk's
                         CRCs), the checksum schemes and how many entries of each log are durable.

Why the logs are arrays: the attribute is rewritten at every chunk write; with the per-chunk CRCs (and every gap,
clock offset and codec change) in it, a day of 1 s chunks made that a 2 MB JSON document, a quarter-second stall of
the receiver's event loop every second. A log entry is written once into the last chunk of its array (only that
chunk is rewritten, and the array grows a chunk at a time), so a chunk write costs the same after a day as on the
first minute.

Crash consistency: the attribute is the commit point. Log entries and data beyond its counts / durable point are
written first and ignored (by readers and on resume) until an attribute save names them; a kill between the two
leaves the previous durable state intact. What the durable attribute covers is never rewritten with other
content: complete chunks and their log entries are written once (a rollback rewrites them identically), a partial
chunk only grows (its CRCs live in the attribute), and resume first saves an attribute that covers only the
durable point, then cuts the store back to it.

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

Archives of format_version 1 (everything in the attribute) are read as they are; an ArchiveSink that resumes one
migrates it to format_version 2 once, at open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import struct
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from neurolink.errors import ConfigError, NeurolinkError
from neurolink.sinks.base import Sink
from neurolink.wire.format import StreamHeader

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
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
#: the names of the CRC definitions (``samples_checksum`` / ``timestamps_checksum`` in the attribute): numeric
#: chunks (and all timestamps) by :func:`numeric_crc32`, string chunks by :func:`text_crc32`
NUMERIC_CHECKSUM = "crc32-le"
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


def numeric_crc32(a: np.ndarray) -> int:
    """CRC32 of an array's little-endian C-order bytes (scheme ``crc32-le``)."""
    return zlib.crc32(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def crc32(a: np.ndarray) -> int:
    """CRC32 of an array's little-endian C-order bytes (what verify recomputes from the store); string
    arrays: :func:`text_crc32`."""
    if is_text_array(a):
        return text_crc32(a)
    return numeric_crc32(a)


#: checksum scheme name -> function (verify refuses names not in here)
CHECKSUM_SCHEMES = {NUMERIC_CHECKSUM: numeric_crc32, TEXT_CHECKSUM: text_crc32}

#: the append-only logs (zarr arrays under ``log/``): entries per zarr chunk, and the kind of entry
LOG_GROUP = "log"
LOGS: dict[str, tuple[int, str]] = {
    "checksums": (4096, "u32pair"),  # [samples CRC, timestamps CRC] of each complete chunk
    "clock_offsets": (1024, "f64pair"),  # [sample_index, offset_s]
    "gaps": (256, "json"),
    "codec_history": (256, "json"),
    "sessions": (256, "json"),
}
_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")  # zarr's LocalStore temp files (``<key>.<uuid4 hex>.partial``)


def _encode(kind: str, v: Any) -> Any:
    if kind == "json":
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return (int(v[0]), int(v[1])) if kind == "u32pair" else (float(v[0]), float(v[1]))


def _decode(kind: str, v: Any) -> Any:
    if kind == "json":
        return json.loads(v)
    return [int(v[0]), int(v[1])] if kind == "u32pair" else [int(v[0]), float(v[1])]


def _create_log(group: Any, name: str, overwrite: bool) -> Any:
    zarr = _zarr()
    per_chunk, kind = LOGS[name]
    key = f"{LOG_GROUP}/{name}"
    if kind == "json":
        return group.create_array(key, shape=(0,), chunks=(per_chunk,), dtype=str, overwrite=overwrite,
                                  compressors=[zarr.codecs.ZstdCodec(level=TEXT_ZSTD_LEVEL)])
    # pairs: zstd mostly squeezes the zeros of the array's not yet used tail (the last chunk is written whole)
    return group.create_array(key, shape=(0, 2), chunks=(per_chunk, 2), dtype="uint32" if kind == "u32pair" else "float64",
                              overwrite=overwrite, compressors=[zarr.codecs.ZstdCodec(level=TEXT_ZSTD_LEVEL)])


def _read_entries(arr: Any, kind: str, start: int, stop: int) -> list[Any]:
    """Entries [start, stop) in storage form (JSON text, or tuples); fewer if the array is shorter."""
    if stop <= start:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = np.asarray(arr[start:stop])
    if kind == "json":
        return [str(s) for s in v.tolist()]
    return [tuple(r) for r in v.tolist()]


class _Log:
    """One append-only log in a zarr array whose length grows a chunk at a time: entries [0, durable) are saved
    (the attribute names the count); new ones are pending until :meth:`flush` writes them and :meth:`commit` marks
    them durable once the attribute that counts them is saved. Only the array's last chunk is rewritten, whole,
    from a copy of it kept in memory (``block``), so appending costs the same at any length. Entries beyond the
    durable count in the array are leftovers of a save that did not complete: ignored, and overwritten by the
    next flush."""

    def __init__(self, arr: Any, name: str, durable: int, pending: list[Any] | None = None) -> None:
        self.arr = arr
        self.name = name
        self.kind = LOGS[name][1]
        self.per_chunk = int(arr.chunks[0])  # the array's own (an archive keeps the chunking it was created with)
        self.last: Any = None  # the last entry (pending or durable), decoded
        self._load(durable)
        self.pending: list[Any] = [_encode(self.kind, v) for v in pending or []]
        if self.pending:
            self.last = _decode(self.kind, self.pending[-1])

    def _empty_block(self) -> np.ndarray:
        if self.kind == "json":
            return np.full(self.per_chunk, "", dtype=object)
        return np.zeros((self.per_chunk, 2), dtype=self.arr.dtype)

    def _load(self, durable: int) -> None:
        self.durable = durable
        self.target: int | None = None  # a count below ``durable`` the next save names (trailing entries dropped)
        base = (durable // self.per_chunk) * self.per_chunk
        window = _read_entries(self.arr, self.kind, base, durable)  # the durable entries of the last chunk
        if len(window) != durable - base:
            raise NeurolinkError(f"archive log {self.name!r}: the metadata counts {durable} entries, the store holds "
                                 f"{base + len(window)}")
        self.block = self._empty_block()
        if window:
            self.block[:len(window)] = window
        last = window[-1:] or (_read_entries(self.arr, self.kind, durable - 1, durable) if durable else [])
        self.last = _decode(self.kind, last[0]) if last else None
        self.pending = []

    @property
    def count(self) -> int:
        return self.durable + len(self.pending)

    def append(self, value: Any) -> None:
        self.pending.append(_encode(self.kind, value))
        self.last = value

    def set(self, k: int, value: Any) -> None:
        """Entry ``k`` (checksums: of chunk ``k``); a pending one (its save failed) is replaced."""
        if k < self.durable or k > self.count:
            raise NeurolinkError(f"archive log {self.name!r}: entry {k} set with {self.durable} durable and "
                                 f"{len(self.pending)} pending")
        del self.pending[k - self.durable:]
        self.append(value)

    def get(self, k: int) -> Any:
        base = (self.durable // self.per_chunk) * self.per_chunk
        if k >= self.durable:
            return _decode(self.kind, self.pending[k - self.durable])
        if k >= base:
            row = self.block[k - base]
            return _decode(self.kind, row if self.kind == "json" else tuple(row.tolist()))
        return _decode(self.kind, _read_entries(self.arr, self.kind, k, k + 1)[0])

    def trim(self, drop: Callable[[Any], bool]) -> int:
        """Drop the trailing durable entries ``drop`` is true for (resume: those about samples beyond the durable
        point, which the sender's resend brings back). Nothing is written: the next save counts fewer. Returns how
        many are dropped."""
        if self.pending:
            raise NeurolinkError(f"archive log {self.name!r}: trim with entries pending")
        n = self.durable
        while n > 0 and drop(self.get(n - 1)):
            n -= 1
        self.target = n if n < self.durable else None
        return self.durable - n

    def replace(self, values: list[Any]) -> None:
        """All entries replaced, from entry 0 (a fresh archive taking over another's history: transcode; the
        entries it had are overwritten before the metadata that drops them is saved)."""
        self._load(0)
        for v in values:
            self.append(v)

    def _blocks(self, n: int) -> list[tuple[int, np.ndarray]]:
        """The chunks holding entries [durable, n): (first entry, whole chunk content)."""
        c = self.per_chunk
        base = (self.durable // c) * c
        out = []
        block = self.block.copy()
        done = self.durable
        for j in range(base, n, c):
            if j > base:
                block = self._empty_block()
            end = min(n, j + c)
            if end > done:
                block[done - j:end - j] = self.pending[done - self.durable:end - self.durable]
                done = end
            out.append((j, block))
        return out

    def flush(self, n: int | None = None) -> int:
        """Write the pending entries up to count ``n`` (default: all); returns ``n``, the count the metadata may then
        name. ``n`` below the durable count writes nothing: the metadata drops entries by counting fewer (the
        entries stay as they are until the next flush after that metadata is saved)."""
        if n is None:
            n = self.count if self.target is None else self.target
        if self.target is not None and self.pending:
            raise NeurolinkError(f"archive log {self.name!r}: entries appended before a trim was saved")
        if n <= self.durable:
            return n
        if n > self.count:
            raise NeurolinkError(f"archive log {self.name!r}: {n} entries to save, {self.count} known")
        cap = -(-n // self.per_chunk) * self.per_chunk
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.arr.shape[0] < cap:
                self.arr.resize((cap, *self.arr.shape[1:]))
            for j, block in self._blocks(n):  # whole chunks: zarr writes them without reading them back
                self.arr[j:j + self.per_chunk] = block
        return n

    def commit(self, n: int) -> None:
        """Metadata counting ``n`` entries is saved: entries [0, n) are durable; pending ones beyond are dropped
        (a checksum whose chunk was cut back)."""
        if n < self.durable:
            self._load(n)
            return
        if n > self.durable:
            blocks = self._blocks(n)
            j, self.block = blocks[-1]
            if n == j + self.per_chunk:  # the last chunk is full: the next entry starts a new one
                self.block = self._empty_block()
            self.last = _decode(self.kind, self.pending[n - self.durable - 1])
        self.durable = n
        self.target = None
        self.pending = []


def read_logs(group: Any, meta: Mapping[str, Any]) -> tuple[dict[str, list[Any]], list[str]]:
    """A format_version 2 archive's logs, each cut to the count its attribute names (entries beyond it are leftovers
    of an interrupted save), decoded (``checksums``: ``[samples CRC, timestamps CRC]`` pairs); and the problems
    found (a log the store holds fewer entries of than counted, an entry that does not decode)."""
    counts = meta.get("logs") or {}
    out: dict[str, list[Any]] = {}
    problems: list[str] = []
    for name, (_c, kind) in LOGS.items():
        n = int(counts.get(name, 0))
        key = f"{LOG_GROUP}/{name}"
        try:
            entries = _read_entries(group[key], kind, 0, n) if n else []
        except KeyError:
            entries = []
        if len(entries) != n:
            problems.append(f"log {name}: the metadata counts {n} entries, the store holds {len(entries)}")
        vals = []
        for i, e in enumerate(entries):
            try:
                vals.append(_decode(kind, e))
            except ValueError as exc:
                problems.append(f"log {name}: entry {i} does not decode: {exc}")
        out[name] = vals
    return out, problems


def expand_meta(group: Any, meta: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The metadata of an archive of any format_version as one dict in the format_version 1 shape (``checksums``
    ``{"samples": [...], "timestamps": [...]}`` per chunk written, ``gaps``, ``clock_offsets``, ``codec_history``,
    ``sessions`` as lists), plus the problems :func:`read_logs` found. Version 1 metadata is returned as it is."""
    out = dict(meta)
    if int(meta.get("format_version", 1)) < 2:
        return out, []
    logs, problems = read_logs(group, meta)
    sums = logs.pop("checksums")
    tail = meta.get("tail_checksums")
    if tail:
        sums = sums + [list(tail)]
    out["checksums"] = {"samples": [s[0] for s in sums], "timestamps": [s[1] for s in sums]}
    out.update(logs)
    return out, problems


def clean_partials(root: str | Path, first_chunk: Mapping[str, int]) -> int:
    """Remove the ``<key>.<uuid hex>.partial`` temp files a kill mid-write leaves in zarr's LocalStore (it writes each
    object to one and renames it over the key) under ``root``: in the group and array folders, and in the chunk
    folders of each array (``first_chunk``: array path -> first chunk index to look at; earlier chunks are not
    written any more). Returns how many were removed. Only for a writer that owns the archive: a reader must
    leave a live writer's temp files alone (zarr ignores them)."""
    root = Path(root)
    removed = 0

    def sweep(d: Path, kmin: int | None = None) -> None:
        nonlocal removed
        try:
            entries = list(os.scandir(d))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if _PARTIAL.search(e.name) and e.is_file(follow_symlinks=False):
                try:
                    os.unlink(e.path)
                    removed += 1
                except FileNotFoundError:
                    pass
            elif kmin is not None and e.name.isdigit() and int(e.name) >= kmin and e.is_dir(follow_symlinks=False):
                sweep(Path(e.path))  # a 2-d array's chunk folder c/<k>/

    sweep(root)
    sweep(root / LOG_GROUP)
    for arr, kmin in first_chunk.items():
        sweep(root / arr)
        sweep(root / arr / "c", max(0, kmin))
    return removed




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
        self.meta: dict[str, Any] = {}  # the saved metadata attribute (bounded; the logs are in self._logs)
        self._logs: dict[str, _Log] = {}
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
                self._resume(dict(old))
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
            self._logs = {name: _Log(_create_log(self.group, name, overwrite), name, 0) for name in LOGS}
        self._logs["codec_history"].append({"sample_index": 0, "archive_codec": archive_codec,
                                            "wire_codec": archive_codec_for(header.channel_format),
                                            "ladder": hdr.get("ladder", [])})
        self._logs["sessions"].append(hdr.get("session", ""))
        self.meta = {
            "format_version": FORMAT_VERSION,
            "header": hdr,
            "stream_id": header.stream_id,
            "nominal_srate": fs,
            "chunk_samples": cs,
            "timestamps_clock": "sender",  # receiver_time = timestamp - clock_offset_s
            "next_seq": None,  # reliable path: first frame not yet durably archived
            "n_samples": 0,  # durable sample count (frames complete)
            "n_written": 0,  # samples the checksums cover (>= n_samples: a chunk may end inside a frame)
            "samples_checksum": TEXT_CHECKSUM if self.text else NUMERIC_CHECKSUM,
            "timestamps_checksum": NUMERIC_CHECKSUM,
            "tail_checksums": None,  # [samples, timestamps] CRC of a partial last chunk (n_written % chunk_samples)
            "logs": {name: 0 for name in LOGS},  # durable entries of each log (the rest of an array is ignored)
        }
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
        except Exception as exc:  # chunks this push completed before the failing one stay archived (they are durable)
            self._add_gap_record({"sample_index": self._total, "n_samples": 0, "concealed": False,
                                  "reason": f"archive write failed ({exc}): {n - (self._total - at)} samples not archived"})
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
        """Record the sender-minus-receiver clock offset from the next sample on, if it moved by more than 0.1 ms
        (saved with the next chunk write)."""
        hist = self._logs["clock_offsets"]
        if hist.last is None or abs(hist.last[1] - offset_s) > 1e-4:
            if hist.pending and hist.pending[-1][0] == self._total:  # no sample between two offsets: keep the last
                hist.pending.pop()
            hist.append([self._total, float(offset_s)])

    def record_codec(self, level: int, codec: dict[str, Any]) -> None:
        """Record a wire codec change from the next sample on (saved with the next chunk write)."""
        hist = self._logs["codec_history"]
        if hist.last is None or hist.last.get("wire_codec") != codec:
            if hist.pending and json.loads(hist.pending[-1])["sample_index"] == self._total:
                hist.pending.pop()  # switched again before a sample went by: only the last one applies
            hist.append({"sample_index": self._total, "level": level, "wire_codec": codec})

    def adopt_history(self, meta: Mapping[str, Any]) -> None:
        """Take over another archive's history (``gaps``, ``clock_offsets``, ``codec_history``, ``sessions``,
        ``timestamps_clock``, ``next_seq``; metadata as :func:`expand_meta` gives it): transcode. Saved with the
        next chunk write or at close."""
        for name in ("gaps", "clock_offsets", "codec_history", "sessions"):
            self._logs[name].replace(list(meta[name]))
        self.meta["timestamps_clock"] = meta["timestamps_clock"]
        self.meta["next_seq"] = meta.get("next_seq")

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
        """Reopen at the durable point. A format_version 1 archive is migrated first (its lists written into new log
        arrays, counted by the metadata saved below; a kill before that leaves it as it was). Then metadata whose
        checksums stop at the durable point is saved (the chunk it ends in: its durable part's CRCs, from the store,
        after checking what was recorded for that chunk), and only then is the store cut back to it: what a kill
        left beyond (written, never recorded) goes. The durable part of the last chunk is reloaded into the write
        buffer and stays in the store until it is rewritten whole, so a second kill right after a restart loses
        nothing either."""
        self.resumed = True
        self.samples = self.group["samples"]
        self.timestamps = self.group["timestamps"]
        cs = int(old["chunk_samples"])
        n = int(old["n_samples"])
        start = (n // cs) * cs
        k = start // cs
        recorded = None
        if int(old.get("format_version", 1)) < 2:
            self._clean_partials(old, {})
            meta = self._migrate(old, k)
            hi = n
        else:
            meta = old
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arrays = {name: self.group[f"{LOG_GROUP}/{name}"] for name in LOGS}
            self._clean_partials(meta, {name: int(a.chunks[0]) for name, a in arrays.items()})
            self._logs = {name: _Log(arr, name, int(meta["logs"][name])) for name, arr in arrays.items()}
            ck = self._logs["checksums"]
            hi = max(n, min(int(meta["n_written"]), start + cs))
            if k < ck.durable:
                recorded = ck.get(k)
            elif hi > start:
                recorded = meta.get("tail_checksums")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = np.asarray(self.samples[start:hi])
            t = np.asarray(self.timestamps[start:hi])
        if recorded is not None and [crc32(x), crc32(t)] != list(recorded):
            log.error("archive %s: chunk %d does not match its recorded checksum (damaged in the store?); resuming "
                      "with what the store holds", self.path, k)
        new, tail, ttail = self._durable_cover(meta, x[:n - start], t[:n - start])
        if int(old.get("format_version", 1)) >= 2:
            for name, drop in _beyond(n, new.get("next_seq")).items():
                self._logs[name].trim(drop)
        if new != meta or any(lg.pending or lg.target is not None for lg in self._logs.values()):
            self._save(new)  # only the counts go down (and a migration's logs are written): nothing counted is rewritten
        else:
            self.meta = new
        session = (self.header.session if self.header else "") or ""
        if session and session != self._logs["sessions"].last:  # the sender restarted: its sequence numbers restart too
            self._logs["sessions"].append(session)
            self._add_gap_record({"sample_index": n, "n_samples": 0, "concealed": False,
                                  "reason": f"new sender session {session}: frames the old session did not deliver are lost"})
            self._save({**self.meta, "next_seq": None})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.samples.shape[0] != n:
                self.samples.resize((n, self.samples.shape[1]))
            if self.timestamps.shape[0] != n:
                self.timestamps.resize((n,))
        self._init_buffers(start)
        self._buf[: n - start] = tail
        self._tbuf[: n - start] = ttail
        self._fill = n - start
        self._written = n - start
        log.info("archive %s: resumed at %d samples, next frame %s", self.path, n, new.get("next_seq"))

    def _migrate(self, old: dict[str, Any], k: int) -> dict[str, Any]:
        """format_version 1 -> 2: the metadata without its lists, and the logs holding them as pending entries (the
        checksums of the complete chunks before chunk ``k``, where the durable point is)."""
        sums = old["checksums"]
        pending: dict[str, list[Any]] = {
            "checksums": [list(p) for p in zip(sums["samples"][:k], sums["timestamps"][:k], strict=True)],
            "clock_offsets": list(old.get("clock_offsets", [])), "gaps": list(old.get("gaps", [])),
            "codec_history": list(old.get("codec_history", [])), "sessions": list(old.get("sessions", []))}
        for name, drop in _beyond(int(old["n_samples"]), old.get("next_seq")).items():
            while pending[name] and drop(pending[name][-1]):
                pending[name].pop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._logs = {name: _Log(_create_log(self.group, name, overwrite=True), name, 0, pending[name])
                          for name in LOGS}
        meta = {key: v for key, v in old.items() if key not in pending}
        meta.update(format_version=FORMAT_VERSION, n_written=int(old["n_samples"]),
                    samples_checksum=old.get("samples_checksum", TEXT_CHECKSUM if self.text else NUMERIC_CHECKSUM),
                    timestamps_checksum=NUMERIC_CHECKSUM, tail_checksums=None, logs={name: 0 for name in LOGS})
        log.info("archive %s: migrating format_version 1 to %d", self.path, FORMAT_VERSION)
        return meta

    def _durable_cover(self, meta: dict[str, Any], x: np.ndarray | None = None,
                       t: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """``meta`` with its checksums cut back to the durable point: the complete chunks before it, and as the
        partial last chunk the durable part of the chunk it ends in (CRCs of that part, read from the store unless
        given); and that part (samples, timestamps)."""
        cs = int(meta["chunk_samples"])
        n = int(meta["n_samples"])
        start = (n // cs) * cs
        if x is None or t is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x = np.asarray(self.samples[start:n])
                t = np.asarray(self.timestamps[start:n])
        if x.shape[0] != n - start or t.shape[0] != n - start:
            raise NeurolinkError(f"archive {self.path}: the store holds fewer samples than its durable point ({n})")
        return {**meta, "n_written": n, "tail_checksums": [crc32(x), crc32(t)] if n > start else None}, x, t

    def _clean_partials(self, meta: dict[str, Any], log_chunks: dict[str, int]) -> None:
        """Remove the temp files a kill mid-write left (zarr's local store only; fsspec stores write in place);
        ``log_chunks``: entries per chunk of each log array (none: look at all of their chunks)."""
        zarr = _zarr()
        store = self.group.store
        if not isinstance(store, zarr.storage.LocalStore):
            return
        cs = int(meta["chunk_samples"])
        k = int(meta.get("n_written", meta["n_samples"])) // cs - 1  # writes go to chunks from here on
        first = {"samples": k, "timestamps": k}
        for name in LOGS:
            per_chunk = log_chunks.get(name)
            count = int((meta.get("logs") or {}).get(name, 0))
            first[f"{LOG_GROUP}/{name}"] = count // per_chunk - 1 if per_chunk else 0
        try:
            removed = clean_partials(Path(str(store.root), self.group.path), first)
        except OSError as exc:
            log.warning("archive %s: could not remove temp files left by a kill: %s", self.path, exc)
            return
        if removed:
            log.info("archive %s: removed %d temp files (*.partial) left by an interrupted write", self.path, removed)

    def _append(self, data: np.ndarray, ts: np.ndarray, next_seq: int | None) -> None:
        """Buffer a frame, writing each chunk it completes. All or nothing: if a chunk write fails, the buffer
        is put back as it was before the call (the frame is not buffered) and the error raised."""
        n = data.shape[0]
        cs = self._buf.shape[0]
        plain = next_seq is None
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
            if plain and self._chunk_start != before[0]:
                # plain path (no resend): the chunks written before the failing one are archived and durable; only
                # the samples of the chunk that failed are lost (the caller records them as a gap)
                self._fill = self._written = 0
                raise
            self._chunk_start, self._fill, self._written, self._frames = before
            if kept is not None:  # chunks this frame already completed stay in the store; rewritten identically
                self._buf[:self._fill] = kept[0]
                self._tbuf[:self._fill] = kept[1]
            raise
        if next_seq is not None:
            self._frames.append((next_seq, self._total))

    def _write_chunk(self, n: int) -> None:
        """Write the current chunk's first ``n`` samples (``n`` < chunk size: a partial chunk, rewritten
        whole later; its CRCs are the metadata's ``tail_checksums`` until then) and move the durable point. All or
        nothing for the sink's state: if the store or the metadata write fails, it raises with nothing changed in
        memory (the durable point stays where the saved metadata has it; the store may hold data beyond it, which
        readers ignore, resume cuts and the retry rewrites)."""
        start = self._chunk_start
        cs = self._buf.shape[0]
        c = self._buf.shape[1]
        k = start // cs
        if k < self._logs["checksums"].durable:
            # a rollback came back into a chunk that is complete in the store, with its checksum saved: rewriting it
            # may change what lies beyond the durable point, so first save metadata whose checksums stop there
            self._save(self._durable_cover(self.meta)[0])
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
        crcs = [crc32(self._buf[:n]), crc32(self._tbuf[:n])]
        if n == cs:
            self._logs["checksums"].set(k, crcs)
        self._save({**self.meta, "next_seq": next_seq, "n_samples": n_samples, "n_written": end,
                    "tail_checksums": None if n == cs else crcs})
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
        self._logs["gaps"].append(rec)  # saved with the next chunk write or at close

    def _leftover_arrays(self) -> bool:
        """A group without archive metadata: True if its ``samples`` / ``timestamps`` are the empty arrays of an
        :meth:`open` whose metadata save failed (disk full), which are created again with its logs; other arrays
        are not ours to replace (zarr refuses to create over them)."""
        names = [k for k in ("samples", "timestamps") if k in self.group]
        if not names and LOG_GROUP in self.group:  # the logs of an open that failed before creating the arrays
            return True
        return bool(names) and all(self.group[k].shape[0] == 0 for k in names)

    def _save(self, meta: dict[str, Any]) -> None:
        """Save ``meta`` (with the log entries it counts) and only then make it the sink's metadata (the durable
        point acks report)."""
        try:
            meta = self._save_meta(meta)
        except Exception as exc:
            self._write_failed(exc, "saving the archive metadata")
            raise
        for name, lg in self._logs.items():
            lg.commit(meta["logs"][name])
        self.meta = meta
        self._write_ok()

    def _save_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Write the log entries ``meta`` will count (beyond the saved counts: ignored until the metadata names
        them), then the metadata (the commit point); returns it as saved. The checksums counted are those of the
        complete chunks in ``n_written``."""
        cs = int(meta["chunk_samples"])
        counts = {name: lg.flush(int(meta["n_written"]) // cs if name == "checksums" else None)
                  for name, lg in self._logs.items()}
        meta = {**meta, "logs": counts}
        self._save_attr(meta)
        return meta

    def _save_attr(self, meta: dict[str, Any]) -> None:
        self.group.attrs[ATTR] = meta

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


def _beyond(n: int, next_seq: int | None) -> dict[str, Callable[[Any], bool]]:
    """Per log, which (trailing) entries a resume at durable point ``n`` / ``next_seq`` drops: clock offsets and
    codec changes from a sample beyond ``n``, gaps recorded beyond ``n`` or about frames from ``next_seq`` on (the
    resent frames bring them back, so they are not recorded twice)."""

    def gap(g: Any) -> bool:
        if int(g.get("sample_index", 0)) > n:
            return True
        first = g.get("first_seq")
        return first is not None and (next_seq is None or int(first) >= next_seq)

    return {"clock_offsets": lambda e: int(e[0]) > n, "codec_history": lambda e: int(e.get("sample_index", 0)) > n,
            "gaps": gap}


def _same_stream(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("name", "type", "source_id", "nominal_srate", "channel_count", "channel_format")
    return all(a.get(k) == b.get(k) for k in keys)


__all__ = ["ArchiveSink", "ARCHIVE_CODEC", "ATTR", "CHECKSUM_SCHEMES", "FORMAT_VERSION", "LOGS", "NUMERIC_CHECKSUM",
           "TEXT_CHECKSUM", "archive_codec_for", "clean_partials", "crc32", "expand_meta", "numeric_crc32", "read_logs",
           "text_crc32", "asdict"]
