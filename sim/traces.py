"""Trace loaders (Pensieve two-column, Mahimahi packet opportunities, Akamai TSV) and THE scaling rule.

Every loader returns a :class:`Trace`: a piecewise-constant capacity schedule that loops, plus (Akamai
only) a one-way propagation delay schedule and a loss schedule. Formats are sniffed from content, so any
directory of such files works. A malformed file raises :class:`TraceError` naming the file and line.

Scaling rule (the only one; used by training, evaluation and the live link shaper):
    scale = k * stream_bps / median_1s(trace)
where ``median_1s`` is the median of the trace's throughput averaged over consecutive 1-second bins over
one period. The shape of the trace is kept; only its level moves. ``k`` comes from
``TRAIN_KS = (0.5, 1.0, 2.0)`` (drawn per training episode) and is swept over the same set in evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurolink.errors import NeurolinkError

log = logging.getLogger(__name__)

TRAIN_KS: tuple[float, ...] = (0.5, 1.0, 2.0)
EVAL_KS: tuple[float, ...] = (0.5, 1.0, 2.0)
MAHIMAHI_PACKET_BYTES = 1500
AKAMAI_STEP_S = 0.070
AKAMAI_HEADER = ["step", "latency_ms", "throughput_kbit_s", "gap_s", "loss_pct"]
TRACE_SUFFIXES_SKIPPED = {".md", ".json", ".rst", ".pdf", ".png", ".py", ".sh", ".zip", ".gz", ".tar"}


class TraceError(NeurolinkError, ValueError):
    """A trace file is malformed; the message names the file and the line."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"trace {where}: {message}")


@dataclass(frozen=True)
class Trace:
    """Piecewise-constant, looping link schedule. Times in seconds, rates in bit/s."""

    name: str
    path: str
    fmt: str  # "pensieve" | "mahimahi" | "akamai"
    t_s: np.ndarray  # segment start times, t_s[0] == 0, increasing
    rate_bps: np.ndarray  # capacity during each segment
    period_s: float  # the schedule loops after this
    delay_ms: np.ndarray | None = None  # one-way propagation delay per segment (Akamai)
    loss_windows: np.ndarray | None = field(default=None)  # (n, 3): start_s, end_s, loss prob (Akamai)
    loss_period_s: float = 0.0

    def capacity_ms(self, start_ms: int, n_ms: int, scale: float = 1.0) -> np.ndarray:
        """Bytes the link can carry in each millisecond [start_ms, start_ms + n_ms), looping."""
        return self.rate_bps[self._segments(start_ms, n_ms)] * (scale / 8000.0)

    def prop_delay_ms(self, start_ms: int, n_ms: int, default_ms: float) -> np.ndarray:
        if self.delay_ms is None:
            return np.full(n_ms, float(default_ms))
        return self.delay_ms[self._segments(start_ms, n_ms)].astype(np.float64)

    def loss_prob_ms(self, start_ms: int, n_ms: int) -> np.ndarray | None:
        """Per-ms loss probability from the trace's own loss schedule, or None if it has none."""
        if self.loss_windows is None:
            return None
        out = np.zeros(n_ms)
        period_ms = int(round(self.loss_period_s * 1000))
        if period_ms <= 0 or len(self.loss_windows) == 0:
            return out
        t = (start_ms + np.arange(n_ms)) % period_ms
        starts = np.round(self.loss_windows[:, 0] * 1000).astype(np.int64)
        ends = np.round(self.loss_windows[:, 1] * 1000).astype(np.int64)
        i = np.searchsorted(starts, t, side="right") - 1
        ok = i >= 0
        inside = ok & (t < ends[np.maximum(i, 0)])
        out[inside] = self.loss_windows[i[inside], 2]
        return out

    def _segments(self, start_ms: int, n_ms: int) -> np.ndarray:
        period_ms = max(1, int(round(self.period_s * 1000)))
        t = ((start_ms + np.arange(n_ms)) % period_ms) / 1000.0
        return np.searchsorted(self.t_s, t, side="right") - 1

    def median_1s_bps(self) -> float:
        """Median of the throughput averaged over 1 s bins over one period (the scaling rule's statistic)."""
        n_ms = max(1000, int(round(self.period_s * 1000)))
        cap = self.capacity_ms(0, (n_ms // 1000) * 1000 or 1000) * 8000.0
        bins = cap.reshape(-1, 1000).mean(axis=1)
        med = float(np.median(bins))
        return med if med > 0 else float(bins.mean())

    def scale_for(self, stream_bps: float, k: float) -> float:
        """THE scaling rule: multiply capacities by this so the 1 s median equals k x stream_bps."""
        med = self.median_1s_bps()
        if med <= 0:
            raise TraceError(self.path, None, "trace carries no data at all (zero throughput everywhere)")
        return k * stream_bps / med


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError:
        raise TraceError(path, None, "not a text file") from None
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror}") from None


def _fields(line: str) -> list[str]:
    """Columns split on whitespace, commas or semicolons (CSV exports of two-column traces)."""
    return line.replace(",", " ").replace(";", " ").split()


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _load_pensieve(path: Path, lines: list[str]) -> Trace:
    ts: list[float] = []
    rs: list[float] = []
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = _fields(line)
        if no - 1 == first and not any(_is_number(p) for p in parts):
            continue  # a column-name header ("time_s,throughput_mbps")
        if len(parts) != 2:
            raise TraceError(path, no, f"expected 2 columns time_s<TAB>throughput_Mbit_s, got {len(parts)}")
        try:
            t, r = float(parts[0]), float(parts[1])
        except ValueError:
            raise TraceError(path, no, f"not a number in {line.strip()!r}") from None
        if not (np.isfinite(t) and np.isfinite(r)) or r < 0:
            raise TraceError(path, no, f"throughput must be finite and >= 0, got {parts[1]!r}")
        if ts and t < ts[-1]:
            raise TraceError(path, no, f"time goes backwards ({t} after {ts[-1]})")
        ts.append(t)
        rs.append(r)
    if len(ts) < 2:
        raise TraceError(path, None, "needs at least 2 samples")
    tr = np.asarray(ts) - ts[0]
    dt = np.diff(tr)
    step = float(np.median(dt[dt > 0])) if np.any(dt > 0) else 1.0
    keep = np.concatenate([[True], dt > 0])  # repeated timestamps: keep the first
    return Trace(path.name, str(path), "pensieve", tr[keep], np.asarray(rs)[keep] * 1e6, float(tr[-1] + step))


def _load_mahimahi(path: Path, lines: list[str]) -> Trace:
    ms = np.empty(len(lines), np.int64)
    n = 0
    prev = -1
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        try:
            v = int(s)
        except ValueError:
            raise TraceError(path, no, f"expected an integer millisecond timestamp, got {s!r}") from None
        if v < 0 or v < prev:
            raise TraceError(path, no, f"timestamps must be non-negative and non-decreasing ({v} after {prev})")
        ms[n] = v
        n += 1
        prev = v
    if n == 0:
        raise TraceError(path, None, "empty trace")
    period = max(int(ms[n - 1]), 1)
    counts = np.bincount(ms[:n] % period, minlength=period).astype(np.float64)  # the trace loops at its end
    rate = counts * MAHIMAHI_PACKET_BYTES * 8 * 1000.0  # bit/s during that ms
    return Trace(path.name, str(path), "mahimahi", np.arange(period) / 1000.0, rate, period / 1000.0)


def _load_akamai(path: Path, lines: list[str]) -> Trace:
    head = lines[0].split()
    if head != AKAMAI_HEADER:
        raise TraceError(path, 1, f"expected header {' '.join(AKAMAI_HEADER)!r}, got {lines[0]!r}")
    lat, thr, gaps, losses = [], [], [], []
    for no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 5:
            raise TraceError(path, no, f"expected 5 columns, got {len(parts)}")
        try:
            vals = [float("nan") if p == "NA" else float(p) for p in parts]
        except ValueError:
            raise TraceError(path, no, f"not a number (or NA) in {line.strip()!r}") from None
        _, la, th, gap, lp = vals
        if np.isnan(la) or np.isnan(th) or np.isnan(gap):
            log.debug("%s:%d: NA row kept out of the schedule", path, no)
            continue
        if la < 0 or th < 0 or gap < 0 or not 0 <= lp <= 100:
            raise TraceError(path, no, "latency, throughput and gap must be >= 0 and loss_pct in [0, 100]")
        lat.append(la)
        thr.append(th)
        gaps.append(gap)
        losses.append(lp)
    if not thr:
        raise TraceError(path, None, "no data rows")
    n = len(thr)
    t = np.arange(n) * AKAMAI_STEP_S
    # Loss as the emulation script replays it: wait gap_s without loss, apply loss_pct for one 70 ms step.
    windows, now = [], 0.0
    for gap, lp in zip(gaps, losses, strict=True):
        if gap >= 1e4:  # 99999 = "never" in the source
            continue
        now += gap
        if lp > 0:
            windows.append((now, now + AKAMAI_STEP_S, lp / 100.0))
        now += AKAMAI_STEP_S
    lw = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    return Trace(
        path.name, str(path), "akamai", t, np.asarray(thr) * 1e3, n * AKAMAI_STEP_S,
        delay_ms=np.asarray(lat) / 2.0, loss_windows=lw, loss_period_s=max(now, AKAMAI_STEP_S),
    )


def load_trace(path: str | Path) -> Trace:
    """Load one trace file, sniffing its format from the content."""
    p = Path(path)
    lines = _read_lines(p)
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise TraceError(p, None, "empty file")
    if first.split()[0] == "step":
        return _load_akamai(p, [ln for ln in lines if ln.strip()])
    ncol = len(_fields(first))
    if ncol == 1:
        return _load_mahimahi(p, lines)
    if ncol == 2:
        return _load_pensieve(p, lines)
    line_no = lines.index(first) + 1
    raise TraceError(p, line_no, f"unknown format: {ncol} columns (expected 1 Mahimahi, 2 Pensieve, or Akamai header)")


def _is_trace_candidate(f: Path) -> bool:
    name = f.name.lower()
    if name.startswith((".", "readme", "license", "sha256sums", "md5sums", "provenance")):
        return False
    return f.suffix.lower() not in TRACE_SUFFIXES_SKIPPED


def trace_files(sources: str | Path | list | tuple) -> list[Path]:
    """Expand directories (recursively: a folder of trace families works) and files into a sorted list of
    trace files; READMEs, licences, checksums and JSON are skipped."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and _is_trace_candidate(f)
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            out.append(p)
        else:
            raise TraceError(p, None, "no such file or directory")
    if not out:
        raise TraceError(", ".join(map(str, items)), None, "no trace files found")
    return out


def load_traces(sources: str | Path | list | tuple) -> list[Trace]:
    """Every trace under ``sources``. A file named directly must load; in a directory, a file that is not a
    trace (notes, other formats) is skipped with one warning naming it and the line, and the rest load."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    named = {Path(it).resolve() for it in items if Path(it).is_file()}
    out: list[Trace] = []
    skipped: list[str] = []
    for f in trace_files(sources):
        try:
            out.append(load_trace(f))
        except TraceError as exc:
            if f.resolve() in named:
                raise
            skipped.append(str(exc))
            log.warning("skipping %s", exc)
    if not out:
        raise TraceError(", ".join(map(str, items)), None,
                         f"no loadable trace files ({len(skipped)} skipped: {'; '.join(skipped[:3])})")
    return out
