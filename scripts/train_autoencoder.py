"""Train the nl-ae autoencoder (torch, CPU) and export encoder/decoder to ONNX in neurolink/codecs/models/.

Trains on locust trial 01 and the ECoG only; locust trial 02 stays held out (`neurolink bench rd`
reports it). Segments are made as the codec makes them: 16 samples of one channel, the segment mean
removed, divided by the channel's scale (RMS of first differences). Latents are bounded (4 tanh)
and trained with additive uniform noise of a random width in the knob's range [0.05, 0.8], the usual
differentiable stand-in for quantisation, so one network serves every rate. Takes ~1-2 min on 2 cores.

    python scripts/train_autoencoder.py [--data DIR] [--out DIR] [--epochs 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurolink.codecs.lossy._common import MODELS_DIR
from neurolink.data import shared_dir

log = logging.getLogger("train_autoencoder")
TRAIN = ["locust_tetrode_trial01", "ecog_seizure_78ch_1khz"]
SEG, LATENT, HIDDEN, ZMAX = 16, 8, 64, 4.0
STEP_RANGE = (0.05, 0.8)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(SEG, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, LATENT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ZMAX * torch.tanh(self.net(x) / ZMAX)


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, SEG))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def segments(x: np.ndarray, frame: int = 15) -> np.ndarray:
    """(samples, channels) -> normalised (n, SEG) segments: frame of `frame` samples, edge-padded to SEG."""
    x = x.astype(np.float64)
    scale = np.sqrt(np.mean(np.diff(x, axis=0) ** 2, axis=0))
    keep = scale > 0
    x, scale = x[:, keep], scale[keep]
    n_f = x.shape[0] // frame
    f = x[: n_f * frame].reshape(n_f, frame, -1)
    d = (f - f.mean(axis=1, keepdims=True)) / scale
    d = np.concatenate([d, np.repeat(d[:, -1:], SEG - frame, axis=1)], axis=1)
    return d.transpose(0, 2, 1).reshape(-1, SEG).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=(shared_dir() / "data") if shared_dir() else None)
    p.add_argument("--out", type=Path, default=MODELS_DIR)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    data = np.concatenate([segments(np.load(args.data / f"{n}.npy")) for n in TRAIN])
    rng = np.random.default_rng(args.seed)
    rng.shuffle(data)
    n_val = min(20000, len(data) // 10)
    val, train = torch.from_numpy(data[:n_val]), torch.from_numpy(data[n_val:])
    log.info("segments: %d train, %d validation", len(train), len(val))
    enc, dec = Encoder(), Decoder()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    lo, hi = np.log(STEP_RANGE[0]), np.log(STEP_RANGE[1])
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(train))
        for i in range(0, len(train), 1024):
            xb = train[perm[i : i + 1024]]
            z = enc(xb)
            step = torch.exp(torch.empty(len(xb), 1).uniform_(lo, hi))
            zq = z + (torch.rand_like(z) - 0.5) * step
            loss = ((dec(zq) - xb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            res = {s: float(((dec(torch.round(enc(val) / s) * s) - val) ** 2).mean()) for s in (0.05, 0.2, 0.8)}
        log.info("epoch %d (%.0f s): validation MSE (normalised) at step %s", epoch, time.time() - t0, res)
    args.out.mkdir(parents=True, exist_ok=True)
    enc.eval()
    dec.eval()
    for name, mod, inp, out, dim in (("ae_encoder", enc, "x", "z", SEG), ("ae_decoder", dec, "z", "x", LATENT)):
        torch.onnx.export(mod, (torch.zeros(4, dim),), str(args.out / f"{name}.onnx"), input_names=[inp],
                          output_names=[out], dynamic_axes={inp: {0: "batch"}, out: {0: "batch"}},
                          opset_version=17, dynamo=False)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(args.out / "ae_encoder.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        gap = float(np.abs(sess.run(None, {"x": val[:1000].numpy()})[0] - enc(val[:1000]).numpy()).max())
    log.info("onnxruntime vs torch max |dz| = %.2e", gap)
    meta = {"segment": SEG, "latent": LATENT, "hidden": HIDDEN, "zmax": ZMAX, "step_range": STEP_RANGE,
            "trained_on": TRAIN, "held_out": ["locust_tetrode_trial02"], "epochs": args.epochs, "seed": args.seed,
            "validation_mse": res, "onnx_torch_max_abs_diff": gap}
    (args.out / "ae_meta.json").write_text(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
