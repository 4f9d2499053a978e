"""Audit: the packaged ladder's lossy levels (1..7) on realistic variants of the real recordings.

Why: the lossy levels were tuned on one locust tetrode (4 ch, 15 kHz). Users bring 30 kHz probes with
hundreds of channels, ECoG, EEG at 250-1000 Hz, DC offsets, rails, dead channels, rescaled ADCs, int32 and
float32 µV streams. This builds such variants from the shared recordings (as
``scripts/audit_lossless_variants.py`` does for the lossless codec) and runs every level the way the sender
does: the level's config resolved for the stream's dtype (``resolve_ladder``, packaged ladder), one encoder
and one separate decoder instance, consecutive frames of round(fs / 1000) samples. Per variant and level:

* correctness: no exception, decoded shape/dtype, finite output, the nl-nearlossless bound |err| <= k on
  every sample (float32 streams: k ADC counts = k * scale, plus float32 rounding), exact where lossless;
* speed: encode and decode CPU time per frame (``time.thread_time``, p50/p99 after a warm-up), also scaled
  linearly to 1024 channels (only meaningful for wide variants: a 4-channel frame is mostly fixed
  overhead), and growth over the stream (last fifth vs first fifth);
* ratio (raw bytes / payload bytes) against level 0, and ``neurolink.metrics.fidelity`` (on up to 64
  channels, to bound its CPU).

Run: .venv/bin/python scripts/audit_lossy_variants.py [--raw-dc] [variant-substring ...]
Writes $NEUROLINK_AUDIT_OUT (default /tmp/nl-lossy-audit/results.json, results-rawdc.json with --raw-dc;
merged across runs) and prints one line per variant and level. Data: $NEUROLINK_SHARED/data (default
../shared/data). ``--raw-dc`` runs the lossy levels with ``raw_dc = true`` (keyframe DC offsets outside the
Rice statistics; not in the packaged ladder yet). ~2 min of CPU for all variants.
Findings of the first run (2026-12-02, 44 variants): nl-nearlossless was 2-4x slower than real time at
1024 channels x 30 kHz and nl-spike ~1.5x (fixed, same bytes: ``_fastbits``, kept work arrays); keyframe DC
offsets cost 15-30 % (up to 3x at 1-sample frames; ``raw_dc``, opt-in); a flat first frame (zero-padded
start) latched nl-spike's noise estimate for good (fixed); the LSB-absolute bounds and steps wipe out data
with a coarse LSB (noise ~6 LSB: nl-spike F1 0.07-0.15 at levels 6-7, band power +90-400 %; not fixed).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from scipy import signal

from neurolink.codecs import get_codec, load_ladder
from neurolink.codecs.dtype_ladder import resolve_ladder
from neurolink.metrics import fidelity

DATA = Path(os.environ.get("NEUROLINK_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
OUT = Path(os.environ.get("NEUROLINK_AUDIT_OUT", "/tmp/nl-lossy-audit/results.json"))
WARM_FRAMES = 20  # frames of each run left out of the timing statistics (allocations, caches)
FID_CHANNELS = 64
SLOW_US = 500.0  # per 1 ms frame at 1024 channels, one direction
ECOG_SCALE, ECOG_OFFSET = 0.5316759501409504, 0.566675950141871  # the ECoG sidecar's µV per LSB and offset
rng = np.random.default_rng(2026)


def load(name):
    x = np.load(DATA / f"{name}.npy")
    fs = float(json.loads((DATA / f"{name}.json").read_text())["sampling_rate_hz"])
    return x, fs


def i16(y):
    return np.ascontiguousarray(np.clip(np.rint(y), -32768, 32767).astype(np.int16))


def tiled(src, n, ns, noise_sd=8.0, stride=7919):
    """n channels from time-shifted copies of src's channels, each copy but the first with independent noise."""
    c = src.shape[1]
    tiles = []
    for k in range(-(-n // c)):
        s = (k * stride) % (src.shape[0] - ns)
        tiles.append(src[s: s + ns].astype(np.float64) + (rng.normal(0, noise_sd, (ns, c)) if k else 0.0))
    return np.concatenate(tiles, axis=1)[:, :n]


def variants():
    """name -> callable returning (x, fs, meta); meta may hold the float scale (µV per count)."""
    LOC, FS_L = load("locust_tetrode_trial01")
    ECO, FS_E = load("ecog_seizure_78ch_1khz")
    L = LOC[: int(3 * FS_L)].astype(np.int64)  # 3 s
    E = ECO[int(6 * FS_E): int(11 * FS_E)].astype(np.int64)  # 5 s (5000 1-sample frames)
    v = {}

    def up30(secs):
        return signal.resample_poly(LOC[: int(secs * FS_L)].astype(np.float64), 2, 1, axis=0)

    v["locust base"] = lambda: (i16(L), FS_L, {})
    v["ecog base"] = lambda: (i16(E), FS_E, {})
    # 30 kHz probes
    v["locust up30k 4ch"] = lambda: (i16(up30(1.5)), 2 * FS_L, {})
    for n, secs in ((128, 0.8), (384, 0.7), (1024, 0.6)):
        def mk(n=n, secs=secs):
            u = up30(10.0)
            return i16(tiled(u, n, int(secs * 2 * FS_L))), 2 * FS_L, {}
        v[f"locust up30k tiled {n}ch"] = mk
    v["ecog tiled 256ch"] = lambda: (i16(tiled(E, 256, 3000, noise_sd=4)), FS_E, {})
    # offsets, drift, rails
    v["locust +20000 DC"] = lambda: (i16(L + 20000), FS_L, {})
    v["ecog +20000 DC (clips)"] = lambda: (i16(E + 20000), FS_E, {})
    t = np.arange(L.shape[0])[:, None] / FS_L
    v["locust drift rails"] = lambda: (i16(L + 8000 * np.sin(2 * np.pi * 0.3 * t) + 8000 * t), FS_L, {})
    te = np.arange(E.shape[0])[:, None] / FS_E
    v["ecog drift 0.1Hz +-3000"] = lambda: (i16(E + 3000 * np.sin(2 * np.pi * 0.1 * te + np.arange(78) / 10)), FS_E, {})
    v["locust centred x32 clipped"] = lambda: (i16((L - 2056) * 32), FS_L, {})
    v["ecog x4 clipped"] = lambda: (i16(E * 4), FS_E, {})
    v["up30k 384ch x40 clipped (rails)"] = lambda: (i16((tiled(up30(10.0), 384, 9000) - 2056) * 40), 2 * FS_L, {})
    # channel pathologies
    def ecog_path():
        x = E.copy()
        x[:, 3] = 0
        x[:, 10] = 0
        x[:, 20] = 1234
        x[:, 21] = 32767
        x[:, 30] = rng.normal(0, 3000, x.shape[0]).round()
        return i16(x), FS_E, {}
    v["ecog dead/const/rail/white channels"] = ecog_path
    def loc_path():
        x = L.copy()
        x[:, 1] = 0
        x[:, 2] = -32768
        x[:, 3] = rng.normal(0, 500, x.shape[0]).round()
        return i16(x), FS_L, {}
    v["locust dead/rail/white channels"] = loc_path
    # low bits, rescaled ADCs
    v["locust x8 low bits"] = lambda: (i16(L * 8), FS_L, {})
    v["locust 12-bit rescaled"] = lambda: (i16(np.rint(L * 65535 / 4095) - 32768), FS_L, {})
    c10 = np.clip(np.rint((L - 1024) / 2), 0, 1023)
    v["locust 10-bit rescaled"] = lambda: (i16(np.rint(c10 * 65535 / 1023) - 32768), FS_L, {})
    # EEG-like rates
    for q in (2, 4):
        def mk(q=q):
            y = signal.decimate(ECO.astype(np.float64), q, axis=0, zero_phase=True)
            return i16(y), FS_E / q, {}
        v[f"ecog decimated {FS_E / q:.0f}Hz"] = mk
    v["ecog +60Hz line 2000"] = lambda: (i16(E + 2000 * np.sin(2 * np.pi * 60 * te)), FS_E, {})
    # other dtypes
    v["locust int32 x1000"] = lambda: (np.ascontiguousarray((L - 2056) * 1000).astype(np.int32), FS_L, {})
    v["ecog float32 uV (sidecar scale)"] = lambda: ((E * ECOG_SCALE + ECOG_OFFSET).astype(np.float32), FS_E,
                                                    {"scale": ECOG_SCALE})
    v["locust float32 uV (0.195/LSB)"] = lambda: (((L - 2056) * 0.195).astype(np.float32), FS_L, {"scale": 0.195})
    v["up30k 384ch float32 uV (0.195/LSB)"] = lambda: (((i16(tiled(up30(10.0), 384, 21000)).astype(np.float64) - 2056)
                                                        * 0.195).astype(np.float32), 2 * FS_L, {"scale": 0.195})
    v["ecog float32 uV float64-math offset"] = lambda: ((E * 0.1 + 3.7).astype(np.float32), FS_E, {"scale": 0.1})
    # synthetic extremes
    v["white noise sd 1000 128ch 30k"] = lambda: (i16(rng.normal(0, 1000, (24000, 128))), 30000.0, {})
    v["white noise sd 3 128ch 30k"] = lambda: (i16(rng.normal(0, 3, (24000, 128))), 30000.0, {})
    v["uniform full-scale int16 128ch 30k"] = lambda: (rng.integers(-32768, 32768, (24000, 128)).astype(np.int16), 30000.0, {})
    v["square wave rail-to-rail 128ch 30k"] = lambda: (np.where((np.arange(24000) // 7) % 2, 32767, -32768)
                                                       .astype(np.int16)[:, None].repeat(128, 1), 30000.0, {})
    v["all-zero int16 128ch 30k"] = lambda: (np.zeros((24000, 128), np.int16), 30000.0, {})
    # starts and level changes the encoder's noise estimate must survive
    v["locust first 100 ms zeros"] = lambda: (np.vstack([np.zeros((1500, 4), np.int16), i16(L)]), FS_L, {})
    v["locust noise x4 after 1 s (gain change)"] = lambda: (i16(np.vstack([L[:15000], (L[15000:] - 2056) * 4 + 2056])), FS_L, {})
    v["locust centred (zero mean)"] = lambda: (i16(L - 2056), FS_L, {})
    # coarse LSB (Neuropixels AP: ~2.3 uV/LSB, noise sd ~5 LSB; the locust's is ~60 LSB): the ladder's bounds
    # and steps are absolute LSB counts
    v["locust x0.1 (noise ~6 LSB, Neuropixels-like)"] = lambda: (i16((L - 2056) * 0.1), FS_L, {})
    v["up30k 384ch x0.1 (noise ~6 LSB)"] = lambda: (i16((tiled(up30(10.0), 384, 21000) - 2056) * 0.1), 2 * FS_L, {})
    v["all-zero float32 64ch 1k"] = lambda: (np.zeros((3000, 64), np.float32), 1000.0, {"scale": 1.0})
    v["white float32 (no grid) 64ch 1k"] = lambda: (rng.normal(0, 50, (3000, 64)).astype(np.float32), 1000.0, {})
    return v


def bound_of(cfg, meta, x):
    """Max allowed |err| per sample (array or scalar) for a config, None if the level has no bound."""
    if cfg["id"] in ("nl-lossless",):
        return 0
    inner = cfg.get("inner") if cfg["id"] == "nl-float" else cfg
    if inner is None:
        return 0  # nl-float without inner: lossless
    if inner["id"] != "nl-nearlossless":
        return None
    k = inner["k"]
    if x.dtype.kind == "f":
        s = meta.get("scale")
        if s is None:
            return None  # no grid: the channels go raw (exact) or the scale is unknown
        return (k + 1e-3) * s + 2 * np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)
    return k


def pct(a, q):
    return float(np.percentile(a, q)) if len(a) else float("nan")


def run_level(x, fs, meta, cfg):
    n_ch = x.shape[1]
    spf = max(1, int(round(fs / 1000)))
    nfr = x.shape[0] // spf
    x = x[: nfr * spf]
    rec = {"config": cfg, "errors": []}
    # warm-up on throwaway instances (numba compiles per argument type)
    w_enc, w_dec = get_codec(cfg), get_codec(cfg)
    for i in range(min(3, nfr)):
        w_dec.decode(w_enc.encode(np.ascontiguousarray(x[i * spf: (i + 1) * spf])))
    enc, dec = get_codec(cfg), get_codec(cfg)
    te = np.empty(nfr)
    td = np.empty(nfr)
    total = 0
    y = np.empty_like(x)
    try:
        for i in range(nfr):
            f = np.ascontiguousarray(x[i * spf: (i + 1) * spf])
            t0 = time.thread_time()
            blob = enc.encode(f)
            t1 = time.thread_time()
            out = dec.decode(blob)
            t2 = time.thread_time()
            te[i], td[i] = t1 - t0, t2 - t1
            total += len(blob)
            if out.shape != f.shape or out.dtype != f.dtype:
                rec["errors"].append(f"frame {i}: decoded {out.shape} {out.dtype}, expected {f.shape} {f.dtype}")
                return rec
            y[i * spf: (i + 1) * spf] = out
    except Exception as exc:  # noqa: BLE001
        rec["errors"].append(f"frame {i}: {exc!r}\n{traceback.format_exc()}")
        return rec
    rec["ratio"] = x.nbytes / max(total, 1)
    if x.dtype.kind == "f" and not np.all(np.isfinite(y)):
        rec["errors"].append("non-finite output from finite input")
    err = np.abs(y.astype(np.float64) - x.astype(np.float64))
    rec["max_err"] = float(err.max())
    b = bound_of(cfg, meta, x)
    if b is not None:
        viol = err > b
        rec["bound_violations"] = int(viol.sum())
        if viol.any():
            i, c = np.argwhere(viol)[0]
            rec["errors"].append(f"bound violated on {int(viol.sum())} samples, first at [{i},{c}]: x={x[i, c]} y={y[i, c]}"
                                 f" bound={b if np.isscalar(b) else b[i, c]}")
    s = slice(WARM_FRAMES, None) if nfr > 2 * WARM_FRAMES else slice(None)
    e_us, d_us = te[s] * 1e6, td[s] * 1e6
    scale = 1024.0 / n_ch
    rec["frames"] = nfr
    rec["enc_us"] = {"p50": pct(e_us, 50), "p99": pct(e_us, 99), "max": float(e_us.max())}
    rec["dec_us"] = {"p50": pct(d_us, 50), "p99": pct(d_us, 99), "max": float(d_us.max())}
    rec["enc_us_1024"] = {k: v * scale for k, v in rec["enc_us"].items()}
    rec["dec_us_1024"] = {k: v * scale for k, v in rec["dec_us"].items()}
    fifth = max(1, len(e_us) // 5)
    rec["growth_enc"] = float(np.median(e_us[-fifth:]) / max(np.median(e_us[:fifth]), 1e-3))
    rec["growth_dec"] = float(np.median(d_us[-fifth:]) / max(np.median(d_us[:fifth]), 1e-3))
    ch = np.linspace(0, n_ch - 1, min(n_ch, FID_CHANNELS)).astype(int)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fid = fidelity(x[:, ch], y[:, ch], fs)
        rec["fidelity"] = {k: float(fid[k]) for k in ("snr_db", "pearson_r", "spike_f1", "band_power_err", "band_power_err_max")
                           if isinstance(fid.get(k), (int, float))}
    except Exception as exc:  # noqa: BLE001
        rec["fidelity"] = {"error": repr(exc)}
    return rec


def with_raw_dc(cfg):
    if cfg["id"] in ("nl-nearlossless", "nl-spike"):
        return {**cfg, "raw_dc": True}
    if cfg["id"] == "nl-float" and cfg.get("inner"):
        return {**cfg, "inner": with_raw_dc(cfg["inner"])}
    return cfg


def main(args):
    raw_dc = "--raw-dc" in args
    filters = [a for a in args if a != "--raw-dc"]
    out = OUT.with_name(OUT.stem + "-rawdc" + OUT.suffix) if raw_dc else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    res = json.loads(out.read_text()) if out.exists() else {}
    ladder = load_ladder()
    for name, make in variants().items():
        if filters and not any(f in name for f in filters):
            continue
        if not filters and name in res:
            continue
        x, fs, meta = make()
        levels = resolve_ladder(list(ladder), x.dtype.name, explicit=False, stream=name)
        if raw_dc:
            levels = [with_raw_dc(c) for c in levels]
        t = time.time()
        c0 = time.process_time()
        vr = {"shape": list(x.shape), "dtype": x.dtype.name, "fs": fs, "levels": []}
        for lv, cfg in enumerate(levels):
            r = run_level(x, fs, meta, cfg)
            vr["levels"].append(r)
            fl = []
            if r["errors"]:
                fl.append("ERR")
            if r.get("ratio") and lv > 0 and r["ratio"] < vr["levels"][0].get("ratio", 0):
                fl.append("RATIO<L0")
            if r.get("enc_us_1024", {}).get("p50", 0) > SLOW_US or r.get("dec_us_1024", {}).get("p50", 0) > SLOW_US:
                fl.append("SLOW" if x.shape[1] >= 64 else "slow?(narrow)")
            if max(r.get("growth_enc", 1), r.get("growth_dec", 1)) > 1.5:
                fl.append("GROWS")
            fd = r.get("fidelity", {})
            e, d = r.get("enc_us", {}), r.get("dec_us", {})
            print(f"{name:38s} L{lv} {cfg['id'] if cfg['id'] != 'nl-float' else 'float>' + str(cfg.get('inner', {}).get('id'))}"
                  f" ratio={r.get('ratio', float('nan')):7.3f} maxerr={r.get('max_err', float('nan')):9.3g}"
                  f" enc p50/p99={e.get('p50', math.nan):7.1f}/{e.get('p99', math.nan):7.1f}us"
                  f" dec={d.get('p50', math.nan):7.1f}/{d.get('p99', math.nan):7.1f}us"
                  f" @1024ch enc={r.get('enc_us_1024', {}).get('p50', math.nan):8.0f} dec={r.get('dec_us_1024', {}).get('p50', math.nan):8.0f}"
                  f" snr={fd.get('snr_db', math.nan):6.1f} f1={fd.get('spike_f1', math.nan):5.2f}"
                  f" bp={fd.get('band_power_err', math.nan):6.3f} {' '.join(fl)}", flush=True)
            for err in r["errors"]:
                print("   ERROR", err.splitlines()[0], flush=True)
        vr["wall_s"] = time.time() - t
        vr["cpu_s"] = time.process_time() - c0
        print(f"  -- {name}: {x.shape} {x.dtype} fs={fs:.0f} cpu {vr['cpu_s']:.0f}s", flush=True)
        res[name] = vr
        out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
