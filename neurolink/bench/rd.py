"""``neurolink bench rd``: rate-distortion curves of every lossy codec and the baselines on real data.

Codecs run the way the pipeline runs them: consecutive 1 ms frames (round(fs/1000) samples) through
one encoder instance and one decoder instance; ratio = raw bytes / sum of encoded bytes. Fidelity
is :func:`neurolink.metrics.fidelity` on the whole decoded recording.

WavPack cannot code 1 ms frames, and on the 5 ms blocks where it first runs its per-block overhead
cripples it, so it also runs in *archive mode* (1000 ms blocks and the whole recording per call);
the neurolink codecs are run on 1000 ms frames too (``mode: archive``). The ``comparison`` section
names, for every WavPack point, the best neurolink codec at equal or higher ratio, in 1 ms
streaming mode and in archive mode, and whether it beats WavPack on both spike F1 and SNR.

Encode latency is measured on 1 ms frames of 256 channels at 30 kHz made by tiling a real recording's
channels (the locust tetrode when present, else the fastest-sampled one) and reading its samples as if they
were 30 kHz (30 samples per frame).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from neurolink.bench._baselines import make_baseline
from neurolink.codecs import get_codec, list_codecs, load_ladder
from neurolink.data import default_recording, shared_dir
from neurolink.errors import CodecError
from neurolink.metrics import fidelity

log = logging.getLogger(__name__)

#: Rate-knob sweeps: codec id -> (knob name, values). Quick mode keeps every other value.
SWEEPS: dict[str, tuple[str, list[Any]]] = {
    "nl-nearlossless": ("k", [1, 2, 4, 8, 16, 32, 64]),
    "nl-nearlossless-lpc": ("k", [1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 64]),
    "nl-dpcm": ("step", [4, 4.4, 6, 8, 10, 13, 16, 20, 26, 33, 40, 50, 57, 64, 128]),
    "nl-spike": ("step", [2, 4, 8, 12, 16, 24, 32, 48]),
    "nl-wavelet": ("step", [8, 16, 32, 64, 128]),
    "nl-pca": ("step", [8, 16, 32, 64, 128]),
    "nl-vq": ("bits", [4, 6, 8]),
    "nl-cs": ("m", [12, 8, 6, 4, 2]),
    "nl-ae": ("step", [0.05, 0.1, 0.2, 0.4, 0.8]),
}
BASELINES: dict[str, list[float]] = {
    "wavpack": [2.25, 3.0, 4.0, 6.0],
    "truncate": [2, 4, 5, 6, 7, 8],
    "decimate": [2, 4, 8, 15],
}
#: WavPack cannot encode 1 ms frames; it gets the smallest of these block lengths that works.
WAVPACK_BLOCKS_MS = [1, 5, 10, 100]
#: Archive mode: long blocks (None = the whole recording in one call). Neurolink frames are limited to
#: 65535 samples, so they run archive mode on ARCHIVE_MS blocks only.
ARCHIVE_MS = 1000
WAVPACK_ARCHIVE_MS: list[int | None] = [ARCHIVE_MS, None]
LAT_CHANNELS, LAT_FS = 256, 30000


Spec = tuple[str, Any, "int | None | str"]  # (family, codec config or (baseline, value), block ms: "stream"/int/None)


def _configs(quick: bool, archive: bool = True) -> list[Spec]:
    """(family, spec, block): block "stream" = the pipeline's 1 ms frames, an int = archive blocks of that
    many ms, None = the whole recording in one call (WavPack only)."""
    out: list[Spec] = []
    known = set(list_codecs())
    for cid, (knob, values) in SWEEPS.items():
        if cid not in known:
            continue
        vals = values[::2] if quick else values
        out += [(cid, {"id": cid, knob: v}, "stream") for v in vals]
        if archive:
            out += [(cid, {"id": cid, knob: v}, ARCHIVE_MS) for v in vals]
    for name, values in BASELINES.items():
        vals = values[::2] if quick else values
        out += [(name, (name, v), "stream") for v in vals]
        if name == "wavpack" and archive:
            for ms in WAVPACK_ARCHIVE_MS:
                fam = f"wavpack-archive-{ms}ms" if ms else "wavpack-archive-whole"
                out += [(fam, (name, v), ms) for v in vals]
    return out


def _stream(enc: Any, dec: Any, x: np.ndarray, frame: int) -> tuple[np.ndarray, int]:
    y = np.empty_like(x)
    total = 0
    for start in range(0, x.shape[0], frame):
        part = x[start : start + frame]
        blob = enc.encode(part)
        total += len(blob)
        y[start : start + part.shape[0]] = dec.decode(blob)
    return y, total


def _run_one(family: str, spec: Any, x: np.ndarray, fs: float, block: Any = "stream") -> dict[str, Any]:
    frame = max(1, round(fs / 1000))
    if block != "stream":
        frame = x.shape[0] if block is None else max(1, round(fs * block / 1000))
    row: dict[str, Any] = {"family": family, "frame_ms": frame * 1000.0 / fs,
                           "mode": "stream" if block == "stream" else "archive"}
    if isinstance(spec, dict):
        row["config"] = spec
        y, total = _stream(get_codec(spec), get_codec(spec), x, frame)
    else:
        name, value = spec
        row["config"] = {"id": name, "value": value}
        y = None
        blocks = WAVPACK_BLOCKS_MS if name == "wavpack" and block == "stream" else [frame * 1000.0 / fs]
        for ms in blocks:
            try:
                fr = max(1, round(fs * ms / 1000))
                y, total = _stream(make_baseline(name, value), make_baseline(name, value), x, fr)
                row["frame_ms"] = fr * 1000.0 / fs
                break
            except (RuntimeError, ValueError):
                continue
        if y is None:
            return {**row, "error": "does not run at any tried block length"}
    row["ratio"] = x.nbytes / max(total, 1)
    row["bits_per_sample"] = 8.0 * total / max(x.size, 1)
    row.update(fidelity(x, y, fs))
    return row


def _better(a: Any, b: Any) -> bool | None:
    """a > b, or None when either is missing/NaN (e.g. spike F1 at 1 kHz)."""
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return None
    return bool(a > b)


def compare_wavpack(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For every WavPack point: the best neurolink codec at equal or higher ratio, per neurolink mode.

    Candidates are the ``nl-*`` rows of the same recording and mode (``stream``: 1 ms frames;
    ``archive``: ARCHIVE_MS frames) with ratio >= WavPack's. The best is the one that wins on the most
    of (spike F1, SNR), then the highest SNR margin. ``wins_both`` is true when it has strictly higher
    SNR and strictly higher spike F1 (when spike F1 is undefined, e.g. at 1 kHz, on SNR alone).
    """
    ok = [r for r in rows if "ratio" in r]
    out = []
    for wv in (r for r in ok if r["family"].startswith("wavpack")):
        for mode in ("stream", "archive"):
            cands = [r for r in ok if r["family"].startswith("nl-") and r["recording"] == wv["recording"]
                     and r.get("mode", "stream") == mode and r["ratio"] >= wv["ratio"]]

            def score(r: dict[str, Any], wv: dict[str, Any] = wv) -> tuple[int, float]:
                wins = [_better(r["spike_f1"], wv["spike_f1"]), _better(r["snr_db"], wv["snr_db"])]
                return sum(w is not False for w in wins), r["snr_db"] - wv["snr_db"]

            best = max(cands, key=score, default=None)
            entry: dict[str, Any] = {
                "recording": wv["recording"], "neurolink_mode": mode,
                "wavpack": {"family": wv["family"], "bps": wv["config"]["value"], "block_ms": wv["frame_ms"],
                            "ratio": wv["ratio"], "snr_db": wv["snr_db"], "spike_f1": wv["spike_f1"]},
                "best": None, "wins_f1": None, "wins_snr": None, "wins_both": False}
            if best is not None:
                f1 = _better(best["spike_f1"], wv["spike_f1"])
                snr = bool(best["snr_db"] > wv["snr_db"])
                entry.update(best={"config": best["config"], "frame_ms": best["frame_ms"], "ratio": best["ratio"],
                                   "snr_db": best["snr_db"], "spike_f1": best["spike_f1"]},
                             wins_f1=f1, wins_snr=snr, wins_both=snr and f1 is not False)
            out.append(entry)
    return out


def _print_comparison(comp: list[dict[str, Any]]) -> None:
    print("\nvs WavPack hybrid: best neurolink codec at equal or higher ratio (wins = higher spike F1 AND SNR)")
    print(f"{'recording':28s} {'wavpack':24s} {'ratio':>6s} {'snr':>6s} {'f1':>6s} | {'nl mode':7s} "
          f"{'best neurolink':34s} {'ratio':>6s} {'snr':>6s} {'f1':>6s} wins")
    for c in comp:
        w, b = c["wavpack"], c["best"]
        wname = f"{w['family'].replace('wavpack', 'wv')} {w['bps']:g}bps"
        head = f"{c['recording']:28s} {wname:24s} {w['ratio']:6.2f} {w['snr_db']:6.2f} {_fmt(w['spike_f1']).strip():>6s} | "
        if b is None:
            print(head + f"{c['neurolink_mode']:7s} (none at this ratio)")
            continue
        cfg = json.dumps(b["config"], separators=(",", ":"))
        print(head + f"{c['neurolink_mode']:7s} {cfg:34s} {b['ratio']:6.2f} {b['snr_db']:6.2f} "
              f"{_fmt(b['spike_f1']).strip():>6s} {'YES' if c['wins_both'] else 'no'}")


def _latency(configs: list[dict[str, Any]], n_frames: int, data_dir: Path | None = None) -> list[dict[str, Any]]:
    path = default_recording(data_dir)
    src = np.load(path, mmap_mode="r")[: LAT_FS * 4].astype(np.int16) if path is not None else None
    if src is None:
        src = np.random.default_rng(0).normal(2048, 60, (LAT_FS, 4)).astype(np.int16)
    what = f"{path.stem if path is not None else 'synthetic'} channels tiled to {LAT_CHANNELS}, samples read as 30 kHz"
    reps = -(-LAT_CHANNELS // src.shape[1])
    frame = LAT_FS // 1000
    need = frame * (n_frames + 50)
    if src.shape[0] < need:  # a short recording: loop it
        src = np.tile(src, (-(-need // src.shape[0]), 1))
    x = np.tile(src[: frame * (n_frames + 50)], (1, reps))[:, :LAT_CHANNELS]
    out = []
    for cfg in tqdm(configs, desc="latency", leave=False):
        enc = get_codec(cfg)
        times = np.empty(n_frames + 50)
        for i in range(n_frames + 50):
            part = np.ascontiguousarray(x[i * frame : (i + 1) * frame])
            t0 = time.perf_counter()
            enc.encode(part)
            times[i] = time.perf_counter() - t0
        t = times[50:] * 1e6  # the first frames compile/warm up
        out.append({"config": cfg, "channels": LAT_CHANNELS, "fs": LAT_FS, "frame_samples": frame,
                    "encode_us": {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)),
                                  "max": float(t.max())},
                    "note": what})
    return out


def _plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # archive-mode neurolink rows stay in the JSON/table; the plot shows the 1 ms streaming curves and
    # WavPack in both modes (archive points as stars)
    rows = [r for r in rows if r.get("mode", "stream") == "stream" or r["family"].startswith("wavpack")]
    recs = sorted({r["recording"] for r in rows})
    metrics = [("snr_db", "SNR (dB)"), ("spike_f1", "spike F1"), ("band_power_err", "band-power error")]
    fig, axes = plt.subplots(len(recs), 3, figsize=(15, 4 * len(recs)), squeeze=False)
    # same colour in every panel; tab20 because there are more than 10 families
    colors = {f: plt.cm.tab20(i % 20) for i, f in enumerate(sorted({r["family"] for r in rows}))}
    colors.update({f: "black" for f in colors if "archive" in f})  # WavPack archive points stand out
    for i, rec in enumerate(recs):
        for j, (key, label) in enumerate(metrics):
            ax = axes[i, j]
            fams = sorted({r["family"] for r in rows if r["recording"] == rec})
            for fam in fams:
                pts = sorted((r["ratio"], r.get(key)) for r in rows if r["recording"] == rec and r["family"] == fam
                             and "ratio" in r and r.get(key) is not None and np.isfinite(r.get(key, np.nan)))
                if pts and "archive" in fam:
                    ax.plot(*zip(*pts, strict=False), marker="*" if fam.endswith("whole") else "P", ms=9, label=fam,
                            color=colors[fam], lw=0.8, ls=":")
                elif pts:
                    ax.plot(*zip(*pts, strict=False), marker="o", ms=3, label=fam, color=colors[fam], lw=2 if fam.startswith("nl-") else 1,
                            ls="-" if fam.startswith("nl-") else "--")
            ax.set_xscale("log")
            ax.set_xlabel("compression ratio")
            ax.set_ylabel(label)
            ax.set_title(rec, fontsize=9)
            if key == "band_power_err":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[i, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "   -  "
    return f"{v:7.3f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neurolink bench rd", description=__doc__.splitlines()[0])
    p.add_argument("--data", help="folder of .npy recordings with JSON sidecars (default: ../shared/data)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s per recording, half the knob values")
    p.add_argument("--seconds", type=float, default=None, help="use only the first N seconds of each recording")
    p.add_argument("--max-mb", type=float, default=128.0,
                   help="use at most this much raw data per recording, from its start (default 128 MB: all of a "
                        "30 s tetrode, ~6 s of a 384-channel 30 kHz probe; the sweep runs ~150 codec settings "
                        "per recording); 0 = no limit")
    p.add_argument("--only", default=None, help="comma-separated families to run (e.g. nl-spike,wavpack)")
    p.add_argument("--latency-frames", type=int, default=2000, help="1 ms frames timed per codec")
    p.add_argument("--no-archive", action="store_true", help=f"skip archive mode (WavPack on {ARCHIVE_MS} ms blocks "
                   f"and whole recordings, neurolink codecs on {ARCHIVE_MS} ms frames)")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--png", dest="png_out")
    args = p.parse_args(argv)
    if args.max_mb < 0:
        p.error(f"--max-mb: expected >= 0 (0 = no limit), got {args.max_mb:g}")
    logging.basicConfig(level=logging.WARNING)
    base = shared_dir()
    data = Path(args.data) if args.data else (base / "data" if base else None)
    if data is None or not data.is_dir():
        print("no recordings: pass --data DIR or put ../shared/data beside the checkout")
        return 2
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else None)
    recs = []
    for f in sorted(data.glob("*.npy")):
        try:
            meta = json.loads(f.with_suffix(".json").read_text())
            fs = float(meta["sampling_rate_hz"])
            x = np.load(f, mmap_mode="r", allow_pickle=False)  # only the part used is read
        except (OSError, ValueError, KeyError) as exc:
            print(f"skipping {f.name}: {exc.__class__.__name__}: {exc} (needs a JSON sidecar with sampling_rate_hz)")
            continue
        if x.ndim != 2 or x.dtype.kind not in "iu" or not fs > 0:
            print(f"skipping {f.name}: expected integer (samples, channels) data and a positive rate, "
                  f"got {x.dtype} {x.shape} at {fs} Hz")
            continue
        n = x.shape[0]
        if seconds:
            n = min(n, int(seconds * fs))
        if args.max_mb and args.max_mb > 0:
            cap = int(args.max_mb * 1e6 // (x.shape[1] * x.itemsize))
            if cap < n:
                print(f"{f.stem}: using the first {cap / fs:.1f} s of {x.shape[0] / fs:.1f} s "
                      f"(--max-mb {args.max_mb:g}; 0 = all)")
                n = cap
        recs.append((f.stem, np.ascontiguousarray(x[:n]), fs))
    configs = _configs(args.quick, archive=not args.no_archive)
    if args.only:
        keep = set(args.only.split(","))
        configs = [c for c in configs if c[0] in keep or (c[0].startswith("wavpack-archive") and "wavpack" in keep)]
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(recs) * len(configs), desc="rd") as bar:
        for name, x, fs in recs:
            for family, spec, block in configs:
                try:
                    row = _run_one(family, spec, x, fs, block)
                except CodecError as exc:
                    row = {"family": family, "config": spec, "error": str(exc),
                           "mode": "stream" if block == "stream" else "archive"}
                row["recording"] = name
                rows.append(row)
                bar.update()
    ladder = load_ladder()
    lat_cfgs = [dict(c) for c in ladder][1:]
    lat_cfgs += [{"id": cid, knob: vals[len(vals) // 2]} for cid, (knob, vals) in SWEEPS.items() if cid in list_codecs()]
    lat = _latency(lat_cfgs, 200 if args.quick else args.latency_frames, data)

    comparison = compare_wavpack(rows)
    print(f"{'recording':28s} {'codec':44s} {'ratio':>7s} {'snr_db':>7s} {'spk_f1':>7s} {'bp_err':>7s} {'r':>7s} frame_ms")
    for r in rows:
        cfg = json.dumps(r["config"], separators=(",", ":"))
        if "error" in r:
            print(f"{r['recording']:28s} {cfg:44s} error: {r['error']}")
            continue
        print(f"{r['recording']:28s} {cfg:44s} {r['ratio']:7.2f} {_fmt(r['snr_db'])} {_fmt(r['spike_f1'])} "
              f"{_fmt(r['band_power_err'])} {_fmt(r['pearson_r'])} {r['frame_ms']:.2f}"
              + ("  archive" if r.get("mode") == "archive" else ""))
    _print_comparison(comparison)
    print(f"\nencode latency, 1 ms frames of {LAT_CHANNELS} ch at {LAT_FS} Hz ({lat[0]['note'] if lat else ''}):")
    for r in lat:
        print(f"  {json.dumps(r['config'], separators=(',', ':')):44s} p50 {r['encode_us']['p50']:8.1f} us"
              f"  p99 {r['encode_us']['p99']:8.1f} us")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"results": rows, "latency": lat, "comparison": comparison,
                                                   "ladder": [dict(c) for c in ladder], "ladder_names": ladder.names,
                                                   "quick": args.quick, "seconds": seconds,
                                                   "max_mb": args.max_mb,
                                                   "samples_used": {r[0]: int(r[1].shape[0]) for r in recs}}, indent=1, default=float))
    if args.png_out:
        _plot([r for r in rows if "error" not in r], args.png_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
