"""Bounded on-disk ring of wire messages keyed by sequence number: what the sender keeps until it is archived.

Messages go into append-only segment files of ~``segment_bytes``; the in-memory index is one small offset
list per segment, so the sender's memory stays flat however long the receiver is away. A cumulative ack
deletes whole segments. When the ring is full the *oldest* segment is evicted: counted in
``overflow_frames`` and logged as an error every time (the receiver learns of it through ``oldest_seq``
and records a gap): never silent.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from neurolink.errors import ConfigError

log = logging.getLogger(__name__)


SPOOL_PREFIX = "nl-spool-"
LOCK_NAME = ".owner.lock"


def _take_lock(path: Path) -> int | None:
    """Open and exclusively flock ``path`` without blocking; the fd (lock held) or None if another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_stale_spools(root: str | Path | None = None) -> int:
    """Remove temporary spools left by senders that are gone, so a daemon killed now and then does not
    fill the disk with up to ``spool_mb`` per run (a spool is not re-read after a restart).

    A live spool holds an exclusive flock on its lock file for the sender's lifetime; the kernel drops it
    when the process dies however it dies, so a spool whose lock can be taken is stale. This holds across
    pid namespaces and pid reuse (a pid check does not). Folders without a lock file (another version, or
    one being created) are left alone. Never raises: a sweep must not stop a sender from starting."""
    removed = 0
    try:
        root = Path(root if root is not None else tempfile.gettempdir())
        for d in root.glob(f"{SPOOL_PREFIX}*"):
            try:
                if d.is_symlink() or not d.is_dir() or not (d / LOCK_NAME).is_file():
                    continue
                fd = _take_lock(d / LOCK_NAME)
                if fd is None:  # its sender is alive
                    continue
                try:
                    size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
                    shutil.rmtree(d)
                finally:
                    os.close(fd)
                removed += 1
                log.info("removed stale spool %s of a sender that is gone (%.1f MB unacknowledged)", d, size / 1e6)
            except OSError as exc:
                log.warning("stale spool %s not removed: %s", d, exc)
    except Exception as exc:  # noqa: BLE001 - a sweep must never stop a sender from starting
        log.warning("stale spool sweep skipped: %s", exc)
    return removed


@dataclass
class _Segment:
    path: Path
    fd: int
    first_seq: int
    offsets: list[int] = field(default_factory=lambda: [0])

    @property
    def count(self) -> int:
        return len(self.offsets) - 1

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.count

    @property
    def nbytes(self) -> int:
        return self.offsets[-1]


class Spool:
    """Ring of consecutive sequence numbers -> bytes, on disk; one per stream."""

    def __init__(self, directory: str | Path | None = None, *, capacity_bytes: int = 1 << 30,
                 segment_bytes: int = 8 << 20) -> None:
        if segment_bytes < 4096:
            raise ConfigError("reliable.segment_mb", f"segment of {segment_bytes} bytes is too small")
        if capacity_bytes < 2 * segment_bytes:
            raise ConfigError("reliable.spool_mb", f"capacity {capacity_bytes} bytes must hold at least two segments of {segment_bytes}")
        self._own_dir = directory is None
        self._lock_fd: int | None = None
        if directory is None:
            sweep_stale_spools()
            self.dir = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-"))
            self._lock_fd = _take_lock(self.dir / LOCK_NAME)  # held while this spool lives (see sweep_stale_spools)
        else:
            self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity_bytes
        self.segment_bytes = segment_bytes
        self._segs: list[_Segment] = []
        self._n = 0
        self.bytes = 0
        self.peak_bytes = 0
        self.overflow_frames = 0
        self.overflow_events = 0

    # -- queries -----------------------------------------------------------------------------------
    @property
    def oldest_seq(self) -> int | None:
        return self._segs[0].first_seq if self._segs else None

    @property
    def end_seq(self) -> int | None:
        """One past the newest stored sequence number."""
        return self._segs[-1].end_seq if self._segs else None

    @property
    def frames(self) -> int:
        return sum(s.count for s in self._segs)

    def __contains__(self, seq: int) -> bool:
        return bool(self._segs) and self._segs[0].first_seq <= seq < self._segs[-1].end_seq

    def get(self, seq: int) -> bytes | None:
        for s in self._segs:
            if s.first_seq <= seq < s.end_seq:
                i = seq - s.first_seq
                a, b = s.offsets[i], s.offsets[i + 1]
                return os.pread(s.fd, b - a, a)
        return None

    # -- updates -----------------------------------------------------------------------------------
    def append(self, seq: int, msg: bytes) -> None:
        last = self._segs[-1] if self._segs else None
        if last is not None and seq != last.end_seq:
            if seq < last.end_seq:
                raise ValueError(f"spool: sequence {seq} goes backwards (next is {last.end_seq})")
            log.warning("spool %s: sequence jumps from %d to %d", self.dir, last.end_seq, seq)
            last = None
        if last is None or last.nbytes + len(msg) > self.segment_bytes:
            last = self._new_segment(seq)
        while self.bytes + len(msg) > self.capacity and len(self._segs) > 1:
            self._evict_oldest()
        os.pwrite(last.fd, msg, last.nbytes)
        last.offsets.append(last.nbytes + len(msg))
        self.bytes += len(msg)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def release_below(self, seq: int) -> int:
        """Cumulative ack: drop every whole segment below ``seq``; returns frames released."""
        n = 0
        while self._segs and self._segs[0].end_seq <= seq:
            s = self._segs.pop(0)
            n += s.count
            self._drop(s)
        return n

    def close(self) -> None:
        for s in self._segs:
            self._drop(s)
        self._segs.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- internals ---------------------------------------------------------------------------------
    def _new_segment(self, seq: int) -> _Segment:
        self._n += 1
        p = self.dir / f"seg-{self._n:08d}-{seq}.spool"
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        s = _Segment(p, fd, seq)
        self._segs.append(s)
        return s

    def _evict_oldest(self) -> None:
        s = self._segs.pop(0)
        self.overflow_frames += s.count
        self.overflow_events += 1
        log.error("spool %s FULL (%d MB): evicted unacknowledged frames %d..%d (%d evicted so far): "
                  "they will be missing from the archive", self.dir, self.capacity >> 20, s.first_seq,
                  s.end_seq - 1, self.overflow_frames)
        self._drop(s)

    def _drop(self, s: _Segment) -> None:
        self.bytes -= s.nbytes
        os.close(s.fd)
        try:
            s.path.unlink()
        except FileNotFoundError:
            pass
