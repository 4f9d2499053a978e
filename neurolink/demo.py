"""``neurolink demo``: the whole bridge on embedded defaults, verified sample by sample.

A real recording from ../shared/data (synthetic if absent) is published as a paced LSL outlet, read by
the sender, compressed, shipped over ZeroMQ on loopback, decoded by the receiver, republished on LSL,
and read back by an independent LSL inlet. The demo prints one line per second and exits non-zero
unless every sample arrived bit-exact and in order.

By default a second part follows: the same pipeline in closed loop, with the learned rate controller
(ONNX) choosing the ladder level every control interval over a link shaped in-process by a real network
trace from a family the policy never saw in training. It prints the link's capacity and the level chosen
each second, then what the receiver's output kept of the signal (SNR, spike F1, band-power error).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from neurolink.codecs import load_ladder
from neurolink.codecs.warmup import warm_up
from neurolink.data import default_recording, shared_dir
from neurolink.lsl import pylsl
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.lsl_outlet import LSLOutletSink
from neurolink.sources.lsl_inlet import LSLSource, resolve_stream
from neurolink.sources.replay import Recording, ReplayOutlet, load_recording, tile_channels
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports.zmq import ZmqReceiver, ZmqSender

log = logging.getLogger("neurolink.demo")




def pick_recording(args: argparse.Namespace) -> Recording:
    path = None if args.source == "synthetic" else (Path(args.source) if args.source != "auto" else default_recording())
    if path is None:
        fs = args.rate or 30000.0
        ch = args.channels or 64
        n = int(fs * (args.seconds + 1))
        print(f"source: synthetic spikes+LFP, {ch} ch @ {fs:g} Hz")
        return Recording(synthetic_recording(n, ch, fs, seed=1), fs, [], "neurolink-demo", "Extracellular", "uV")
    rec = load_recording(path)
    if args.channels and args.channels != rec.data.shape[1]:
        rec.data = tile_channels(rec.data, args.channels)
        rec.channel_names = [f"ch{i + 1}" for i in range(args.channels)]
        print(f"source: {path.name} ({rec.fs:g} Hz), channels tiled to {args.channels}")
    else:
        print(f"source: {path.name}, {rec.data.shape[1]} ch @ {rec.fs:g} Hz (real recording)")
    if args.rate:
        print("note: --rate applies to synthetic sources; the recording keeps its own rate")
    return rec


class Checker(threading.Thread):
    """An independent LSL consumer of the republished stream: collects every sample it sees."""

    def __init__(self, source_id: str, n_channels: int, dtype: np.dtype) -> None:
        super().__init__(name="checker", daemon=True)
        self.source_id = source_id
        self.parts: list[np.ndarray] = []
        self.ts: list[np.ndarray] = []
        self.count = 0
        self.stop_flag = threading.Event()
        self.error: str | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            info = resolve_stream(f"source_id='{self.source_id}'", 20.0)
            inlet = pylsl.StreamInlet(info, max_buflen=30, processing_flags=pylsl.proc_clocksync)
            inlet.open_stream(timeout=10)
            self.ready.set()
            while not self.stop_flag.is_set():
                data, ts = inlet.pull_chunk(timeout=0.2, max_samples=8192, min_samples=1, as_numpy=True)
                if len(ts):
                    self.parts.append(np.array(data, copy=True))
                    self.ts.append(np.asarray(ts).copy())
                    self.count += len(ts)
        except Exception as exc:  # reported by the demo
            self.error = str(exc)
            self.ready.set()


def default_trace() -> Path | None:
    """A real trace from a family the shipped policy was not trained on (Mahimahi cellular), if present."""
    sh = shared_dir()
    if sh is None:
        return None
    found = sorted((sh / "traces" / "mahimahi_cellular").glob("*.down"))
    return found[-1] if found else None


async def run_demo(args: argparse.Namespace, rec: Recording | None = None) -> int:
    rec = rec if rec is not None else pick_recording(args)
    n_total = min(rec.data.shape[0], int(round(args.seconds * rec.fs)))
    sid = f"neurolink-demo-{uuid.uuid4().hex[:8]}"
    ladder = load_ladder(args.ladder) if args.ladder else load_ladder()
    if args.controller == "fixed":
        level_name = ladder.names[args.level] if args.level < len(ladder) else "?"
        print(f"codec: level {args.level} ({level_name}) {ladder[args.level]}; transport: ZeroMQ tcp://127.0.0.1")
    else:
        print(f"codec: {len(ladder)}-level ladder {ladder.names}, level chosen by controller {args.controller!r}; "
              "transport: ZeroMQ tcp://127.0.0.1")

    # compile every level's kernels now, not on the first live frames (a cold numba cache would stall
    # the 1 ms pipeline for seconds and the oldest frames would be dropped and concealed)
    spent = warm_up(list(ladder), rec.data.shape[1], max(1, round(rec.fs / 1000)), rec.data.dtype)
    print(f"codec kernels ready ({spent:.1f} s)")
    outlet = ReplayOutlet(rec, sid, duration_s=n_total / rec.fs).start()
    p_data, p_fb = free_port(), free_port()
    tx_t = ZmqSender(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    rx_t = ZmqReceiver(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    controller = {"id": "fixed", "level": args.level} if args.controller == "fixed" else {"id": args.controller}
    shaper = None
    if args.trace:
        from neurolink.control.link_shaper import LinkShaper

        raw_bps = rec.data.shape[1] * rec.fs * rec.data.dtype.itemsize * 8
        shaper = LinkShaper(args.trace, raw_bps, k=args.trace_k, seed=0)
        print(f"link: shaped by trace {Path(args.trace).name} (median scaled to {args.trace_k} x raw bitrate)")
    spec_ladder = ladder if args.ladder else None  # None: the packaged ladder, resolved per channel format
    sender = Sender([StreamSpec(LSLSource(source_id=sid, resolve_timeout=10), 1, spec_ladder, controller=controller)],
                    tx_t, shaper=shaper)
    def make_sinks(h):
        return [LSLOutletSink(wait_consumer_s=10.0)]

    receiver = Receiver(rx_t, make_sinks, conceal="hold")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sender.stop)

    # the independent consumer starts first: it resolves the republished stream as soon as it appears
    checker = Checker(sid + "@neurolink", rec.data.shape[1], rec.data.dtype)
    checker.start()
    async with asyncio.TaskGroup() as tg:
        rx_task = tg.create_task(receiver.run())
        tx_task = tg.create_task(sender.run())
        t_start = time.monotonic()
        next_print = 1.0
        warm = False
        deadline = args.seconds + 30
        while not tx_task.done():
            await asyncio.sleep(0.05)
            el = time.monotonic() - t_start
            if not warm and el >= 2.0 and 1 in receiver.streams:
                receiver.streams[1].stats.latency_ms.clear()  # drop the start-up wait for the consumer
                warm = True
            if el >= next_print:
                next_print += 1.0
                _print_line(el, outlet, sender, receiver, checker, shaper)
            if el > deadline:
                print("demo: timed out")
                sender.stop()
                break
            if outlet.done.is_set() and sender.streams and sender.streams[1].stats.samples_in >= n_total:
                sender.stop()
        await tx_task
        await asyncio.wait_for(receiver.ended_event.wait(), 5.0)
        # let the checker drain the outlet
        t_end = time.monotonic() + 5
        while checker.count < n_total and time.monotonic() < t_end:
            await asyncio.sleep(0.05)
        receiver.stop()
        await rx_task
    checker.stop_flag.set()
    checker.join(2)
    outlet.stop()
    return _final_report(rec, n_total, outlet, sender, receiver, checker)


def _link_kbps(shaper, fb) -> str:
    """The shaped link's mean capacity over the last second, and what the controller was told of it (the
    receiver's packet-pair estimate in the last feedback)."""
    if shaper is None or shaper.t0 is None:
        return ""
    t = int((time.monotonic() - shaper.t0) * 1000.0)
    idx = np.arange(max(0, t - 1000), max(1, t)) % shaper.period_ms
    est = f"{fb.throughput_bps / 1000:7.0f}" if fb is not None else "      ?"
    return f"link={float(shaper.cap[idx].mean()) * 8:7.0f} kbit/s (estimate {est})  "


def _print_line(el, outlet, sender: Sender, receiver: Receiver, checker, shaper=None) -> None:
    tx = sender.streams.get(1)
    rx = receiver.streams.get(1)
    if tx is None or rx is None:
        return
    s, r = tx.stats, rx.stats
    fb = s.last_feedback
    print(
        f"t={el:4.0f}s  " + _link_kbps(shaper, fb) + f"in={s.samples_in:>8d}  out={checker.count if checker else 0:>8d}  "
        f"ratio codec/wire={s.codec_ratio:5.2f}/{s.ratio:5.2f}x  "
        f"enc p50/p99={s.encode_us.pct(50):6.1f}/{s.encode_us.pct(99):6.1f} us  "
        f"e2e p50/p99={r.latency_ms.pct(50):5.2f}/{r.latency_ms.pct(99):5.2f} ms  "
        f"lost={r.frames_lost} concealed={r.samples_concealed}  level={s.level} ({tx.ladder.names[s.level]})"
        + (f"  loss={fb.loss_fraction:.3f}" if fb else ""),
        flush=True,
    )


def _final_report(rec, n_total, outlet, sender, receiver, checker) -> int:
    got = np.concatenate(checker.parts) if checker.parts else np.empty((0, rec.data.shape[1]), rec.data.dtype)
    ts = np.concatenate(checker.ts) if checker.ts else np.empty(0)
    src = rec.data[: outlet.samples_pushed]
    tx = sender.summary().get(1, {})
    rx = receiver.summary().get(1, {})
    only_lossless = tx.get("levels_used", [0]) == [0]
    lossless = rx.get("samples_concealed", 0) == 0 and only_lossless
    if tx.get("decisions"):
        print(f"controller decisions: {tx['decisions']}, level switches: {tx['level_switches']}, levels used: {tx['levels_used']}")
    print("\n--- summary ---")
    print(f"samples sent by the acquisition outlet: {outlet.samples_pushed}")
    print(f"samples republished and read back:      {got.shape[0]}")
    print(f"compression ratio codec / with headers: {tx.get('codec_ratio', float('nan')):.3f}x / {tx.get('ratio', float('nan')):.3f}x")
    print(f"encode us p50/p99:                      {tx.get('encode_us_p50', float('nan')):.1f} / {tx.get('encode_us_p99', float('nan')):.1f}")
    print(f"end-to-end latency ms p50/p99 (after 2 s): {rx.get('latency_ms_p50', float('nan')):.2f} / {rx.get('latency_ms_p99', float('nan')):.2f}")
    print(f"frames lost / undecodable / concealed samples: {rx.get('frames_lost')} / {rx.get('frames_undecodable')} / {rx.get('samples_concealed')}")
    ok = True
    if checker.error:
        print(f"FAIL: checker inlet error: {checker.error}")
        return 2
    if only_lossless and rx.get("frames_lost", 0):
        # every frame was sent losslessly over loopback: a lost frame is a failure, not a lossy level
        print(f"FAIL: {rx['frames_lost']} frames lost on loopback at the lossless level "
              f"({rx.get('samples_concealed', 0)} samples concealed); the machine could not keep up")
        ok = False
    if got.shape != src.shape:
        print(f"FAIL: sample count differs: sent {src.shape[0]}, received {got.shape[0]}")
        ok = False
    elif lossless and not np.array_equal(got, src):
        bad = np.argwhere(got != src)
        print(f"FAIL: {len(bad)} values differ, first at sample {bad[0][0]} channel {bad[0][1]}")
        ok = False
    if ok and got.shape[0]:
        exp_ts = outlet.expected_timestamps()
        dt = np.abs(ts - exp_ts[: ts.shape[0]])
        mono = bool(np.all(np.diff(ts) > 0))
        print(f"timestamps: max |received - sent| = {dt.max() * 1000:.3f} ms, monotonic: {mono}")
        if dt.max() > 1e-3 or not mono:
            print("FAIL: timestamps drifted from the source's")
            ok = False
    if ok and not lossless and got.shape[0] >= int(rec.fs):
        # what a user of the lossy stream kept: the same measures as `neurolink bench rd`
        from scipy.signal import welch

        from neurolink.metrics import fidelity
        from neurolink.metrics.bands import BANDS

        f = fidelity(src, got, rec.fs)
        concealed = rx.get("samples_concealed", 0) / max(1, got.shape[0])
        # bands the source hardly has (hardware high-pass): their relative error divides by ~0, say so
        fr, psd = welch(src - src.mean(axis=0), fs=rec.fs, nperseg=min(len(src), int(rec.fs)), axis=0)
        total = float(psd.sum())
        empty = [b for b, (lo, hi) in BANDS.items() if psd[(fr >= lo) & (fr < hi)].sum() < 1e-3 * total]
        kept = [b for b in BANDS if b not in empty]
        err = [f.get(f"band_power_err_{b}", float("nan")) for b in kept]
        bp = f"{100 * float(np.nanmean(err)):.1f} % over {', '.join(kept)}" if kept else "n/a"
        note = f" (the source has < 0.1 % of its power in each of {', '.join(empty)}: not scored)" if empty else ""
        print(f"fidelity of what arrived: SNR {f['snr_db']:.1f} dB, spike F1 {f['spike_f1']:.3f}, Pearson r "
              f"{f['pearson_r']:.3f}, band-power error {bp}{note}; {100 * concealed:.2f} % of samples were "
              "concealed gaps")
    if ok:
        what = "bit-exact, in order" if lossless else "complete, in order (lossy level)"
        print(f"OK: all {got.shape[0]} samples x {src.shape[1]} channels arrived {what}.")
        return 0
    return 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="how long to stream (default 10)")
    p.add_argument("--channels", type=int, default=None, help="channel count (tiles a recording's channels)")
    p.add_argument("--rate", type=float, default=None, help="sampling rate of the synthetic source (Hz)")
    p.add_argument("--source", default="auto", help="'auto' (a real recording from ../shared/data), 'synthetic' or a .npy path")
    p.add_argument("--level", type=int, default=0, help="fixed ladder level (0 = lossless)")
    p.add_argument("--ladder", default=None, help="ladder TOML (default: the packaged one)")
    p.add_argument("--controller", default="fixed", help="controller id: fixed, rl, mpc, bba, gcc, ...")
    p.add_argument("--trace", default=None, help="shape the link in-process with this network trace")
    p.add_argument("--loop-seconds", type=float, default=10.0,
                   help="length of the closed-loop part that follows the lossless one when neither --level, "
                        "--controller nor --trace is given (learned controller, link shaped by a real trace "
                        "from ../shared/traces, or a synthetic one); 0 skips it")
    p.add_argument("--trace-k", type=float, default=1.0, help="trace median as a multiple of the raw bitrate")


def main(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        print("error: --seconds must be > 0")
        return 2
    if args.loop_seconds < 0:
        print("error: --loop-seconds must be >= 0 (0 skips the closed-loop part)")
        return 2
    if args.channels is not None and not 1 <= args.channels <= 4096:
        print("error: --channels must be in [1, 4096]")
        return 2
    single = args.level != 0 or args.controller != "fixed" or args.trace is not None or args.loop_seconds <= 0
    if single:
        return asyncio.run(run_demo(args))
    print("=== part 1: lossless, fixed level 0: every sample must arrive bit-exact ===")
    rec = pick_recording(args)
    rc = asyncio.run(run_demo(args, rec))
    print("\n=== part 2: closed loop: the learned controller (ONNX) picks the level on a shaped link ===")
    trace = default_trace()
    if trace is None:
        trace = _synthetic_trace()
        print(f"no ../shared/traces: using a synthetic trace of bandwidth steps ({trace})")
    loop_args = argparse.Namespace(**{**vars(args), "controller": "rl", "trace": str(trace), "seconds": args.loop_seconds})
    rc2 = asyncio.run(run_demo(loop_args, rec))
    return rc or rc2


def _synthetic_trace() -> Path:
    """Pensieve-format trace (time_s, Mbit/s) stepping between plenty and scarce, for machines without
    ../shared/traces."""
    import tempfile

    t = np.arange(0, 60, 0.5)
    bw = np.where((t // 5) % 2 == 0, 4.0, 0.6) * (1.0 + 0.1 * np.sin(t))
    path = Path(tempfile.gettempdir()) / "neurolink-demo-steps.log"
    np.savetxt(path, np.column_stack([t, bw]), fmt="%.3f", delimiter="\t")
    return path
