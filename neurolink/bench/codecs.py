"""``neurolink bench codecs``: nl-lossless (stream + archive) against FLAC, WavPack, zstd, blosc2, delta+zlib.

Every figure comes from the same run on every recording in ../shared/data: compression ratio,
single-core encode/decode MB/s, and per-frame encode latency p50/p99 for 1 ms frames of 1024
channels at 30 kHz (the real channels tiled to 1024, since no recording has that many).
FLAC gets one channel at a time (with >2 channels it interleaves and drops to ~1.06x); FLAC and
WavPack also get the value-alphabet remapping nl-lossless uses, so the comparison is fair.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from neurolink.codecs import get_codec
from neurolink.codecs.lossless import alphabet as alph
from neurolink.data import shared_dir

T = TypeVar("T")

log = logging.getLogger(__name__)

Enc = Callable[[np.ndarray], object]


def sidecar_scale_offset(sidecar: dict, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel ``scale_per_lsb`` and ``offset`` from a recording's sidecar (Intan's 0.195 µV/count and
    no offset where it does not say)."""
    ch = [c if isinstance(c, dict) else {} for c in sidecar.get("channels") or []]
    if len(ch) != n_channels:
        ch = [{}] * n_channels
    return (np.array([float(c.get("scale_per_lsb", 0.195)) for c in ch]),
            np.array([float(c.get("offset", 0.0)) for c in ch]))


def published_float32(x: np.ndarray, sidecar: dict) -> np.ndarray:
    """The recording as acquisition software publishes it over LSL: float32 in the sidecar's unit, each
    channel's counts times its scale plus offset (:func:`sidecar_scale_offset`)."""
    scale, offset = sidecar_scale_offset(sidecar, x.shape[1])
    return np.ascontiguousarray((x * scale + offset).astype(np.float32))


def _float_section(paths: list[Path], quick: bool, bar: tqdm) -> dict:
    """float32 streams (how most EEG amplifiers publish): nl-float in 1 ms frames against zstd and blosc2
    (byte/bit shuffle) on whole recordings; FLAC and WavPack code integers only."""
    import blosc2
    import zstandard

    out: dict = {}
    for path in paths:
        x, fs = _load(path)
        x = np.ascontiguousarray(x[: int(fs * (0.5 if quick else 20.0))])
        f = published_float32(x, json.loads(path.with_suffix(".json").read_text()))
        mb = f.nbytes / 1e6
        frame = max(1, round(fs / 1000))
        rec: dict = {"fs": fs, "channels": f.shape[1], "samples": f.shape[0], "frame_samples": frame, "codecs": {}}
        get_codec({"id": "nl-float"}).encode(f[: 4 * frame])  # compile outside the timings
        nbytes, te, td, ok = _nl_stream(f, frame, {"id": "nl-float"})
        rec["codecs"]["nl-float stream (1 ms)"] = {"ratio": f.nbytes / nbytes, "enc_MBps": mb / te, "dec_MBps": mb / td,
                                                   "exact": bool(ok)}
        t = np.ascontiguousarray(f.T)
        for name, comp, decomp in (
            ("zstd-19", zstandard.ZstdCompressor(level=19).compress, zstandard.ZstdDecompressor().decompress),
            ("blosc2 shuffle+zstd", lambda b: blosc2.compress2(b, typesize=4, filter=blosc2.Filter.SHUFFLE,
                                                                codec=blosc2.Codec.ZSTD, clevel=5), blosc2.decompress2),
            ("blosc2 bitshuffle+zstd", lambda b: blosc2.compress2(b, typesize=4, filter=blosc2.Filter.BITSHUFFLE,
                                                                   codec=blosc2.Codec.ZSTD, clevel=5), blosc2.decompress2),
        ):
            blob, te = _timed(partial(comp, t.tobytes()), 1)
            y, td = _timed(partial(decomp, blob), 1)
            rec["codecs"][name] = {"ratio": f.nbytes / len(blob), "enc_MBps": mb / te, "dec_MBps": mb / td,
                                   "exact": bytes(y) == t.tobytes()}
        best = max(r["ratio"] for k, r in rec["codecs"].items() if not k.startswith("nl-"))
        rec["nl_vs_best_baseline"] = rec["codecs"]["nl-float stream (1 ms)"]["ratio"] / best
        out[path.stem] = rec
        bar.update()
    return out


def _load(path: Path) -> tuple[np.ndarray, float]:
    meta = json.loads(path.with_suffix(".json").read_text())
    return np.load(path, mmap_mode="r", allow_pickle=False), float(meta["sampling_rate_hz"])


def _remap(x: np.ndarray) -> np.ndarray:
    """nl-lossless's archive alphabet (codes), as int16/int32 for the audio codecs."""
    uniques = [np.unique(x[:, c]) for c in range(x.shape[1])]
    a = alph.detect(uniques, x.dtype, x.shape[0])
    codes, _ = alph.to_codes(x, a)
    return np.asarray(codes).astype(x.dtype)


def _arr(y: object, dtype: np.dtype) -> np.ndarray:
    """Decoders return arrays or raw bytes depending on the package."""
    if isinstance(y, (bytes, bytearray, memoryview)):
        return np.frombuffer(y, dtype)
    return np.asarray(y).reshape(-1).view(dtype) if np.asarray(y).dtype.kind == "S" else np.asarray(y)


def _decode_fresh(config: dict, blob: bytes) -> np.ndarray:
    """Decode with a new codec instance (a timed call includes the codec lookup)."""
    return get_codec(config).decode(blob)


def _timed(fn: Callable[[], T], repeat: int) -> tuple[T, float]:
    """fn's result and its best time over ``repeat`` (>= 1) calls."""
    t = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t
    for _ in range(repeat - 1):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _baselines() -> dict[str, tuple[Callable[[np.ndarray], list[bytes]], Callable[[list[bytes], np.ndarray], np.ndarray]]]:
    """name -> (encode(x) -> list of blobs, decode(blobs, like) -> array)."""
    import blosc2
    import zstandard
    from flac_numcodecs import Flac
    from wavpack_numcodecs.wavpack import WavPack

    blosc2.set_nthreads(1)
    flac = Flac(level=8)
    wv = WavPack(level=3, num_encoding_threads=1, num_decoding_threads=1)

    def per_channel(codec):
        def enc(x):
            return [codec.encode(np.ascontiguousarray(x[:, c : c + 1])) for c in range(x.shape[1])]

        def dec(blobs, like):
            return np.stack([_arr(codec.decode(b), like.dtype).reshape(-1) for b in blobs], axis=1)

        return enc, dec

    def zstd(level, delta):
        cctx, dctx = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()

        def enc(x):
            t = np.ascontiguousarray(x.T)
            if delta:
                t = np.diff(t, axis=1, prepend=np.zeros((t.shape[0], 1), t.dtype))
            return [cctx.compress(t.tobytes())]

        def dec(blobs, like):
            t = np.frombuffer(dctx.decompress(blobs[0]), like.dtype).reshape(like.shape[1], like.shape[0])
            if delta:
                t = np.cumsum(t, axis=1, dtype=like.dtype)
            return t.T

        return enc, dec

    def blosc_enc(x):
        return [blosc2.compress2(np.ascontiguousarray(x.T).tobytes(), typesize=x.itemsize,
                                 filter=blosc2.Filter.BITSHUFFLE, codec=blosc2.Codec.ZSTD, clevel=5)]

    def blosc_dec(blobs, like):
        return np.frombuffer(blosc2.decompress2(blobs[0]), like.dtype).reshape(like.shape[1], -1).T

    def dzlib_enc(x):  # mtscomp scheme: per-channel first difference, zlib level 1
        d = np.diff(x, axis=0, prepend=np.zeros((1, x.shape[1]), x.dtype))
        return [zlib.compress(np.ascontiguousarray(d).tobytes(), 1)]

    def dzlib_dec(blobs, like):
        d = np.frombuffer(zlib.decompress(blobs[0]), like.dtype).reshape(like.shape)
        return np.cumsum(d, axis=0, dtype=like.dtype)

    return {
        "flac-8 (per channel)": per_channel(flac),
        "wavpack-3": (lambda x: [wv.encode(np.ascontiguousarray(x))], lambda b, like: _arr(wv.decode(b[0]), like.dtype).reshape(like.shape)),
        "zstd-1": zstd(1, False),
        "zstd-19": zstd(19, False),
        "zstd-1 delta": zstd(1, True),
        "zstd-19 delta": zstd(19, True),
        "blosc2 bitshuffle+zstd": (blosc_enc, blosc_dec),
        "delta+zlib (mtscomp)": (dzlib_enc, dzlib_dec),
    }


def _nl_stream(x: np.ndarray, frame: int, config: dict) -> tuple[int, float, float, bool]:
    enc, dec = get_codec(config), get_codec(config)
    settle = getattr(enc, "settle", None)  # nl-lossless: a prefilter plan on its thread, due 1 s later
    blobs, te = [], 0.0
    for s in range(0, x.shape[0], frame):
        t = time.perf_counter()
        blobs.append(enc.encode(x[s : s + frame]))
        te += time.perf_counter() - t
        if settle is not None:  # as when frames arrive in real time: the plan is done before it is due
            settle()
    t = time.perf_counter()
    ys = [dec.decode(b) for b in blobs]
    td = time.perf_counter() - t
    ok = np.array_equal(np.concatenate(ys), x)
    return sum(len(b) for b in blobs), te, td, ok


def _latency(x: np.ndarray, config: dict, n_frames: int) -> dict[str, float]:
    """Per-frame encode and decode time of 1 ms frames, 1024 channels at 30 kHz (real channels tiled)."""
    reps = -(-1024 // x.shape[1])
    need = 30 * n_frames
    base = x[: min(x.shape[0], need)]
    tiled = np.ascontiguousarray(np.tile(base, (1, reps))[:, :1024])
    if tiled.shape[0] < need:
        tiled = np.concatenate([tiled] * (-(-need // tiled.shape[0])))
    enc, dec = get_codec(config), get_codec(config)
    dec.decode(get_codec(config).encode(tiled[:30]))  # warm-up / compile
    enc.encode(tiled[:30])
    enc.reset()
    times = np.empty(n_frames)
    blobs = []
    for i in range(n_frames):
        f = tiled[30 * i : 30 * i + 30]
        t = time.perf_counter()
        blobs.append(enc.encode(f))
        times[i] = time.perf_counter() - t
    dtimes = np.empty(n_frames)
    exact = True
    for i, b in enumerate(blobs):
        t = time.perf_counter()
        y = dec.decode(b)
        dtimes[i] = time.perf_counter() - t
        exact &= bool(np.array_equal(y, tiled[30 * i : 30 * i + 30]))
    nbytes = tiled[:need].nbytes
    return {"p50_us": float(np.percentile(times, 50) * 1e6), "p99_us": float(np.percentile(times, 99) * 1e6),
            "MBps": float(nbytes / times.sum() / 1e6), "MBps_median_frame": float(61440 / np.median(times) / 1e6),
            "dec_p50_us": float(np.percentile(dtimes, 50) * 1e6), "dec_p99_us": float(np.percentile(dtimes, 99) * 1e6),
            "dec_MBps": float(nbytes / dtimes.sum() / 1e6), "dec_MBps_median_frame": float(61440 / np.median(dtimes) / 1e6),
            "ratio": float(nbytes / sum(len(b) for b in blobs)), "exact": exact}


NL_STREAM = {"id": "nl-lossless", "mode": "stream", "keyframe_interval": 100}
NL_ARCHIVE = {"id": "nl-lossless", "mode": "archive"}


def _usable(paths: list[Path]) -> list[Path]:
    """Recordings the bench can read: integer (samples, channels) with a sidecar rate; others are named."""
    ok = []
    for p in paths:
        try:
            fs = float(json.loads(p.with_suffix(".json").read_text())["sampling_rate_hz"])
            x = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"skipping {p.name}: {exc.__class__.__name__}: {exc} (needs a JSON sidecar with sampling_rate_hz)")
            continue
        if x.ndim != 2 or x.dtype not in (np.int16, np.int32) or not fs > 0:
            print(f"skipping {p.name}: expected int16/int32 (samples, channels) and a positive rate, got {x.dtype} {x.shape}")
            continue
        ok.append(p)
    return ok


def run(quick: bool = False, data: Path | None = None, max_mb: float = 256.0) -> dict:
    if data is None:
        root = shared_dir()
        if root is None:
            raise SystemExit("../shared/data not found (set NEUROLINK_SHARED or pass --data DIR)")
        data = root / "data"
    paths = _usable(sorted(data.glob("*.npy")))
    if not paths:
        raise SystemExit(f"no usable recordings in {data}")
    baselines = _baselines()
    repeat = 1 if quick else 2
    results: dict = {"recordings": {}, "latency_1024ch_30khz": {}, "notes": [], "max_mb": max_mb}
    steps = len(paths) * (3 + 2 * len(baselines)) + 2
    bar = tqdm(total=steps, desc="bench codecs", unit="step")
    for path in paths:
        x, fs = _load(path)
        if quick:
            x = x[: int(fs * 0.5)]
        if max_mb and max_mb > 0 and x.nbytes > max_mb * 1e6:  # a long wide recording: its first part
            n = int(max_mb * 1e6 // (x.shape[1] * x.itemsize))
            results["notes"].append(f"{path.stem}: first {n / fs:.1f} s of {x.shape[0] / fs:.1f} s (--max-mb {max_mb:g})")
            tqdm.write(results["notes"][-1])
            x = x[:n]
            repeat = 1
        x = np.ascontiguousarray(x)  # a plain in-memory array from here (numba does not type np.memmap)
        frame = max(1, round(fs / 1000))
        rec: dict = {"fs": fs, "channels": x.shape[1], "samples": x.shape[0], "frame_samples": frame, "codecs": {}}
        mb = x.nbytes / 1e6
        # nl-lossless streaming (1 ms frames) and archive (whole recording)
        get_codec(NL_STREAM).encode(x[:frame])  # compile outside the timings
        nbytes, te, td, ok = _nl_stream(x, frame, NL_STREAM)
        rec["codecs"]["nl-lossless stream (1 ms)"] = {"ratio": x.nbytes / nbytes, "enc_MBps": mb / te, "dec_MBps": mb / td, "exact": ok}
        bar.update()
        arc = get_codec(NL_ARCHIVE)
        blob, te = _timed(partial(arc.encode, x), repeat)
        y, td = _timed(partial(_decode_fresh, NL_ARCHIVE, blob), repeat)
        rec["codecs"]["nl-lossless archive"] = {"ratio": x.nbytes / len(blob), "enc_MBps": mb / te, "dec_MBps": mb / td,
                                                "exact": bool(np.array_equal(y, x))}
        bar.update()
        remapped = _remap(x)
        trivial = np.array_equal(remapped, x)
        for name, (enc, dec) in baselines.items():
            variants = [(name, x)]
            if name.startswith(("flac", "wavpack")):
                variants.append((name + " +alphabet", remapped))
            for vname, xv in variants:  # (not ``data``: that is the recordings folder)
                if vname.endswith("+alphabet") and trivial:
                    rec["codecs"][vname] = dict(rec["codecs"][name], note="alphabet is identity here")
                    bar.update()
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    blobs, te = _timed(partial(enc, xv), repeat)
                    y, td = _timed(partial(dec, blobs, xv), repeat)
                size = sum(len(b) for b in blobs)
                rec["codecs"][vname] = {"ratio": x.nbytes / size, "enc_MBps": mb / te, "dec_MBps": mb / td,
                                        "exact": bool(np.array_equal(np.asarray(y).reshape(xv.shape), xv))}
                bar.update()
            if len(variants) == 1:
                bar.update()
        results["recordings"][path.stem] = rec
    # latency on the first recording with enough samples, tiled to 1024 channels
    x, _ = _load(max(paths, key=lambda p: np.load(p, mmap_mode="r").shape[0]))
    x = np.ascontiguousarray(x[: 30 * 2050])  # what the latency run reads (<= 2000 frames), no more
    n_frames = 200 if quick else 2000
    for label, cfg in (("stream", NL_STREAM), ("archive", NL_ARCHIVE)):
        results["latency_1024ch_30khz"][label] = _latency(x, cfg, n_frames)
        bar.update()
    results["float32"] = _float_section(paths, quick, bar)
    results["derived_30khz"] = _derived_section(paths, quick, baselines)
    bar.close()
    results["notes"].append("float32: the first 20 s of each recording as published in µV (sidecar scale/offset)")
    results["notes"].append("latency: 1 ms frames = 30 samples x 1024 channels; the recording's channels are tiled to 1024")
    results["acceptance"] = _acceptance(results)
    return results


def _derived_section(paths: list[Path], quick: bool, baselines: dict) -> dict:
    """Recordings sampled at 10-20 kHz, resampled to 2x with an anti-alias filter (scipy's polyphase
    resampler): what a 30 kHz probe or array front end delivers, whose band above ~7.5-10 kHz is nearly
    empty. The shared data holds no real 30 kHz recording; this row shows the long-term prefilter against
    FLAC / WavPack on that spectrum, and is NOT part of the acceptance totals (derived, not recorded)."""
    from scipy import signal

    out: dict = {}
    for path in paths:
        x, fs = _load(path)
        if not 10000 <= fs <= 20000:
            continue
        x = np.asarray(x[: int(fs * (1 if quick else 20))], np.float64)
        up = signal.resample_poly(x, 2, 1, axis=0)
        xv = np.ascontiguousarray(np.clip(np.rint(up), -32768, 32767).astype(np.int16))
        fs2 = 2 * fs
        frame = max(1, round(fs2 / 1000))
        rec: dict = {"fs": fs2, "channels": xv.shape[1], "samples": xv.shape[0], "frame_samples": frame, "codecs": {}}
        mb = xv.nbytes / 1e6
        nbytes, te, td, ok = _nl_stream(xv, frame, NL_STREAM)
        rec["codecs"]["nl-lossless stream (1 ms)"] = {"ratio": xv.nbytes / nbytes, "enc_MBps": mb / te, "dec_MBps": mb / td, "exact": ok}
        arc = get_codec(NL_ARCHIVE)
        blob, te = _timed(partial(arc.encode, xv), 1)
        y, td = _timed(partial(_decode_fresh, NL_ARCHIVE, blob), 1)
        rec["codecs"]["nl-lossless archive"] = {"ratio": xv.nbytes / len(blob), "enc_MBps": mb / te, "dec_MBps": mb / td,
                                                "exact": bool(np.array_equal(y, xv))}
        for name in ("flac-8 (per channel)", "wavpack-3"):
            enc, dec = baselines[name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                blobs, te = _timed(partial(enc, xv), 1)
                y, td = _timed(partial(dec, blobs, xv), 1)
            rec["codecs"][name] = {"ratio": xv.nbytes / sum(len(b) for b in blobs), "enc_MBps": mb / te, "dec_MBps": mb / td,
                                   "exact": bool(np.array_equal(np.asarray(y).reshape(xv.shape), xv))}
        best = max(rec["codecs"][n]["ratio"] for n in ("flac-8 (per channel)", "wavpack-3"))
        rec["archive_vs_best"] = rec["codecs"]["nl-lossless archive"]["ratio"] / best
        rec["stream_vs_best"] = rec["codecs"]["nl-lossless stream (1 ms)"]["ratio"] / best
        out[f"{path.stem} resampled to {fs2 / 1000:g} kHz"] = rec
    return out


def _acceptance(res: dict) -> dict:
    base = ("flac-8 (per channel)", "flac-8 (per channel) +alphabet", "wavpack-3", "wavpack-3 +alphabet", "zstd-19", "zstd-19 delta")
    out: dict = {"per_recording": {}}
    tot_raw = tot_best = tot_arc = tot_str = 0.0
    for name, rec in res["recordings"].items():
        raw = rec["samples"] * rec["channels"] * 2
        best = max(rec["codecs"][b]["ratio"] for b in base)
        arc = rec["codecs"]["nl-lossless archive"]["ratio"]
        stv = rec["codecs"]["nl-lossless stream (1 ms)"]["ratio"]
        out["per_recording"][name] = {"best_baseline": best, "archive": arc, "stream": stv,
                                      "archive_ok": arc >= best, "stream_ok": stv >= best}
        tot_raw += raw
        tot_best += raw / best
        tot_arc += raw / arc
        tot_str += raw / stv
    out["total"] = {"best_baseline": tot_raw / tot_best, "archive": tot_raw / tot_arc, "stream": tot_raw / tot_str,
                    "archive_vs_best": tot_best / tot_arc}
    lat = res.get("latency_1024ch_30khz", {}).get("stream")
    if lat:
        arc_speed = min(r["codecs"]["nl-lossless archive"]["enc_MBps"] for r in res["recordings"].values())
        out["speed"] = {"stream_enc_MBps": lat["MBps"], "stream_dec_MBps": lat["dec_MBps"], "stream_p99_us": lat["p99_us"],
                        "archive_enc_MBps_min": arc_speed,
                        "stream_enc_ok": lat["MBps"] >= 300, "stream_dec_ok": lat["dec_MBps"] >= 300,
                        "p99_ok": lat["p99_us"] <= 250, "archive_ok": arc_speed >= 61}
    return out


def _table(res: dict) -> str:
    lines = []
    for name, rec in res["recordings"].items():
        lines.append(f"\n{name}: {rec['channels']} ch @ {rec['fs']:.1f} Hz, {rec['samples']} samples, 1 ms = {rec['frame_samples']} samples")
        lines.append(f"  {'codec':34s} {'ratio':>7s} {'enc MB/s':>9s} {'dec MB/s':>9s}  exact")
        for cname, r in sorted(rec["codecs"].items(), key=lambda kv: -kv[1]["ratio"]):
            lines.append(f"  {cname:34s} {r['ratio']:7.3f} {r['enc_MBps']:9.1f} {r['dec_MBps']:9.1f}  {r['exact']}")
    lines.append("\nlatency, 1 ms frames of 1024 ch @ 30 kHz (channels tiled; p = percentiles over frames):")
    for label, r in res["latency_1024ch_30khz"].items():
        lines.append(f"  {label:8s} enc p50 {r['p50_us']:7.1f} us  p99 {r['p99_us']:7.1f} us  ({r['MBps']:.0f} MB/s, "
                     f"{r['MBps_median_frame']:.0f} at the median frame)   dec p50 {r['dec_p50_us']:7.1f} us  "
                     f"p99 {r['dec_p99_us']:7.1f} us  ({r['dec_MBps']:.0f} MB/s, {r['dec_MBps_median_frame']:.0f})  "
                     f"ratio {r['ratio']:.3f}  exact {r['exact']}")
    for name, rec in res.get("float32", {}).items():
        lines.append(f"\n{name} as float32 (µV, sidecar scale/offset): {rec['samples']} samples, 1 ms = {rec['frame_samples']} samples")
        for cname, r in sorted(rec["codecs"].items(), key=lambda kv: -kv[1]["ratio"]):
            lines.append(f"  {cname:34s} {r['ratio']:7.3f} {r['enc_MBps']:9.1f} {r['dec_MBps']:9.1f}  {r['exact']}")
        lines.append(f"  nl-float / best baseline: x{rec['nl_vs_best_baseline']:.2f}")
    for name, rec in res.get("derived_30khz", {}).items():
        lines.append(f"\n{name} (derived, not a recording; anti-aliased 2x resampling): {rec['channels']} ch, "
                     f"{rec['samples']} samples, 1 ms = {rec['frame_samples']} samples")
        for cname, r in sorted(rec["codecs"].items(), key=lambda kv: -kv[1]["ratio"]):
            lines.append(f"  {cname:34s} {r['ratio']:7.3f} {r['enc_MBps']:9.1f} {r['dec_MBps']:9.1f}  {r['exact']}")
        lines.append(f"  nl / best of FLAC, WavPack: archive x{rec['archive_vs_best']:.3f}, stream x{rec['stream_vs_best']:.3f}")
    acc = res["acceptance"]
    lines.append("\nacceptance (best of FLAC / WavPack / zstd-19):")
    for name, a in acc["per_recording"].items():
        lines.append(f"  {name:28s} best {a['best_baseline']:.3f}  archive {a['archive']:.3f} ({'ok' if a['archive_ok'] else 'MISS'})"
                     f"  stream {a['stream']:.3f} ({'ok' if a['stream_ok'] else 'MISS'})")
    t = acc["total"]
    lines.append(f"  {'all recordings':28s} best {t['best_baseline']:.3f}  archive {t['archive']:.3f} "
                 f"(x{t['archive_vs_best']:.3f} of best, target 1.05)  stream {t['stream']:.3f}")
    sp = acc.get("speed")
    if sp:
        lines.append(f"  speed: stream enc {sp['stream_enc_MBps']:.0f} MB/s ({'ok' if sp['stream_enc_ok'] else 'MISS'}), "
                     f"dec {sp['stream_dec_MBps']:.0f} MB/s ({'ok' if sp['stream_dec_ok'] else 'MISS'}), "
                     f"p99 {sp['stream_p99_us']:.0f} us ({'ok' if sp['p99_ok'] else 'MISS'}); archive enc >= "
                     f"{sp['archive_enc_MBps_min']:.0f} MB/s ({'ok' if sp['archive_ok'] else 'MISS'})")
    return "\n".join(lines)


def _png(res: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = list(res["recordings"])
    fig, axes = plt.subplots(1, len(recs), figsize=(5 * len(recs), 4.5), squeeze=False)
    for ax, name in zip(axes[0], recs, strict=False):
        codecs = res["recordings"][name]["codecs"]
        for cname, r in codecs.items():
            ax.scatter(r["enc_MBps"], r["ratio"], color="C3" if cname.startswith("nl-") else "C0")
            ax.annotate(cname, (r["enc_MBps"], r["ratio"]), fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("encode MB/s (one core)")
        ax.set_ylabel("compression ratio")
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neurolink bench codecs", description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write results as JSON here")
    ap.add_argument("--png", help="write a ratio-vs-speed chart here")
    ap.add_argument("--quick", action="store_true", help="short smoke run (0.5 s of each recording)")
    ap.add_argument("--data", help="folder of .npy recordings with JSON sidecars (default: ../shared/data)")
    ap.add_argument("--max-mb", type=float, default=256.0,
                    help="use at most this much raw data per recording, from its start (default 256; 0 = all)")
    args = ap.parse_args(argv)
    if args.max_mb < 0:
        ap.error(f"--max-mb: expected >= 0 (0 = no limit), got {args.max_mb:g}")
    res = run(quick=args.quick, data=Path(args.data) if args.data else None, max_mb=args.max_mb)
    print(_table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.png:
        _png(res, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
