"""Audit: nl-lossless vs the bench's baselines on realistic variants of the real recordings.

Why: the shared recordings are three; users bring ECoG, probes at 30 kHz, EEG, ADCs with unused low
bits, dead channels. This builds such variants from the real data (gain, offset, drift, grids, rescaled
ADCs, clipping, line noise, decimation, upsampling, tiling) and compares ratios and round trips.
Findings of its first run (2026-12-01): docs/codecs-lossless.md, "Not reached yet". ~25 min of CPU.

Run: .venv/bin/python scripts/audit_lossless_variants.py [variant-substring ...]
Writes $NEUROLINK_AUDIT_OUT (default /tmp/nl-audit/results.json; merged across runs) and prints one
line per variant and frame size. Data: $NEUROLINK_SHARED/data (default ../shared/data).
Reuses neurolink.bench.codecs: _baselines() (flac-8 per channel, wavpack-3, zstd-19, zstd-19 delta),
_remap (the "+alphabet" baselines), _nl_stream, NL_STREAM / NL_ARCHIVE configs.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from scipy import signal

from neurolink.bench import codecs as bc
from neurolink.codecs import get_codec
from neurolink.codecs.lossless import alphabet as alph
from neurolink.sources.replay import tile_channels

DATA = Path(os.environ.get("NEUROLINK_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
OUT = Path(os.environ.get("NEUROLINK_AUDIT_OUT", "/tmp/nl-audit/results.json"))
BASE_NAMES = ("flac-8 (per channel)", "wavpack-3", "zstd-19", "zstd-19 delta")
rng = np.random.default_rng(12345)


def load(name):
    x = np.load(DATA / f"{name}.npy")
    fs = float(json.loads((DATA / f"{name}.json").read_text())["sampling_rate_hz"])
    return x, fs


def i16(y):
    return np.ascontiguousarray(np.clip(np.rint(y), -32768, 32767).astype(np.int16))


LOC, FS_L = load("locust_tetrode_trial01")
ECO, FS_E = load("ecog_seizure_78ch_1khz")
L4 = LOC.astype(np.int64)  # whole locust trial 01 (28.8 s, 431548 x 4)
E8 = ECO.astype(np.int64)  # whole ECoG (21.7 s, 78 ch)
E8s = ECO[int(6 * FS_E): int(14 * FS_E)].astype(np.int64)  # 8 s (sparse-alphabet ECoG streams are slow: ~20 ms/frame)


def frames_for(fs, extra_10ms=False):
    f = [max(1, round(fs / 1000))]
    if extra_10ms:
        f.append(max(1, int(round(fs * 10 / 1000))))
    return f


def variants():
    """name -> (x int16, fs, [frame sizes])"""
    v = {}
    v["locust base"] = (i16(L4), FS_L, frames_for(FS_L))
    v["ecog base"] = (i16(E8), FS_E, frames_for(FS_E, True))
    # gains
    v["locust x0.25"] = (i16(L4 * 0.25), FS_L, frames_for(FS_L))
    v["ecog x0.25"] = (i16(E8 * 0.25), FS_E, frames_for(FS_E))
    v["locust x4 (no clip: max 10.6k)"] = (i16(L4 * 4), FS_L, frames_for(FS_L))
    v["locust centred x32 clipped"] = (i16((L4 - 2056) * 32), FS_L, frames_for(FS_L))
    v["ecog x4 clipped"] = (i16(E8 * 4), FS_E, frames_for(FS_E))
    # DC offset / drift
    v["locust +20000 DC"] = (i16(L4 + 20000), FS_L, frames_for(FS_L))
    v["ecog +20000 DC (clips)"] = (i16(E8 + 20000), FS_E, frames_for(FS_E))
    t = np.arange(L4.shape[0])[:, None] / FS_L
    v["locust drift rails (clips ~half the time)"] = (i16(L4 + 8000 * np.sin(2 * np.pi * 0.2 * t) + 1500 * t), FS_L, frames_for(FS_L))
    v["locust drift 0.2Hz +-8000 + ramp (no clip)"] = (i16(L4 + 8000 * np.sin(2 * np.pi * 0.2 * t) + 300 * t), FS_L, frames_for(FS_L))
    t = np.arange(E8.shape[0])[:, None] / FS_E
    v["ecog drift 0.1Hz +-3000"] = (i16(E8 + 3000 * np.sin(2 * np.pi * 0.1 * t + np.arange(78) / 10)), FS_E, frames_for(FS_E))
    # unused low bits / low-resolution ADC rescaled to int16
    v["locust x8 low bits"] = (i16(L4 * 8), FS_L, frames_for(FS_L))
    v["ecog x4 low bits (centred, no clip)"] = (i16((E8 - E8.mean(0).round()) * 4), FS_E, frames_for(FS_E))
    v["ecog 8s x8 low bits (centred)"] = (i16((E8s - E8s.mean(0).round()) * 8), FS_E, frames_for(FS_E))
    # 12-bit: locust values are already 12-bit ADC counts (0..4095): rescale to int16 with rounding
    v["locust 12-bit rescaled (TABLE)"] = (i16(np.rint(L4 * 65535 / 4095) - 32768), FS_L, frames_for(FS_L))
    c10 = np.clip(np.rint((L4 - 1024) / 2), 0, 1023)  # 10-bit ADC (coarser: 2 counts per code)
    v["locust 10-bit rescaled (TABLE)"] = (i16(np.rint(c10 * 65535 / 1023) - 32768), FS_L, frames_for(FS_L))
    ec = np.clip(np.rint(E8s / 16) + 2048, 0, 4095)  # ECoG as a 12-bit ADC (16 LSB per code)
    v["ecog 8s 12-bit rescaled (TABLE)"] = (i16(np.rint(ec * 65535 / 4095) - 32768), FS_E, frames_for(FS_E))
    # many channels: tiles time-shifted + independent noise (sigma 8 counts; locust residual sd ~60)
    for n, secs in ((32, 2.0), (128, 1.0), (384, 0.5)):
        ns = int(secs * FS_L)
        tiles = []
        for k in range(-(-n // 4)):
            s = (k * 7919) % (LOC.shape[0] - ns)
            tiles.append(LOC[s: s + ns].astype(np.int64) + (rng.normal(0, 8, (ns, 4)) if k else 0))
        x = np.concatenate(tiles, axis=1)[:, :n]
        v[f"locust tiled {n}ch shifted+noise"] = (i16(x), FS_L, frames_for(FS_L))
    # plain bench tiling (exact copies) for reference
    v["locust tiled 128ch exact copies (bench)"] = (tile_channels(i16(L4[: int(FS_L)]), 128), FS_L, frames_for(FS_L))
    # EEG-like: decimate full ECoG (21.7 s) to 500 / 250 Hz
    for q in (2, 4):
        y = signal.decimate(ECO.astype(np.float64), q, axis=0, zero_phase=True)
        fs = FS_E / q
        v[f"ecog decimated {fs:.0f}Hz"] = (i16(y), fs, frames_for(fs, True))
    # channel pathologies on ECoG
    x = E8.copy()
    x[:, 3] = 0
    x[:, 10] = 0
    x[:, 20] = 1234
    x[:, 30] = rng.normal(0, 3000, x.shape[0]).round()
    v["ecog dead/const/white channels"] = (i16(x), FS_E, frames_for(FS_E, True))
    t = np.arange(E8.shape[0])[:, None] / FS_E
    v["ecog +50Hz line noise 300 (all ch)"] = (i16(E8 + 300 * np.sin(2 * np.pi * 50 * t + np.arange(78) / 20)), FS_E, frames_for(FS_E, True))
    v["ecog +60Hz line noise 2000 (all ch)"] = (i16(E8 + 2000 * np.sin(2 * np.pi * 60 * t)), FS_E, frames_for(FS_E, True))
    x = L4.copy()
    x[:, 1] = 0
    v["locust 1 dead channel"] = (i16(x), FS_L, frames_for(FS_L))
    x = L4.copy()
    x[:, 2] = 2048
    x[:, 3] = rng.normal(0, 500, x.shape[0]).round()
    v["locust const + white channel"] = (i16(x), FS_L, frames_for(FS_L))
    t = np.arange(L4.shape[0])[:, None] / FS_L
    v["locust +50Hz line 200"] = (i16(L4 + 200 * np.sin(2 * np.pi * 50 * t)), FS_L, frames_for(FS_L))
    # 30 kHz probe: upsample locust 2x
    up = signal.resample_poly(LOC[: int(3 * FS_L)].astype(np.float64), 2, 1, axis=0)
    v["locust upsampled 30kHz"] = (i16(up), 2 * FS_L, frames_for(2 * FS_L))
    # 30 kHz, 384 ch (Neuropixels-like): upsampled tiles + noise, 0.25 s
    ns = int(0.25 * 2 * FS_L)
    tiles = [i16(up[(k * 7919) % (up.shape[0] - ns):][:ns] + (rng.normal(0, 8, (ns, 4)) if k else 0)) for k in range(96)]
    v["locust up30k tiled 384ch shifted+noise"] = (np.ascontiguousarray(np.concatenate(tiles, axis=1)), 2 * FS_L, [30])
    # added after the first pass
    for q in (2, 4):
        y = signal.decimate(ECO.astype(np.float64), q, axis=0, zero_phase=True)
        fs = FS_E / q
        t = np.arange(y.shape[0])[:, None] / fs
        v[f"ecog decimated {fs:.0f}Hz +50Hz line 60"] = (i16(y + 60 * np.sin(2 * np.pi * 50 * t + np.arange(78) / 20)), fs,
                                                         frames_for(fs, True))
    ns = int(0.5 * FS_L)
    tiles = [LOC[(k * 7919) % (LOC.shape[0] - ns):][:ns].astype(np.float64) + (rng.normal(0, 8, (ns, 4)) if k else 0)
             for k in range(32)]
    up = signal.resample_poly(np.concatenate(tiles, axis=1), 2, 1, axis=0)  # noise added before upsampling
    v["locust up30k tiled 128ch, noise band-limited"] = (i16(up), 2 * FS_L, [30])
    v["locust up30k tiled 128ch band-limited x4 (AFFINE)"] = (i16(np.rint(up) * 4 - 8192), 2 * FS_L, [30])
    t = np.arange(L4.shape[0])[:, None] / FS_L
    v["locust drift +-4000 x4 (AFFINE, >4096 levels)"] = (i16((L4 - 2056 + np.rint(4000 * np.sin(2 * np.pi * 0.2 * t))) * 4), FS_L,
                                                          frames_for(FS_L))
    v["locust centred (x - 2056, zero mean)"] = (i16(L4 - 2056), FS_L, frames_for(FS_L))
    L2 = load("locust_tetrode_trial02")[0].astype(np.int64)
    v["locust trial02 centred (zero mean)"] = (i16(L2 - np.rint(L2.mean(0))), FS_L, frames_for(FS_L))
    up3 = signal.resample_poly(LOC[: int(3 * FS_L)].astype(np.float64), 2, 1, axis=0)
    for sd in (1, 3):
        v[f"locust upsampled 30kHz + white noise sd {sd}"] = (i16(up3 + rng.normal(0, sd, up3.shape)), 2 * FS_L, [30])
    return v


def run_variant(name, x, fs, frames, baselines):
    rec = {"shape": list(x.shape), "fs": fs, "raw": x.nbytes, "errors": []}
    uniques = [np.unique(x[:, c]) for c in range(x.shape[1])]
    a = alph.detect(uniques, x.dtype, x.shape[0])
    rec["alphabet_modes"] = np.bincount(np.asarray(a.mode), minlength=3).tolist()
    rec["clip_frac"] = float(np.mean((x == 32767) | (x == -32768)))
    # nl stream (one run per frame size)
    rec["stream"] = {}
    for f in frames:
        try:
            nb, te, td, ok = bc._nl_stream(x, f, bc.NL_STREAM)
            rec["stream"][str(f)] = {"ratio": x.nbytes / nb, "exact": bool(ok), "enc_s": te}
            if not ok:
                rec["errors"].append(f"stream frame {f}: round trip NOT exact")
        except Exception as exc:  # noqa: BLE001
            rec["stream"][str(f)] = {"ratio": None, "exact": False}
            rec["errors"].append(f"stream frame {f}: {exc!r}\n{traceback.format_exc()}")
    try:
        blob = get_codec(bc.NL_ARCHIVE).encode(x)
        y = get_codec(bc.NL_ARCHIVE).decode(blob)
        ok = bool(np.array_equal(y, x))
        rec["archive"] = {"ratio": x.nbytes / len(blob), "exact": ok}
        if not ok:
            rec["errors"].append("archive: round trip NOT exact")
    except Exception as exc:  # noqa: BLE001
        rec["archive"] = {"ratio": None, "exact": False}
        rec["errors"].append(f"archive: {exc!r}\n{traceback.format_exc()}")
    remapped = bc._remap(x)
    trivial = np.array_equal(remapped, x)
    rec["base"] = {}
    for bname in BASE_NAMES:
        enc, dec = baselines[bname]
        vs = [(bname, x)]
        if bname.startswith(("flac", "wavpack")) and not trivial:
            vs.append((bname + " +alphabet", remapped))
        for vname, xv in vs:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    blobs = enc(xv)
                    y = dec(blobs, xv)
                size = sum(len(b) for b in blobs)
                rec["base"][vname] = {"ratio": x.nbytes / size,
                                      "exact": bool(np.array_equal(np.asarray(y).reshape(xv.shape), xv))}
            except Exception as exc:  # noqa: BLE001
                rec["base"][vname] = {"ratio": None, "exact": False, "error": repr(exc)}
    return rec


def main(filters):
    OUT.parent.mkdir(parents=True, exist_ok=True)
    res = json.loads(OUT.read_text()) if OUT.exists() else {}
    baselines = bc._baselines()
    get_codec(bc.NL_STREAM).encode(i16(L4[:15]))  # compile
    for name, (x, fs, frames) in variants().items():
        if filters and not any(f in name for f in filters):
            continue
        if not filters and name in res:
            continue
        t = time.time()
        rec = run_variant(name, x, fs, frames, baselines)
        rec["wall_s"] = time.time() - t
        res[name] = rec
        OUT.write_text(json.dumps(res, indent=1))
        b = {k: r["ratio"] for k, r in rec["base"].items() if r["ratio"]}
        best = max(b, key=b.get)
        st = " ".join(f"s{f}={r['ratio']:.4f}" if r["ratio"] else f"s{f}=ERR" for f, r in rec["stream"].items())
        ar = rec["archive"]["ratio"]
        print(f"{name:42s} {x.shape} {st} arc={ar and round(ar, 4)} best={best}:{b[best]:.4f} "
              f"flac={b.get('flac-8 (per channel)', 0):.4f} wv={b.get('wavpack-3', 0):.4f} z19={b.get('zstd-19', 0):.4f} "
              f"alph={rec['alphabet_modes']} err={len(rec['errors'])} {rec['wall_s']:.0f}s", flush=True)
        for e in rec["errors"]:
            print("   ERROR", e.splitlines()[0], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
