"""Python API over an archive: samples + timestamps + metadata, and integrity verification.

Only plain zarr and neurolink's registered ``numcodecs.neurolink.lossless`` codec are needed, so any
process with neurolink installed can read an archive written by another one. String (marker) archives need
only zarr (its ``string`` data type): :meth:`Archive.read` returns their values as an object array of ``str``,
like the live path's string frames.

An archive is read up to its durable point (``n_samples`` in its metadata), whatever the store holds beyond it
(a writer killed mid-chunk, or still writing); format_version 2 logs are read up to the counts the metadata
names. :attr:`Archive.meta` has the format_version 1 shape for both versions (see
:func:`neurolink.sinks.archive.expand_meta`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurolink.errors import NeurolinkError
from neurolink.sinks.archive import (
    ATTR,
    CHECKSUM_SCHEMES,
    FORMAT_VERSION,
    LOGS,
    NUMERIC_CHECKSUM,
    expand_meta,
)


@dataclass
class Archive:
    path: str
    meta: dict[str, Any]  # expanded: logs as lists (format_version 1 shape), whatever the format_version
    samples: Any  # zarr.Array (>= n_samples, n_channels)
    timestamps: Any  # zarr.Array (>= n_samples,)
    problems: list[str] = field(default_factory=list)  # found while loading the metadata (verify reports them)

    @property
    def format_version(self) -> int:
        return int(self.meta.get("format_version", 1))

    @property
    def header(self) -> dict[str, Any]:
        return self.meta["header"]

    @property
    def fs(self) -> float:
        return float(self.meta["nominal_srate"])

    @property
    def n_samples(self) -> int:
        """The durable point: samples beyond it in the store (a writer killed or still writing) are not read."""
        return int(self.meta["n_samples"])

    @property
    def n_written(self) -> int:
        """Samples the checksums cover (>= n_samples; format_version 1: the store's length)."""
        if self.format_version >= 2:
            return int(self.meta["n_written"])
        return int(self.samples.shape[0])

    @property
    def gaps(self) -> list[dict[str, Any]]:
        return list(self.meta["gaps"])

    @property
    def is_text(self) -> bool:
        """A string (marker) stream: values are ``str``, timestamps are the markers' own (irregular)."""
        return self.header["channel_format"] == "string"

    def read(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Samples [start, stop) and their timestamps (clock named by ``meta['timestamps_clock']``); a string
        stream's samples are a (n, channels) object array of ``str`` (exact text: NULs, empty strings kept)."""
        stop = self.n_samples if stop is None else min(stop, self.n_samples)
        return self._read(start, stop)

    def _read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        start = min(start, stop)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = np.asarray(self.samples[start:stop])
            if self.is_text:
                x = x.astype(object)  # zarr returns numpy's StringDType
            return x, np.asarray(self.timestamps[start:stop])

    def receiver_timestamps(self, ts: np.ndarray, start: int = 0) -> np.ndarray:
        """Map sender-clock timestamps into the receiver's clock with the recorded offset history."""
        if self.meta["timestamps_clock"] != "sender" or not self.meta["clock_offsets"]:
            return ts
        hist = np.asarray(self.meta["clock_offsets"], dtype=np.float64)
        idx = start + np.arange(ts.shape[0])
        k = np.clip(np.searchsorted(hist[:, 0], idx, side="right") - 1, 0, len(hist) - 1)
        return ts - hist[k, 1]

    def iter_chunks(self):
        cs = int(self.meta["chunk_samples"])
        for i in range(0, self.n_samples, cs):
            yield i, *self.read(i, i + cs)


def open_archive(path: str, storage_options: dict[str, Any] | None = None) -> Archive:
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            g = zarr.open_group(path, mode="r", storage_options=storage_options)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            raise NeurolinkError(f"no archive at {path}: {exc}") from None
        meta = g.attrs.get(ATTR)
        if not isinstance(meta, Mapping):
            raise NeurolinkError(f"{path} is a zarr group but not a neurolink archive (no {ATTR!r} attribute)")
        version = meta.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise NeurolinkError(f"{path}: archive format_version {version!r} is not one this neurolink reads "
                                 f"(up to {FORMAT_VERSION}): upgrade neurolink")
        full, problems = expand_meta(g, meta)
        return Archive(path, full, g["samples"], g["timestamps"], problems)


def read_archive(path: str, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convenience: (samples, timestamps) of an archive."""
    return open_archive(path).read(start, stop)


def _scheme(a: Archive, key: str, problems: list[str]) -> Any:
    """The CRC function named by ``meta[key]`` (``samples_checksum`` / ``timestamps_checksum``), or None (a problem
    reported): an unknown or missing name is never a silent pass. format_version 1 numeric archives name none:
    theirs is ``crc32-le`` (the only definition they had)."""
    name = a.meta.get(key)
    if name is None and a.format_version < 2 and (key == "timestamps_checksum" or not a.is_text):
        name = NUMERIC_CHECKSUM
    fn = CHECKSUM_SCHEMES.get(name) if isinstance(name, str) else None
    if fn is None:
        problems.append(f"{key} {name!r} is not a checksum scheme this neurolink knows ({', '.join(CHECKSUM_SCHEMES)}): "
                        f"chunks not verified" if name is not None else f"no {key} recorded: chunks not verified")
    return fn


def verify_archive(path: str) -> dict[str, Any]:
    """Recompute every chunk's CRC32 and check the metadata is consistent; returns a report dict."""
    a = open_archive(path)
    m = a.meta
    cs = int(m["chunk_samples"])
    sums = m["checksums"]
    problems: list[str] = list(a.problems)
    n = a.n_samples
    extent = a.n_written  # what the checksums cover
    stored = int(a.samples.shape[0])
    if a.format_version < 2:
        if a.timestamps.shape[0] != stored:
            problems.append(f"timestamps has {a.timestamps.shape[0]} entries for {stored} samples")
        if n != stored:
            problems.append(f"metadata says {n} samples, store holds {stored} (archive not closed cleanly?)")
    else:
        for key, arr in (("samples", a.samples), ("timestamps", a.timestamps)):
            if arr.shape[0] < extent:
                problems.append(f"{key} holds {arr.shape[0]} samples, the metadata says {extent} were written")
        if n > extent:
            problems.append(f"durable point {n} is beyond the {extent} samples written")
        logs = m.get("logs") or {}
        if int(logs.get("checksums", -1)) != extent // cs or bool(m.get("tail_checksums")) != bool(extent % cs):
            problems.append(f"metadata counts {logs.get('checksums')} complete chunks and "
                            f"{'a' if m.get('tail_checksums') else 'no'} partial one for {extent} samples written")
        missing = [k for k in LOGS if k not in logs]
        if missing:
            problems.append(f"metadata has no count for the logs {missing}")
    crc_x = _scheme(a, "samples_checksum", problems)
    crc_t = _scheme(a, "timestamps_checksum", problems)
    n_chunks = -(-extent // cs)
    for key in ("samples", "timestamps"):
        if len(sums[key]) != n_chunks:
            problems.append(f"{len(sums[key])} {key} checksums for {n_chunks} chunks")
    bad: list[int] = []
    prev_t = -np.inf
    nonmono = 0
    for k, i in enumerate(range(0, extent, cs)):
        try:
            x, t = a._read(i, min(i + cs, extent))
        except Exception as exc:  # noqa: BLE001 - a chunk that no longer decodes is damage to report, not a crash
            bad.append(k)
            problems.append(f"chunk {k} does not decode: {type(exc).__name__}: {exc}")
            continue
        if crc_x is not None and crc_t is not None and k < len(sums["samples"]) and k < len(sums["timestamps"]):
            try:
                if crc_x(x) != sums["samples"][k] or crc_t(t) != sums["timestamps"][k]:
                    bad.append(k)
            except NeurolinkError as exc:  # e.g. the text scheme named for numeric samples
                bad.append(k)
                problems.append(f"chunk {k}: {exc}")
        t = t[:max(0, n - i)]  # time order is checked up to the durable point
        d = np.diff(np.concatenate(([prev_t], t)))
        nonmono += int(np.count_nonzero(d < 0))
        prev_t = t[-1] if t.size else prev_t
    if bad:
        problems.append(f"checksum mismatch in chunks {bad[:20]}")
    if nonmono and not a.is_text:  # markers stamped after the fact go backwards as sent: data, not damage
        problems.append(f"{nonmono} timestamps go backwards")
    lost = [g for g in a.gaps if not g.get("concealed")]
    concealed = sum(int(g.get("n_samples", 0)) for g in a.gaps if g.get("concealed"))
    return {"path": path, "ok": not problems, "problems": problems, "n_samples": n, "chunks": n_chunks,
            "bad_chunks": bad, "gaps": len(a.gaps), "frames_lost_for_good": sum(g.get("end_seq", 0) - g.get("first_seq", 0) for g in lost),
            "samples_concealed": concealed, "next_seq": m.get("next_seq"), "timestamps_backwards": nonmono,
            "channel_format": a.header["channel_format"], "format_version": a.format_version,
            "samples_beyond_durable_point": max(0, stored - n)}
