"""``neurolink bench archive``: zero data loss across outages on the reliable archive path.

Real data (a recording tiled to ``--channels`` and replayed at ``--fs``, looping; say so when reporting) is
streamed by a sender *process* with an on-disk spool to an archiving receiver *process*. Mid-stream:

* ``kill``: the receiver is SIGKILLed, stays down ``--outage-s``, then restarts on the same archive;
* ``cut``:  the link (a TCP relay between the two) is cut for ``--outage-s``, connections dropped.

Afterwards the archive is compared sample by sample with the source. JSON keys (DESIGN.md): channels, fs,
outage_s, frames_sent, frames_archived, bit_exact, sender_peak_rss_mb; per scenario under "scenarios".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from neurolink.netutil import free_port
from neurolink.sources.base import Chunk, Source, StreamMeta

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------- the data
def source_block(channels: int, fs: float, seconds: float = 2.0, recording: str | None = None) -> np.ndarray:
    """The looped source: ``seconds`` of a real recording tiled to ``channels`` (synthetic if no data)."""
    from neurolink.data import default_recording
    from neurolink.sources.replay import load_recording, tile_channels

    n = max(1, int(fs * seconds))
    path = Path(recording) if recording else default_recording()
    if path is not None and path.exists():
        x = load_recording(path).data[:n]
    else:  # pragma: no cover - no shared data: keep the bench runnable
        from neurolink.sources.synthetic import synthetic_recording

        x = synthetic_recording(n, 4, fs, seed=0)
    return tile_channels(np.ascontiguousarray(x), channels)


def compare(archive_path: str, block: np.ndarray, n_expected: int) -> dict[str, Any]:
    """Archive sample i must equal block[i % len(block)] for every i < n_expected."""
    from neurolink.archive.reader import open_archive

    a = open_archive(archive_path)
    m = block.shape[0]
    ok = a.n_samples == n_expected
    mismatched = 0
    for i, x, _t in a.iter_chunks():
        idx = np.arange(i, i + x.shape[0]) % m
        bad = np.count_nonzero(np.any(x != block[idx], axis=1))
        mismatched += int(bad)
    return {"samples_archived": a.n_samples, "samples_expected": n_expected, "mismatched_samples": mismatched,
            "bit_exact": bool(ok and mismatched == 0), "gaps": len(a.gaps), "next_seq": a.meta.get("next_seq")}


class LoopSource(Source):
    """Paced replay of ``block`` looping until ``total`` samples: long runs with a small memory footprint."""

    def __init__(self, block: np.ndarray, fs: float, total: int, chunk: int) -> None:
        self.block, self.fs, self.total, self.chunk = block, fs, total, chunk
        self.meta = StreamMeta("bench-archive", "Extracellular", f"bench-archive-{os.getpid()}", fs, block.shape[1], "int16")

    async def open(self) -> StreamMeta:
        return self.meta

    async def chunks(self) -> AsyncIterator[Chunk]:
        from neurolink.lsl import pylsl

        t0 = pylsl.local_clock()
        m = self.block.shape[0]
        i = 0
        while i < self.total:
            j = min(i + self.chunk, self.total)
            ts = t0 + np.arange(i, j) / self.fs
            delay = ts[-1] - pylsl.local_clock()
            if delay > 0:
                await asyncio.sleep(delay)
            idx = np.arange(i, j) % m
            yield Chunk(self.block[idx], ts)
            i = j


# ---------------------------------------------------------------------------------------- the workers
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def _sender(a: argparse.Namespace) -> dict[str, Any]:
    from neurolink.reliable.sender import ReliableSender
    from neurolink.sender import Sender, StreamSpec
    from neurolink.transports.zmq import ZmqSender

    block = source_block(a.channels, a.fs, recording=a.recording)
    total = int(a.fs * a.seconds)
    src = LoopSource(block, a.fs, total, max(1, int(a.fs / 1000)))
    rel = ReliableSender(a.spool, spool_mb=a.spool_mb, linger_s=a.linger_s, background=True)
    tx = ZmqSender(a.data, a.feedback)
    s = Sender([StreamSpec(src, 1, controller={"id": "fixed", "level": a.level})], tx, reliable=rel, wait_receiver_s=30.0)
    await s.run()
    out = {"frames_sent": s.streams[1].framer.seq, "samples_in": s.streams[1].stats.samples_in,
           "reliable": rel.summary()[1], "live": s.summary()[1], "sender_peak_rss_mb": _peak_rss_mb()}
    rel.close()
    return out


async def _receiver(a: argparse.Namespace) -> dict[str, Any]:
    from neurolink.receiver import Receiver
    from neurolink.reliable.receiver import ReliableReceiver
    from neurolink.sinks.archive import ArchiveSink
    from neurolink.transports.zmq import ZmqReceiver

    rel = ReliableReceiver(lambda h: ArchiveSink(a.archive, chunk_s=1.0), background=True)
    rx = Receiver(ZmqReceiver(a.data, a.feedback), lambda h: [], reliable=rel)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, rx.stop)

    async def watch() -> None:  # exit once every archived stream has ended (everything durable)
        while True:
            await asyncio.sleep(0.2)
            if rel.streams and all(st.ended for st in rel.streams.values()):
                await asyncio.sleep(0.5)  # let the last acks out
                rx.stop()
                return

    w = asyncio.create_task(watch())
    await rx.run()
    w.cancel()
    return {"reliable": rel.summary(), "peak_rss_mb": _peak_rss_mb()}


def _worker(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--role", choices=["sender", "receiver"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--feedback", required=True)
    p.add_argument("--archive")
    p.add_argument("--spool")
    p.add_argument("--spool-mb", type=float, default=2048.0)
    p.add_argument("--linger-s", type=float, default=120.0)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--fs", type=float, default=30000.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--level", type=int, default=0)
    p.add_argument("--recording")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"[{a.role}] %(levelname)s %(name)s: %(message)s")
    res = asyncio.run(_sender(a) if a.role == "sender" else _receiver(a))
    Path(a.out).write_text(json.dumps(res, default=float))
    return 0


# --------------------------------------------------------------------------------------------- relay
class Relay:
    """TCP relay for the two ZMQ connections; :meth:`cut` drops every connection and refuses new ones."""

    def __init__(self, targets: dict[int, int]) -> None:
        self.targets = targets  # listen port -> target port
        self.loop = asyncio.new_event_loop()
        self._up = threading.Event()
        self._conns: set[asyncio.StreamWriter] = set()
        self.cut_now = False
        self.cuts = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._up.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        for lp, tp in self.targets.items():
            self.loop.run_until_complete(asyncio.start_server(self._handler(tp), "127.0.0.1", lp))
        self._up.set()
        self.loop.run_forever()

    def _handler(self, tp: int) -> Any:
        async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await self._handle(r, w, tp)

        return h

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, tp: int) -> None:
        if self.cut_now:
            w.close()
            return
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", tp)
        except OSError:
            w.close()
            return
        self._conns |= {w, w2}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while not self.cut_now and (buf := await src.read(1 << 16)):
                    dst.write(buf)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(r, w2), pipe(r2, w))
        self._conns -= {w, w2}

    def cut(self, on: bool) -> None:
        def _apply() -> None:
            self.cut_now = on
            if on:
                self.cuts += 1
                for w in list(self._conns):
                    w.transport.abort()

        self.loop.call_soon_threadsafe(_apply)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


# ------------------------------------------------------------------------------------------ scenario
def run_scenario(kind: str, *, channels: int, fs: float, pre_s: float, outage_s: float, post_s: float,
                 workdir: Path, recording: str | None = None, progress: Any = None) -> dict[str, Any]:
    """One run: sender + receiver processes, an outage of ``kind`` ("kill" or "cut"), then the comparison."""
    pd, pf = free_port(), free_port()
    rd, rf = (free_port(), free_port()) if kind == "cut" else (pd, pf)
    relay = Relay({rd: pd, rf: pf}) if kind == "cut" else None
    arch = str(workdir / f"{kind}.zarr")
    seconds = pre_s + outage_s + post_s
    common = ["--channels", str(channels), "--fs", str(fs)] + (["--recording", recording] if recording else [])
    py = [sys.executable, "-m", "neurolink.bench.archive", "--worker"]

    def start_rx(n: int) -> subprocess.Popen:
        return subprocess.Popen(py + ["--role", "receiver", "--data", f"tcp://127.0.0.1:{rd}", "--feedback",
                                      f"tcp://127.0.0.1:{rf}", "--archive", arch, "--out", str(workdir / f"{kind}-rx{n}.json"), *common])

    rx = start_rx(0)
    time.sleep(1.0)
    tx = subprocess.Popen(py + ["--role", "sender", "--data", f"tcp://127.0.0.1:{pd}", "--feedback", f"tcp://127.0.0.1:{pf}",
                                "--spool", str(workdir / f"{kind}-spool"), "--seconds", str(seconds),
                                "--out", str(workdir / f"{kind}-tx.json"), *common])
    try:
        _wait_archive(arch, 120.0)  # the stream is flowing (the sender waited for the receiver)
        time.sleep(pre_s)
        t_out = time.time()
        if kind == "kill":
            rx.send_signal(signal.SIGKILL)
            rx.wait()
        else:
            assert relay is not None
            relay.cut(True)
        time.sleep(outage_s)
        if kind == "kill":
            rx = start_rx(1)
        else:
            assert relay is not None
            relay.cut(False)
        outage = time.time() - t_out
        tx.wait(timeout=seconds * 4 + 300)
        try:
            rx.wait(timeout=60)
        except subprocess.TimeoutExpired:  # the archive never saw the end: close it and report what it holds
            log.error("%s: receiver still catching up 60 s after the sender ended: stopping it", kind)
            rx.send_signal(signal.SIGTERM)
            rx.wait(timeout=60)
    finally:
        for p in (tx, rx):
            if p.poll() is None:
                p.kill()
                p.wait()
        if relay is not None:
            relay.close()
    txr = json.loads((workdir / f"{kind}-tx.json").read_text())
    block = source_block(channels, fs, recording=recording)
    cmp = compare(arch, block, int(txr["samples_in"]))
    from neurolink.archive.reader import verify_archive

    ver = verify_archive(arch)
    frame = max(1, int(round(fs / 1000)))
    return {"scenario": kind, "outage_measured_s": outage, "frames_sent": int(txr["frames_sent"]),
            "frames_archived": int(-(-cmp["samples_archived"] // frame)), "bit_exact": cmp["bit_exact"],
            "verify_ok": ver["ok"], "sender_peak_rss_mb": txr["sender_peak_rss_mb"], **cmp,
            "spool_peak_mb": txr["reliable"]["spool_peak_mb"], "retransmits": txr["reliable"]["retransmits"],
            "spool_overflow_frames": txr["reliable"]["spool_overflow_frames"]}


def _wait_archive(path: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (Path(path) / "zarr.json").exists():
            return
        time.sleep(0.1)
    raise TimeoutError(f"no archive appeared at {path} within {timeout} s")


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker":
        return _worker(argv[1:])
    p = argparse.ArgumentParser(prog="neurolink bench archive", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--fs", type=float, default=30000.0)
    p.add_argument("--outage-s", type=float, default=30.0)
    p.add_argument("--pre-s", type=float, default=10.0, help="streaming before the outage")
    p.add_argument("--post-s", type=float, default=20.0, help="streaming after the outage")
    p.add_argument("--scenarios", default="kill,cut")
    p.add_argument("--recording", help="recording to tile (default: the shared locust tetrode, else the fastest-sampled shared recording)")
    p.add_argument("--quick", action="store_true", help="reduced scale: 32 ch, 2 s outage")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--png")
    p.add_argument("--workdir")
    a = p.parse_args(argv)
    if a.quick:
        a.channels, a.outage_s, a.pre_s, a.post_s = 32, 2.0, 2.0, 2.0
    kinds = [k for k in a.scenarios.split(",") if k]
    for k in kinds:
        if k not in ("kill", "cut"):
            p.error(f"--scenarios: unknown scenario {k!r} (expected kill, cut)")
    from tqdm import tqdm

    runs = []
    with tempfile.TemporaryDirectory(prefix="nl-bench-archive-", dir=a.workdir) as tmp:
        for k in tqdm(kinds, desc="bench archive", unit="scenario"):
            runs.append(run_scenario(k, channels=a.channels, fs=a.fs, pre_s=a.pre_s, outage_s=a.outage_s,
                                     post_s=a.post_s, workdir=Path(tmp), recording=a.recording))
    first = runs[0]
    out = {"channels": a.channels, "fs": a.fs, "outage_s": a.outage_s, "frames_sent": first["frames_sent"],
           "frames_archived": first["frames_archived"], "bit_exact": all(r["bit_exact"] for r in runs),
           "sender_peak_rss_mb": max(r["sender_peak_rss_mb"] for r in runs),
           "data": "real recording tiled to the channel count, replayed looping at fs",
           "scenarios": {r["scenario"]: r for r in runs}}
    print(f"{'scenario':8} {'outage_s':>8} {'frames_sent':>11} {'archived':>9} {'bit_exact':>9} {'retx':>7} "
          f"{'spool_MB':>8} {'tx_rss_MB':>9}")
    for r in runs:
        print(f"{r['scenario']:8} {r['outage_measured_s']:8.1f} {r['frames_sent']:11d} {r['frames_archived']:9d} "
              f"{r['bit_exact']!s:>9} {r['retransmits']:7d} {r['spool_peak_mb']:8.1f} {r['sender_peak_rss_mb']:9.1f}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(out, indent=1))
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3))
        names = [r["scenario"] for r in runs]
        ax.bar([n + " sent" for n in names], [r["frames_sent"] for r in runs])
        ax.bar([n + " archived" for n in names], [r["frames_archived"] for r in runs])
        ax.set_ylabel("frames")
        ax.set_title(f"archive across a {a.outage_s:g} s outage ({a.channels} ch @ {a.fs:g} Hz)")
        fig.tight_layout()
        fig.savefig(a.png, dpi=100)
    return 0 if out["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
