"""Train the nl-vq shape codebooks (k-means) on real recordings; writes neurolink/codecs/models/vq_d4_b*.npy.

Trains on locust trial 01 and the ECoG only (trial 02 stays held out for `neurolink bench rd`).
The vectors are made exactly as the codec makes them (open-loop): per channel the residual of the
lag-1 predictor around the mean, per 1 ms frame and group of 4 channels divided by the quantised
forward gain. Plain .npy (float32), never pickle. Runs in well under a minute on one core.

    python scripts/train_vq.py [--data DIR] [--out DIR] [--bits 2-8] [--max-vectors 200000]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from scipy.cluster.vq import kmeans2

from neurolink.codecs.lossy._common import MODELS_DIR
from neurolink.codecs.lossy.vq import DIM, GAIN_MAX, GAIN_MIN
from neurolink.data import shared_dir

log = logging.getLogger("train_vq")
TRAIN = ["locust_tetrode_trial01", "ecog_seizure_78ch_1khz"]


def shape_vectors(x: np.ndarray, fs: float) -> np.ndarray:
    """(samples, channels) recording -> gain-normalised 4-D residual vectors, as the codec sees them."""
    x = x.astype(np.float64)
    mu = x.mean(axis=0)
    xc = x - mu
    rho = np.clip((xc[1:] * xc[:-1]).mean(axis=0) / np.maximum(xc.var(axis=0), 1e-12), 0, 1)
    e = xc[1:] - rho * xc[:-1]
    frame = max(1, round(fs / 1000))
    n_f = e.shape[0] // frame
    n_g = x.shape[1] // DIM  # full groups only
    e = e[: n_f * frame, : n_g * DIM].reshape(n_f, frame, n_g, DIM)
    rms = np.sqrt((e**2).mean(axis=(1, 3), keepdims=True))
    gi = np.clip(np.rint(2 * np.log2(np.maximum(rms, 1e-300))), GAIN_MIN, GAIN_MAX)
    u = e / 2.0 ** (gi / 2)
    return u.reshape(-1, DIM)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=(shared_dir() / "data") if shared_dir() else None)
    p.add_argument("--out", type=Path, default=MODELS_DIR)
    p.add_argument("--bits", default="2-8")
    p.add_argument("--max-vectors", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lo, hi = (int(v) for v in args.bits.split("-"))
    rng = np.random.default_rng(args.seed)
    parts = []
    for name in TRAIN:
        x = np.load(args.data / f"{name}.npy")
        fs = float(json.loads((args.data / f"{name}.json").read_text())["sampling_rate_hz"])
        u = shape_vectors(x, fs)
        parts.append(u[rng.choice(len(u), min(len(u), args.max_vectors // len(TRAIN)), replace=False)])
        log.info("%s: %d vectors", name, len(u))
    data = np.concatenate(parts)
    args.out.mkdir(parents=True, exist_ok=True)
    for bits in range(lo, hi + 1):
        cb, labels = kmeans2(data, 1 << bits, iter=30, minit="++", seed=args.seed)
        mse = float(((data - cb[labels]) ** 2).mean())
        np.save(args.out / f"vq_d{DIM}_b{bits}.npy", cb.astype(np.float32), allow_pickle=False)
        log.info("bits %d: %d codewords, normalised MSE %.4f", bits, len(cb), mse)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
