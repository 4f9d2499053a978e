"""Measure the codec model (bytes per frame and fidelity per ladder level) from the real codecs on real data.

Run ``python -m sim.measure_codec_model`` to regenerate ``sim/data/codec_model.json``. Nothing in the
table is invented: every number comes from encoding the recordings in ``../shared/data`` frame by frame
in blocks and decoding them again.

How: the ladder's codecs (``neurolink/data/ladder.toml``) are streaming codecs designed for consecutive
1 ms frames through ONE encoder instance (state carried across frames, keyframes inside the stream), so
each recording is cut into consecutive frames of round(fs / 1000) samples (``--frame-ms``, default 1) and
pushed through one encoder and one separate decoder instance per level, exactly as the sender and the
receiver do. The model stores the exact encoded size of every frame (``bytes_per_block`` with
``block_ms`` = frame length), so keyframe bursts and the real frame-to-frame variability are kept.

Only if the ladder cannot be loaded (or has one level) a provisional ladder of real transforms is used
(logged as a warning): level 0 = delta-zstd, level k = drop k low bits then delta-zstd; these are not
streaming codecs, so then frames are grouped into blocks of >= ``--min-block-samples`` samples.
Without ``neurolink.metrics`` the SNR-based fidelity proxy is used (logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from sim.codec_model import DEFAULT_MODEL_PATH, fidelity_score

log = logging.getLogger(__name__)

N_LEVELS_PROVISIONAL = 8
QUANTILES = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]


class DropBits:
    """Provisional lossy transform: drop ``k`` low bits (mid-rise reconstruction), then delta-zstd."""

    def __init__(self, k: int) -> None:
        from neurolink.codecs import get_codec

        self.k = k
        self.inner = get_codec({"id": "delta-zstd"})

    def encode(self, x: np.ndarray) -> bytes:
        return self.inner.encode((x.astype(np.int32) >> self.k).astype(x.dtype))

    def decode(self, blob: bytes) -> np.ndarray:
        y = self.inner.decode(blob).astype(np.int32)
        return ((y << self.k) + (1 << (self.k - 1))).astype(np.int16)

    def reset(self) -> None:
        pass


def _provisional_ladder() -> list[tuple[str, Any, Any, dict]]:
    from neurolink.codecs import get_codec

    c0 = get_codec({"id": "delta-zstd"})
    out: list[tuple[str, Any, Any, dict]] = [("lossless", c0, c0, {"id": "delta-zstd"})]
    for k in range(1, N_LEVELS_PROVISIONAL):
        d = DropBits(k)
        out.append((f"drop{k}", d, d, {"id": "provisional-dropbits+delta-zstd", "drop_bits": k}))
    return out


def _real_ladder() -> list[tuple[str, Any, Any, dict]] | None:
    try:
        from neurolink.codecs import get_codec, load_ladder

        ladder = load_ladder()
    except Exception as exc:  # the ladder is being written by someone else
        log.warning("cannot load the ladder (%s): using the provisional ladder", exc)
        return None
    if len(ladder) < 2:
        log.warning("ladder has %d level(s): using the provisional drop-bits ladder", len(ladder))
        return None
    # one encoder and one separate decoder instance per level: the streaming state lives on each side
    return [(ladder.names[i], get_codec(ladder[i]), get_codec(ladder[i]), ladder[i]) for i in range(len(ladder))]


def _fidelity_fn():
    try:
        from neurolink.metrics import fidelity

        return fidelity, "neurolink.metrics.fidelity"
    except Exception:
        log.warning("neurolink.metrics.fidelity unavailable: using the SNR fidelity proxy")
        return _snr_only, "snr-proxy"


def _snr_only(orig: np.ndarray, recon: np.ndarray, fs: float) -> dict[str, float]:
    o = orig.astype(np.float64)
    err = o - recon.astype(np.float64)
    sig = np.mean((o - o.mean(axis=0)) ** 2)
    noise = np.mean(err**2)
    snr = math.inf if noise == 0 else 10 * math.log10(sig / noise)
    return {"snr_db": snr}


def _blocks(x: np.ndarray, fs: float, block_ms: int) -> tuple[list[np.ndarray], int, int]:
    """Consecutive frames of ``block_ms`` milliseconds (round(fs * block_ms / 1000) samples each)."""
    n = max(1, int(round(fs * block_ms / 1000.0)))
    nb = x.shape[0] // n
    return [x[i * n : (i + 1) * n] for i in range(nb)], n, block_ms


def _min_block_ms(x: np.ndarray, fs: float, min_samples: int) -> int:
    """Provisional (non-streaming) codecs only: a whole number of ms holding >= min_samples samples."""
    return max(1, int(math.ceil(min_samples / (fs / 1000.0 * x.shape[1]))))


def measure_recording(path: Path, ladder, fid_fn, block_ms: int | None, min_samples: int = 2048) -> dict[str, Any]:
    """Encode one recording frame by frame through one encoder + one decoder instance per level.

    ``ladder`` holds (name, encoder, decoder, config); ``block_ms=None`` picks blocks of >= ``min_samples``.
    """
    x = np.load(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    fs = float(meta["sampling_rate_hz"])
    frames, spf, block_ms = _blocks(x, fs, block_ms or _min_block_ms(x, fs, min_samples))
    orig = np.concatenate(frames)
    levels = []
    for name, enc, dec, cfg in ladder:
        for c in (enc, dec):
            if hasattr(c, "reset"):
                c.reset()
        sizes = np.empty(len(frames), np.int64)
        recon = []
        for i, f in enumerate(frames):
            blob = enc.encode(np.ascontiguousarray(f))
            sizes[i] = len(blob)
            recon.append(dec.decode(blob))
        rec = np.concatenate(recon).reshape(orig.shape)
        fid = {k: float(v) for k, v in fid_fn(orig, rec, fs).items() if isinstance(v, (int, float, np.floating))}
        bps = sizes * 8.0 / (spf * x.shape[1])
        levels.append(
            {
                "name": name,
                "codec": cfg,
                "mean_bytes_per_block": float(sizes.mean()),
                "mean_bits_per_sample": float(bps.mean()),
                "bits_per_sample_quantiles": [float(q) for q in np.quantile(bps, QUANTILES)],
                "ratio_vs_raw": float(sizes.mean() / (spf * x.shape[1] * x.dtype.itemsize)),
                "bytes_per_block": [int(b) for b in sizes],
                "fidelity": {k: (v if math.isfinite(v) else (None if math.isnan(v) else 1e9)) for k, v in fid.items()},
                "fidelity_score": fidelity_score(fid),
            }
        )
        log.info("%s level %s: %.1f B/frame, score %.3f", path.stem, name, sizes.mean(), levels[-1]["fidelity_score"])
    return {
        "recording": path.name,
        "fs": fs,
        "channels": int(x.shape[1]),
        "samples_per_block": spf,
        "block_ms": block_ms,
        "blocks_measured": len(frames),
        "levels": levels,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    ap.add_argument("--frame-ms", type=int, default=1, help="frame length the streaming codecs are fed")
    ap.add_argument("--min-block-samples", type=int, default=2048, help="provisional (non-streaming) ladder only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from neurolink.data import shared_dir

    shared = shared_dir()
    if shared is None:
        log.error("../shared/data not found (set NEUROLINK_SHARED)")
        return 2
    ladder = _real_ladder()
    provisional = ladder is None
    if ladder is None:
        ladder = _provisional_ladder()
    fid_fn, fid_name = _fidelity_fn()
    block_ms = None if provisional else args.frame_ms
    recs = [measure_recording(p, ladder, fid_fn, block_ms, args.min_block_samples)
            for p in sorted((shared / "data").glob("*.npy"))]
    model = {
        "version": 2,
        "measurement": "streaming: consecutive frames through one encoder + one decoder instance per level",
        "frame_ms": 1.0,
        "quantiles": QUANTILES,
        "n_levels": len(ladder),
        "provisional_ladder": provisional,
        "fidelity_source": fid_name,
        "fidelity_score_rule": "see sim/codec_model.py:fidelity_score",
        "recordings": recs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model, separators=(",", ":")))
    log.info("wrote %s (%d levels, %d recordings)", args.out, len(ladder), len(recs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
