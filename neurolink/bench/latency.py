"""``neurolink bench latency``: the latency neurolink ADDS on loopback, per transport and channel count.

Set-up per run: this process publishes an LSL source (real tetrode data, channels tiled with a
time shift per copy, played at 30 kHz in 1 ms chunks; synthetic if ../shared is missing). The sender
and the receiver run as separate processes (``neurolink.bench._latency_worker``) with the ladder's
level 0 (lossless) over ZeroMQ or MQTT QoS 0 (a mosquitto started here). Two LSL inlets in this
process read, side by side, the source directly and the receiver's republished stream. For every
sample, added latency = its arrival at the republished inlet minus its arrival at the direct inlet,
so liblsl's own hop and this machine's scheduling cancel out. CPU is read with psutil from the
worker processes over the streaming interval (a fraction of one core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from tqdm import tqdm

from neurolink.lsl import make_info, pylsl
from neurolink.netutil import free_port
from neurolink.runtime import PM_QOS_DEVICE, CpuWakeupLatency, set_realtime_priority
from neurolink.sources.lsl_inlet import ChunkPuller

FS = 30000.0
FRAME = 30  # samples per 1 ms chunk / frame


# -- source data -------------------------------------------------------------------------------------

def base_block(channels: int, n: int = 60000) -> tuple[np.ndarray, str]:
    """``n`` samples x ``channels`` int16, looped by the outlet. Real data when available."""
    from neurolink.data import default_recording

    path = default_recording()
    if path is not None:
        x = np.load(path, mmap_mode="r")[:n].astype(np.int16)
        what = f"{path.stem} ({x.shape[1]} ch) tiled to {channels} ch (time-shifted copies), played at 30 kHz"
    else:
        from neurolink.sources.synthetic import synthetic_recording

        x = synthetic_recording(n, 16, FS, seed=7)
        what = f"synthetic 16 ch tiled to {channels} ch (time-shifted copies)"
    reps = -(-channels // x.shape[1])
    cols = [np.roll(x, 997 * j, axis=0) for j in range(reps)]
    return np.ascontiguousarray(np.concatenate(cols, axis=1)[:, :channels]), what


# -- measuring inlets ---------------------------------------------------------------------------------

class StealSampler:
    """Reads the machine's steal counter (/proc/stat) every ``period_s`` in a thread, on the LSL clock.

    Why: in a VM the hypervisor now and then runs other guests on our CPUs. A 10 s run in which it takes
    a few tens of ms shows a p99 of 10-140 ms whatever neurolink does (docs/transports.md). Knowing when
    it happened lets the bench report the tail of the seconds in which it did not, beside the raw p99."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.times: list[float] = []
        self.steal: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return len(self.steal) > 1

    def start(self) -> StealSampler:
        if steal_jiffies() is not None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="steal-sampler")
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            v = steal_jiffies()
            if v is None:
                return
            self.times.append(pylsl.local_clock())
            self.steal.append(v)
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def clean(self, t0: float, t1: float) -> bool:
        """True if no steal was counted in [t0, t1], judged from the samples just outside it."""
        t, v = np.asarray(self.times), np.asarray(self.steal)
        i = int(np.searchsorted(t, t0, side="right")) - 1
        j = int(np.searchsorted(t, t1, side="left"))
        if i < 0 or j >= t.size:  # the window is not covered by samples on both sides
            return False
        return bool(v[j] == v[i])


@dataclass
class Probe:
    """Reads one LSL stream in a thread; records each chunk's arrival time and timestamps."""

    inlet: Any
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    col0: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Probe:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        # One liblsl call per chunk into reused buffers, the arrival stamped right after it returns: the
        # probe itself must cost little (it shares the machine with both daemons) and time both streams
        # alike. Pulls wait for whole 1 ms chunks (both streams are pushed in 30-sample chunks), so a
        # chunk that liblsl hands over sample by sample is not timed at its first sample on one stream
        # and at its last on the other.
        clock = pylsl.local_clock
        puller = ChunkPuller(self.inlet, 4096)
        while not self.stop.is_set():
            try:
                n = puller.pull(0.1, FRAME - self.count % FRAME)
            except pylsl.util.LostError:  # the receiver process ended: nothing more will come
                return
            t = clock()
            if n == 0:
                continue
            self.arrivals.append((t, n))
            self.ts.append(puller.ts[:n].copy())
            self.col0.append(puller.data[:n, 0].copy())
            self.count += n

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(2)

    def per_sample_arrival(self) -> np.ndarray:
        if not self.arrivals:
            return np.empty(0)
        a = np.array(self.arrivals)
        return np.repeat(a[:, 0], a[:, 1].astype(np.int64))


def _open_inlet(predicate: str, timeout: float) -> Any:
    found = pylsl.resolve_bypred(predicate, 1, timeout)
    if not found:
        raise RuntimeError(f"no LSL stream matched {predicate} within {timeout:g} s")
    inlet = pylsl.StreamInlet(found[0], max_buflen=30, recover=False, processing_flags=0)
    inlet.open_stream(timeout=timeout)
    return inlet


# -- one run ------------------------------------------------------------------------------------------

def _transport_config(kind: str, broker: Any, sid: str) -> dict[str, Any]:
    if kind == "zmq":
        return {"kind": "zmq", "data": f"tcp://127.0.0.1:{free_port()}", "feedback": f"tcp://127.0.0.1:{free_port()}"}
    return {"kind": "mqtt", "host": broker.host, "port": broker.port, "prefix": f"nlbench/{sid}", "qos": 0}


def _worker(role: str, cfg: dict[str, Any], out: Path, *, inline: bool = False, **kw: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "neurolink.bench._latency_worker", role, "--transport", json.dumps(cfg), "--out", str(out)]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    if inline:
        cmd.append("--archive-inline")
    return subprocess.Popen(cmd)


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return float("nan")


def _rss_mb(p: psutil.Process) -> float:
    try:
        return p.memory_info().rss / 1e6
    except psutil.Error:
        return float("nan")


def run_one(kind: str, channels: int, seconds: float, warmup: float, broker: Any, tmp: Path,
            encrypted: bool = False, archive: str = "off") -> dict[str, Any]:
    block, _ = base_block(channels)
    sid = f"nlbench-{uuid.uuid4().hex[:10]}"
    n_total = int(round((warmup + seconds) * FS / FRAME)) * FRAME
    info = make_info("nl-bench", "Extracellular", channels, FS, "int16", sid)
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=30)
    cfg = _transport_config(kind, broker, sid)
    rx_out, tx_out = tmp / f"{sid}-rx.json", tmp / f"{sid}-tx.json"
    timeout = warmup + seconds + 60
    extra: dict[str, Any] = {}
    if encrypted:
        from neurolink.security.keys import Keyring, generate_key, write_keyring

        extra["keys"] = write_keyring(tmp / f"{sid}-keys.toml", Keyring({1: generate_key()}, 1))
    if archive != "off":  # both daemons archive on the reliable path (worker threads; "inline": on the loop)
        extra["archive"] = tmp / f"{sid}-archive"
    inline = archive == "inline"
    rx_p = _worker("receiver", cfg, rx_out, timeout=timeout, inline=inline, **extra)
    tx_p = _worker("sender", cfg, tx_out, source_id=sid, samples=n_total, timeout=timeout, inline=inline, **extra)
    direct = rep = None
    sampler = StealSampler()
    try:
        direct = Probe(_open_inlet(f"source_id='{sid}'", 30)).start()
        rep = Probe(_open_inlet(f"source_id='{sid}@neurolink'", 60)).start()  # appears once the header arrives
        time.sleep(0.3)
        procs = [psutil.Process(tx_p.pid), psutil.Process(rx_p.pid)]
        cpu0 = [_cpu(p) for p in procs]
        steal0 = steal_jiffies()
        sampler = StealSampler().start()
        w0 = time.monotonic()
        t0 = pylsl.local_clock() + 0.01
        i = 0
        while i < n_total:  # paced by the timestamps, like an acquisition device
            j = i + FRAME
            t_last = t0 + (j - 1) / FS
            d = t_last - pylsl.local_clock()
            if d > 0:
                time.sleep(d)
            k = i % block.shape[0]
            outlet.push_chunk(block[k:k + FRAME], timestamp=t_last)
            i = j
        cpu1 = [_cpu(p) for p in procs]
        wall = time.monotonic() - w0
        steal1 = steal_jiffies()
        rss = [_rss_mb(p) for p in procs]
        end = time.monotonic() + 10
        while rep.count < n_total and time.monotonic() < end:
            time.sleep(0.05)
        sampler.stop()
        for p in (tx_p, rx_p):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.terminate()  # the workers write their counters on SIGTERM too
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    finally:
        sampler.stop()
        for pr in (direct, rep):
            if pr is not None:
                pr.close()
        for p in (tx_p, rx_p):
            if p.poll() is None:
                p.kill()
                p.wait()
    tx = json.loads(tx_out.read_text()) if tx_out.exists() else {}
    rx = json.loads(rx_out.read_text()) if rx_out.exists() else {}
    res = _analyse(kind, channels, seconds, warmup, direct, rep, n_total, tx, rx, cpu0, cpu1, wall)
    res.update(steal_free_tail(direct, rep, warmup, sampler))
    res["encrypted"] = encrypted
    res["archive"] = archive
    if encrypted:
        from neurolink.security.aead import FrameCipher

        res["aead"] = FrameCipher(bytes(32), 1).algorithm  # what the workers' "auto" picks on this machine
    res["sender_rss_mb"], res["receiver_rss_mb"] = rss
    # CPU time the hypervisor gave to others while this run streamed, as a fraction of the machine:
    # a run with steal says more about the host than about neurolink (docs/transports.md)
    res["host_steal_fraction"] = (None if steal0 is None or steal1 is None or wall <= 0 else
                                  (steal1 - steal0) / os.sysconf("SC_CLK_TCK") / (wall * (os.cpu_count() or 1)))
    return res


def steal_jiffies() -> int | None:
    """Total steal time of all CPUs from /proc/stat (clock ticks), None where the kernel does not count it."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])  # cpu user nice system idle iowait irq softirq steal
    except (OSError, IndexError, ValueError):
        return None


def steal_free_tail(direct: Probe, rep: Probe, warmup: float, sampler: StealSampler) -> dict[str, Any]:
    """p99 of the added latency over the 1 s windows in which the host stole no CPU time.

    A window runs from the first sample's arrival at the direct inlet to the last one's at the
    republished inlet, so a stall that delays any of its samples anywhere on the path counts."""
    a_d, a_r = direct.per_sample_arrival(), rep.per_sample_arrival()
    n = min(a_d.size, a_r.size)
    skip = int(warmup * FS)
    if not sampler.available or n < skip + FS:
        return {"added_latency_p99_steal_free_ms": None, "steal_free_seconds": None, "measured_seconds": None}
    idx = np.array_split(np.arange(skip, n), max(1, int((n - skip) // FS)))
    clean = [w for w in idx if sampler.clean(a_d[w[0]], a_r[w[-1]])]
    keep = np.concatenate(clean) if clean else np.empty(0, np.int64)
    added = (a_r[keep] - a_d[keep]) * 1000.0
    return {"added_latency_p99_steal_free_ms": float(np.percentile(added, 99)) if added.size else None,
            "steal_free_seconds": len(clean), "measured_seconds": len(idx)}


def _analyse(kind, channels, seconds, warmup, direct: Probe, rep: Probe, n_total, tx, rx, cpu0, cpu1, wall) -> dict[str, Any]:
    a_d, a_r = direct.per_sample_arrival(), rep.per_sample_arrival()
    n = min(a_d.size, a_r.size)
    skip = int(warmup * FS)
    added = (a_r[skip:n] - a_d[skip:n]) * 1000.0
    ts_d = np.concatenate(direct.ts)[:n] if direct.ts else np.empty(0)
    ts_r = np.concatenate(rep.ts)[:n] if rep.ts else np.empty(0)
    v_d = np.concatenate(direct.col0)[:n] if direct.col0 else np.empty(0)
    v_r = np.concatenate(rep.col0)[:n] if rep.col0 else np.empty(0)
    pct = (lambda q: float(np.percentile(added, q))) if added.size else (lambda q: float("nan"))
    span = float(a_r[n - 1] - a_r[skip]) if n > skip + 1 else float("nan")
    tput = (n - skip) / span if span > 0 else float("nan")  # over the measured window, after the warm-up
    return {
        "transport": kind, "channels": channels, "fs": FS, "encrypted": False,
        "added_latency_ms": {"p50": pct(50), "p99": pct(99), "p999": pct(99.9)},
        "frames_sent": int(tx.get("frames_sent", 0)), "frames_lost": int(rx.get("frames_lost", 0)),
        "sender_cpu": (cpu1[0] - cpu0[0]) / wall, "receiver_cpu": (cpu1[1] - cpu0[1]) / wall,
        # extras
        "seconds": seconds, "warmup_s": warmup, "frame_ms": FRAME / FS * 1000, "codec_level": 0,
        "added_latency_mean_ms": float(added.mean()) if added.size else float("nan"),
        "added_latency_last_1s_p50_ms": float(np.median(added[-int(FS):])) if added.size else float("nan"),
        "keeps_up": bool(n == n_total and tput >= 0.98 * FS),  # delivered everything at the source's pace
        "added_latency_max_ms": float(added.max()) if added.size else float("nan"),
        # the p99 of a typical second (median over 1 s windows): a VM stall of 100 ms anywhere in a 10 s run
        # sets the run's p99 by itself; this shows the tail when the machine is not stalled
        "added_latency_p99_typical_1s_ms": (float(np.median([np.percentile(w, 99) for w in np.array_split(added, max(1, int(added.size // FS)))]))
                                            if added.size else float("nan")),
        # sustained runs: p99 per 10 s window, to see drift or a backlog building up
        "added_latency_p99_per_10s_ms": [float(np.percentile(w, 99)) for w in np.array_split(added, max(1, int(added.size // (10 * FS)))) if w.size],
        "samples_pushed": n_total, "samples_direct": direct.count, "samples_republished": rep.count,
        "samples_measured": int(added.size),
        "values_match_ch0": bool(n == n_total and np.array_equal(v_d, v_r)),
        "timestamp_max_diff_us": float(np.max(np.abs(ts_r - ts_d)) * 1e6) if n else float("nan"),
        "throughput_samples_per_s": tput, "throughput_raw_mbps": tput * channels * 16 / 1e6,
        "wire_mbps": 8 * tx.get("wire_bytes", 0) / wall / 1e6 if wall else float("nan"),
        "compression_ratio": tx.get("ratio"),
        "frames_dropped_sender": int(tx.get("dropped_queue", 0)) + int(tx.get("frames_dropped_transport", 0)),
        "source_chunks_dropped": int(tx.get("dropped_source_chunks", 0)),  # sender fell behind its LSL inlet
        "frames_undecodable": int(rx.get("frames_undecodable", 0)),
        "encode_us_p50": tx.get("encode_us_p50"), "encode_us_p99": tx.get("encode_us_p99"),
        "sender_transport": tx.get("transport"), "receiver_transport": rx.get("transport"),
    }


def _failed(kind: str, channels: int, error: str) -> dict[str, Any]:
    nan = float("nan")
    return {"transport": kind, "channels": channels, "fs": FS, "encrypted": False,
            "added_latency_ms": {"p50": nan, "p99": nan, "p999": nan}, "frames_sent": 0, "frames_lost": 0,
            "sender_cpu": nan, "receiver_cpu": nan, "samples_measured": 0, "values_match_ch0": False,
            "throughput_samples_per_s": nan, "throughput_raw_mbps": nan, "error": error}


# -- reporting ----------------------------------------------------------------------------------------

def _name(r: dict[str, Any]) -> str:
    arch = {"off": "", "background": "+arch", "inline": "+arch-inline"}[r.get("archive", "off")]
    return r["transport"] + ("+aead" if r.get("encrypted") else "") + arch


def print_table(runs: list[dict[str, Any]]) -> None:
    hdr = (f"{'transport':<9} {'ch':>5} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'frames':>7} {'lost':>5} "
           f"{'tx cpu':>7} {'rx cpu':>7} {'kS/s':>7} {'Mbit/s raw':>10} {'exact':>6} {'steal':>6} {'p99 no-steal':>15}")
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        a = r["added_latency_ms"]
        name = _name(r)
        print(f"{name:<9} {r['channels']:>5} {a['p50']:>8.3f} {a['p99']:>8.3f} {a['p999']:>9.3f} "
              f"{r['frames_sent']:>7} {r['frames_lost']:>5} {r['sender_cpu']:>6.0%} {r['receiver_cpu']:>6.0%} "
              f"{r['throughput_samples_per_s'] / 1000:>7.1f} {r['throughput_raw_mbps']:>10.1f} "
              f"{'yes' if r['values_match_ch0'] else 'NO':>6} {_pct(r.get('host_steal_fraction')):>6} {_clean(r):>15}")
    print("added latency = arrival at an LSL inlet on the republished stream minus arrival of the same sample at a "
          "direct inlet on the source; cpu = fraction of one core; steal = the machine's CPU time the hypervisor "
          "took while the run streamed; p99 no-steal = over the 1 s windows without steal (how many of them)")
    for r in runs:  # sustained runs: does the tail stay put over time?
        w = r.get("added_latency_p99_per_10s_ms") or []
        if len(w) > 1:
            name = _name(r)
            print(f"{name} {r['channels']} ch p99 per 10 s (ms): " + " ".join(f"{v:.2f}" for v in w)
                  + f"; rss tx {r.get('sender_rss_mb', float('nan')):.0f} MB rx {r.get('receiver_rss_mb', float('nan')):.0f} MB")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _clean(r: dict[str, Any]) -> str:
    v = r.get("added_latency_p99_steal_free_ms")
    return "-" if v is None else f"{v:.3f} ({r['steal_free_seconds']}/{r['measured_seconds']})"


def aead_cost(channels: int, frames: int = 3000) -> dict[str, Any]:
    """What end-to-end encryption adds to each frame's critical path, measured without the pipeline.

    Encryption puts exactly two steps on a frame's path: the sender seals instead of packing, the receiver
    opens instead of parsing (CRC). Both are timed here on the same real level-0 payloads, back to back in
    one process, so a VM's scheduling stalls (which move the end-to-end p99 by more than AEAD costs) do not
    enter; ``added_us`` = p50/p99 of (seal + open) minus (pack + parse)."""
    from neurolink.codecs import get_codec, load_ladder
    from neurolink.security.keys import Keyring, generate_key
    from neurolink.wire import format as wire

    block, _ = base_block(channels, n=frames * FRAME)
    codec = get_codec(load_ladder()[0])
    payloads = [codec.encode(block[i:i + FRAME]) for i in range(0, frames * FRAME, FRAME)]
    kr = Keyring({1: generate_key()}, 1)
    sealer, opener = kr.cipher(role="sender"), kr.cipher(role="receiver")
    clock = time.perf_counter_ns
    plain = np.empty(frames)
    sealed = np.empty(frames)
    for i, pl in enumerate(payloads):
        t0 = clock()
        wire.parse_frame(wire.pack_frame(1, i, 100.0 + i / 1000, FRAME, channels, "int16", 0, pl, 0))
        t1 = clock()
        opener.open_parsed(sealer.seal_frame(1, i, 100.0 + i / 1000, FRAME, channels, "int16", 0, pl, 0))
        t2 = clock()
        plain[i], sealed[i] = (t1 - t0) / 1000.0, (t2 - t1) / 1000.0
    warm = slice(frames // 10, None)
    q = {k: (float(np.percentile(plain[warm], k)), float(np.percentile(sealed[warm], k))) for k in (50, 99)}
    return {"channels": channels, "aead": sealer.algorithm, "payload_bytes_mean": float(np.mean([len(p) for p in payloads])),
            "plain_us": {"p50": q[50][0], "p99": q[99][0]}, "sealed_us": {"p50": q[50][1], "p99": q[99][1]},
            "added_us": {"p50": q[50][1] - q[50][0], "p99": q[99][1] - q[99][0]}}


MIN_CLEAN_SECONDS = 3  # a run's steal-free p99 counts in the summary when it covers at least this many seconds


def _clean_p99(run: dict[str, Any]) -> float | None:
    v = run.get("added_latency_p99_steal_free_ms")
    return v if v is not None and (run.get("steal_free_seconds") or 0) >= MIN_CLEAN_SECONDS else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeated runs per configuration, and what encryption adds to p99.

    The encryption figure pairs each encrypted run with the plain ZeroMQ run of the same channel count
    and repeat (made back to back), takes the ratio of their p99s, and reports the median ratio and its
    spread: a VM's tail latency drifts between runs by more than AEAD costs, so one pair says little.
    The same ratio of the p99 over the seconds in which the hypervisor took no CPU time (see
    :func:`steal_free_tail`) is reported apart: host steal moved single runs' p99 from ~2.5 to ~140 ms here."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r.get("samples_measured", 0) > 0:
            groups.setdefault(f"{r['transport']}{'+aead' if r.get('encrypted') else ''}/{r['channels']}", []).append(r)
    out: dict[str, Any] = {"median": {}, "encryption_p99_overhead": {}}
    for key, rs in groups.items():
        out["median"][key] = {q: float(np.median([r["added_latency_ms"][q] for r in rs])) for q in ("p50", "p99", "p999")}
        out["median"][key]["p99_typical_1s"] = float(np.median([r.get("added_latency_p99_typical_1s_ms", np.nan) for r in rs]))
        clean = [v for v in map(_clean_p99, rs) if v is not None]
        out["median"][key]["p99_steal_free"] = float(np.median(clean)) if clean else None
        out["median"][key]["steal_free_runs"] = len(clean)
        out["median"][key]["runs"] = len(rs)
        out["median"][key]["frames_lost"] = int(sum(r["frames_lost"] for r in rs))
    plain = {(r["channels"], r.get("repeat")): r for r in runs
             if r["transport"] == "zmq" and not r.get("encrypted") and r.get("samples_measured", 0) > 0}
    for r in runs:
        if not (r.get("encrypted") and r.get("samples_measured", 0) > 0):
            continue
        p = plain.get((r["channels"], r.get("repeat")))
        if p is not None and p["added_latency_ms"]["p99"] > 0:
            out["encryption_p99_overhead"].setdefault(str(r["channels"]), []).append(
                r["added_latency_ms"]["p99"] / p["added_latency_ms"]["p99"] - 1.0)
            t_enc, t_plain = r.get("added_latency_p99_typical_1s_ms"), p.get("added_latency_p99_typical_1s_ms")
            if t_enc and t_plain:
                out.setdefault("encryption_p99_typical_1s_overhead", {}).setdefault(str(r["channels"]), []).append(t_enc / t_plain - 1.0)
            c_enc, c_plain = _clean_p99(r), _clean_p99(p)
            if c_enc and c_plain:  # the tails of the seconds in which the host took no CPU time
                out.setdefault("encryption_p99_steal_free_overhead", {}).setdefault(str(r["channels"]), []).append(
                    c_enc / c_plain - 1.0)
    for name in ("encryption_p99_overhead", "encryption_p99_typical_1s_overhead", "encryption_p99_steal_free_overhead"):
        for ch, ratios in list(out.get(name, {}).items()):
            a = np.array(ratios)
            out[name][ch] = {"median": float(np.median(a)), "p25": float(np.percentile(a, 25)),
                             "p75": float(np.percentile(a, 75)), "pairs": a.tolist()}
    return out


def print_summary(summary: dict[str, Any]) -> None:
    print("medians over repeats:")
    for key, m in summary["median"].items():
        print(f"  {key:<14} p50 {m['p50']:.3f}  p99 {m['p99']:.3f}  p99.9 {m['p999']:.3f} ms  "
              f"p99 of a typical second {m['p99_typical_1s']:.3f} ms  ({m['runs']} runs, {m['frames_lost']} frames lost)")
        if m.get("p99_steal_free") is not None:
            print(f"  {'':<14} p99 {m['p99_steal_free']:.3f} ms over the seconds without host steal "
                  f"({m['steal_free_runs']} runs with >= {MIN_CLEAN_SECONDS} such seconds)")
    for name, what in (("encryption_p99_overhead", "p99"), ("encryption_p99_typical_1s_overhead", "a typical second's p99"),
                       ("encryption_p99_steal_free_overhead", "the p99 of seconds without host steal")):
        for ch, o in summary.get(name, {}).items():
            print(f"encryption adds {o['median']:+.1%} to {what} at {ch} ch (median of {len(o['pairs'])} back-to-back "
                  f"pairs; quartiles {o['p25']:+.1%} .. {o['p75']:+.1%})")


def plot(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{r['transport']}\n{r['channels']} ch" for r in runs]
    x = np.arange(len(runs))
    for k, (q, c) in enumerate((("p50", "tab:blue"), ("p99", "tab:orange"), ("p999", "tab:red"))):
        ax.bar(x + (k - 1) * 0.27, [max(r["added_latency_ms"][q], 1e-3) for r in runs], 0.27, label=q, color=c)
    ax.set_xticks(x, labels)
    ax.set_yscale("log")
    ax.set_ylabel("added latency (ms)")
    ax.set_title("neurolink added latency on loopback, 30 kHz, 1 ms frames, lossless")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neurolink bench latency", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds streamed before measuring (default 2: covers start-up, e.g. liblsl clock sync)")
    ap.add_argument("--channels", type=lambda s: [int(c) for c in s.split(",")], default=[64, 256, 1024],
                    help="comma-separated channel counts (default 64,256,1024)")
    ap.add_argument("--transports", type=lambda s: s.split(","), default=["zmq", "mqtt"],
                    help="comma-separated: zmq, mqtt (default both)")
    ap.add_argument("--json", help="write results as JSON here")
    ap.add_argument("--png", help="write a latency chart here")
    ap.add_argument("--quick", action="store_true", help="short smoke run (16 ch, 1 s)")
    ap.add_argument("--no-encrypted", dest="encrypted", action="store_false",
                    help="skip the encrypted ZeroMQ runs (end-to-end AEAD, the [security] default 'auto'; on by default)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run every configuration N times, interleaved round-robin so slow drifts of the machine hit "
                         "all alike; the summary gives medians over the repeats and the encrypted/plain p99 ratio of "
                         "runs made back to back (single runs' tails vary by more than the effect of encryption)")
    ap.add_argument("--archive", choices=["off", "background", "inline"], default="off",
                    help="every run also archives losslessly on the reliable path (spool + Zarr archive in a temporary "
                         "folder), as the daemons do ('background': worker threads); 'inline' codes the archive blocks "
                         "on the event loops instead, for comparison")
    ap.add_argument("--realtime", type=int, default=0, metavar="PRIO",
                    help="run the bench and both daemons at SCHED_FIFO priority PRIO (Linux, root or CAP_SYS_NICE): "
                         "on a machine shared with other work, so their load does not dominate the tails; 0 = off")
    ap.add_argument("--cpu-wakeup-latency", type=int, default=-1, metavar="US",
                    help="hold idle CPUs to this wake-up latency for the whole bench (PM QoS, /dev/cpu_dma_latency, "
                         "root), as the daemons' runtime.cpu_wakeup_latency_us does; 0 = idle CPUs poll (in a VM a "
                         "halted vCPU can take tens of ms to wake); -1 = off")
    args = ap.parse_args(argv)
    if not 0 <= args.realtime <= 99:
        print(f"error: --realtime must be 0 (off) or a SCHED_FIFO priority 1..99, got {args.realtime}")
        return 2
    if not -1 <= args.cpu_wakeup_latency <= 1_000_000:
        print(f"error: --cpu-wakeup-latency must be -1 (off) or 0..1000000 us, got {args.cpu_wakeup_latency}")
        return 2
    with CpuWakeupLatency(args.cpu_wakeup_latency, key="--cpu-wakeup-latency") as qos:
        if args.cpu_wakeup_latency >= 0 and not qos.held:
            print(f"error: --cpu-wakeup-latency {args.cpu_wakeup_latency}: {PM_QOS_DEVICE} refused the request (root?)")
            return 2
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    # inherited by the worker processes (and mosquitto) started below
    if args.realtime and not set_realtime_priority(args.realtime, key="--realtime"):
        print(f"error: --realtime {args.realtime}: cannot switch to SCHED_FIFO (see the warning above)")
        return 2
    if args.quick:
        args.seconds, args.warmup, args.channels = 1.0, 1.5, [16]
    bad = [t for t in args.transports if t not in ("zmq", "mqtt")]
    if bad or args.seconds <= 0 or any(not 1 <= c <= 4096 for c in args.channels) or args.repeat < 1:
        print(f"error: transports must be zmq/mqtt (got {bad}), --seconds > 0, channels in [1, 4096], --repeat >= 1")
        return 2
    broker = None
    if "mqtt" in args.transports:
        from neurolink.testing_broker import MosquittoBroker, find_mosquitto

        if find_mosquitto() is None:
            print("mosquitto not found: skipping the MQTT runs")
            args.transports = [t for t in args.transports if t != "mqtt"]
        else:
            broker = MosquittoBroker().start()
    _, what = base_block(args.channels[0], n=FRAME)
    print(f"source: {what}; codec: ladder level 0 (lossless); {args.seconds:g} s measured after {args.warmup:g} s warm-up")
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="nl-bench-latency-") as tmp:
            combos = [(t, c, False) for t in args.transports for c in args.channels]
            if args.encrypted and "zmq" in args.transports:  # the same ZeroMQ runs with end-to-end AEAD
                combos += [("zmq", c, True) for c in args.channels]
            if args.encrypted and "zmq" in args.transports and args.repeat > 1:
                # plain and encrypted runs of one channel count back to back: a pair sees the same machine
                combos.sort(key=lambda c: (c[1], c[0] != "zmq", c[2]))
            # odd repeats run the list backwards: neither member of a pair always goes first
            schedule = [(rep, *c) for rep in range(args.repeat) for c in (combos if rep % 2 == 0 else combos[::-1])]
            for rep, kind, ch, enc in tqdm(schedule, desc="bench latency", unit="run"):
                try:
                    runs.append(run_one(kind, ch, args.seconds, args.warmup, broker, Path(tmp), encrypted=enc,
                                        archive=args.archive))
                except Exception as exc:  # one failed run must not lose the others
                    print(f"run {kind} {ch} ch failed: {exc}")
                    runs.append(_failed(kind, ch, str(exc)))
                    runs[-1]["encrypted"] = enc
                runs[-1]["repeat"] = rep
                runs[-1]["archive"] = args.archive
    finally:
        if broker is not None:
            broker.close()
    print_table(runs)
    summary = summarise(runs) if args.repeat > 1 else {}
    if summary:
        print_summary(summary)
    cost = []
    if args.encrypted and "zmq" in args.transports:
        for ch in args.channels:
            c = aead_cost(ch, frames=300 if args.quick else 3000)
            p99s = [r["added_latency_ms"]["p99"] for r in runs
                    if r["transport"] == "zmq" and not r.get("encrypted") and r["channels"] == ch and r.get("samples_measured", 0) > 0]
            if p99s:  # what the AEAD steps add, relative to the plain end-to-end p99 (the median run's)
                c["added_p99_over_plain_p99"] = c["added_us"]["p99"] / 1000.0 / float(np.median(p99s))
            cost.append(c)
            rel = f" = {c['added_p99_over_plain_p99']:.1%} of the plain p99" if "added_p99_over_plain_p99" in c else ""
            print(f"encryption ({c['aead']}) on the critical path at {ch} ch ({c['payload_bytes_mean']:.0f} B payloads): seal+open "
                  f"p50/p99 {c['sealed_us']['p50']:.1f}/{c['sealed_us']['p99']:.1f} us vs pack+parse "
                  f"{c['plain_us']['p50']:.1f}/{c['plain_us']['p99']:.1f} us: adds {c['added_us']['p50']:.1f}/"
                  f"{c['added_us']['p99']:.1f} us{rel}")
    rt = f"; bench and daemons at SCHED_FIFO {args.realtime}" if args.realtime else ""
    if args.cpu_wakeup_latency >= 0:
        rt += f"; idle CPUs held to {args.cpu_wakeup_latency} us wake-up latency"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (tails grow with other load){rt}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary, "repeat": args.repeat, "encryption_cost": cost,
                                               "source": what, "cpu_count": os.cpu_count(),
                                               "loadavg_1m_end": os.getloadavg()[0], "realtime_priority": args.realtime,
                                               "cpu_wakeup_latency_us": args.cpu_wakeup_latency if args.cpu_wakeup_latency >= 0 else None},
                                              indent=1, default=float))
    if args.png:
        plot(runs, args.png)
    return 0 if all(r["samples_measured"] > 0 for r in runs) else 1
