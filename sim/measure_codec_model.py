"""Measure the codec model (bytes per frame and fidelity per ladder level) from the real codecs on real data.

Run ``python -m sim.measure_codec_model`` to regenerate ``sim/data/codec_model.json``. Nothing in the
table is invented: every number comes from encoding the recordings in ``../shared/data`` frame by frame
in blocks and decoding them again.

Block size: the recordings have 4-78 channels, so a 1 ms frame holds 1-60 samples, where zstd's fixed
overhead swamps everything; a production frame (1 ms of 1024 ch x 30 kHz) holds ~30 000 samples. Each
recording is therefore encoded in consecutive blocks of at least ``--min-block-samples`` (2048) samples and
the model stores bits per sample per block; the simulator turns that into 1 ms frame sizes.

While the real ladder (``neurolink/data/ladder.toml`` with 8 levels) or ``neurolink.metrics`` are not
available, a provisional ladder of real codecs is used instead (logged as a warning): level 0 =
delta-zstd, level k = drop k low bits then delta-zstd, with the SNR-based fidelity proxy.
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


def _provisional_ladder() -> list[tuple[str, Any, dict]]:
    from neurolink.codecs import get_codec

    out: list[tuple[str, Any, dict]] = [("lossless", get_codec({"id": "delta-zstd"}), {"id": "delta-zstd"})]
    for k in range(1, N_LEVELS_PROVISIONAL):
        out.append((f"drop{k}", DropBits(k), {"id": "provisional-dropbits+delta-zstd", "drop_bits": k}))
    return out


def _real_ladder() -> list[tuple[str, Any, dict]] | None:
    try:
        from neurolink.codecs import get_codec, load_ladder

        ladder = load_ladder()
    except Exception as exc:  # the ladder is being written by someone else
        log.warning("cannot load the ladder (%s): using the provisional ladder", exc)
        return None
    if len(ladder) < 2:
        log.warning("ladder has %d level(s): using the provisional drop-bits ladder", len(ladder))
        return None
    return [(ladder.names[i], get_codec(ladder[i]), ladder[i]) for i in range(len(ladder))]


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


def _blocks(x: np.ndarray, fs: float, min_samples: int) -> tuple[list[np.ndarray], int, int]:
    """Consecutive blocks of a whole number of milliseconds holding >= min_samples samples."""
    per_ms = fs / 1000.0 * x.shape[1]
    block_ms = max(1, int(math.ceil(min_samples / per_ms)))
    n = max(1, int(round(fs * block_ms / 1000.0)))
    nb = x.shape[0] // n
    return [x[i * n : (i + 1) * n] for i in range(nb)], n, block_ms


def measure_recording(path: Path, ladder, fid_fn, min_samples: int) -> dict[str, Any]:
    x = np.load(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    fs = float(meta["sampling_rate_hz"])
    frames, spf, block_ms = _blocks(x, fs, min_samples)
    orig = np.concatenate(frames)
    levels = []
    for name, codec, cfg in ladder:
        if hasattr(codec, "reset"):
            codec.reset()
        sizes = np.empty(len(frames), np.int64)
        recon = []
        for i, f in enumerate(frames):
            blob = codec.encode(f)
            sizes[i] = len(blob)
            recon.append(codec.decode(blob))
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
                "bits_per_sample_blocks": [round(float(b), 5) for b in bps],
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
    ap.add_argument("--min-block-samples", type=int, default=2048)
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
    recs = [measure_recording(p, ladder, fid_fn, args.min_block_samples) for p in sorted((shared / "data").glob("*.npy"))]
    model = {
        "version": 1,
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
