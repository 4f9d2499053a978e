"""Python API over an archive: samples + timestamps + metadata, and integrity verification.

Only plain zarr and neurolink's registered ``numcodecs.neurolink.lossless`` codec are needed, so any
process with neurolink installed can read an archive written by another one. String (marker) archives need
only zarr (its ``string`` data type): :meth:`Archive.read` returns their values as an object array of ``str``,
like the live path's string frames.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolink.errors import NeurolinkError
from neurolink.sinks.archive import ATTR, FORMAT_VERSION, crc32


@dataclass
class Archive:
    path: str
    meta: dict[str, Any]
    samples: Any  # zarr.Array (n_samples, n_channels)
    timestamps: Any  # zarr.Array (n_samples,)

    @property
    def header(self) -> dict[str, Any]:
        return self.meta["header"]

    @property
    def fs(self) -> float:
        return float(self.meta["nominal_srate"])

    @property
    def n_samples(self) -> int:
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
        return Archive(path, dict(meta), g["samples"], g["timestamps"])


def read_archive(path: str, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convenience: (samples, timestamps) of an archive."""
    return open_archive(path).read(start, stop)


def verify_archive(path: str) -> dict[str, Any]:
    """Recompute every chunk's CRC32 and check the metadata is consistent; returns a report dict."""
    a = open_archive(path)
    cs = int(a.meta["chunk_samples"])
    sums = a.meta["checksums"]
    problems: list[str] = []
    n = a.n_samples
    if a.timestamps.shape[0] != n:
        problems.append(f"timestamps has {a.timestamps.shape[0]} entries for {n} samples")
    if int(a.meta["n_samples"]) != n:
        problems.append(f"metadata says {a.meta['n_samples']} samples, store holds {n} (archive not closed cleanly?)")
    n_chunks = -(-n // cs)
    for key in ("samples", "timestamps"):
        if len(sums[key]) != n_chunks:
            problems.append(f"{len(sums[key])} {key} checksums for {n_chunks} chunks")
    bad: list[int] = []
    prev_t = -np.inf
    nonmono = 0
    for k, i in enumerate(range(0, n, cs)):
        try:
            x, t = a.read(i, i + cs)
        except Exception as exc:  # noqa: BLE001 - a chunk that no longer decodes is damage to report, not a crash
            bad.append(k)
            problems.append(f"chunk {k} does not decode: {type(exc).__name__}: {exc}")
            continue
        if k < len(sums["samples"]) and (crc32(x) != sums["samples"][k] or crc32(t) != sums["timestamps"][k]):
            bad.append(k)
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
            "samples_concealed": concealed, "next_seq": a.meta.get("next_seq"), "timestamps_backwards": nonmono,
            "channel_format": a.header["channel_format"]}
