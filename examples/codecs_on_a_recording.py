"""Every level of the packaged codec ladder on a real recording: compression ratio and fidelity.

    .venv/bin/python examples/codecs_on_a_recording.py [--seconds 2]

Streams the recording through each level in 1 ms frames (as the daemon does: one encoder, one decoder,
state across frames) and scores the reconstruction as users do (neurolink.metrics.fidelity).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from neurolink.codecs import get_codec, load_ladder
from neurolink.data import default_recording
from neurolink.metrics import fidelity
from neurolink.sources.synthetic import synthetic_recording


def load(seconds: float) -> tuple[np.ndarray, float, str]:
    path = default_recording()
    if path is None:  # no ../shared/data: a synthetic 8-channel recording
        fs = 15000.0
        return synthetic_recording(int(seconds * fs), 8, fs, seed=1), fs, "synthetic"
    fs = float(json.loads(path.with_suffix(".json").read_text())["sampling_rate_hz"])
    return np.ascontiguousarray(np.load(path, mmap_mode="r")[: int(seconds * fs)]), fs, path.stem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    x, fs, name = load(args.seconds)
    frame = max(1, round(fs / 1000))
    print(f"{name}: {x.shape[1]} ch @ {fs:g} Hz, {x.shape[0]} samples, frames of {frame}")
    ladder = load_ladder()
    for level, (label, cfg) in enumerate(zip(ladder.names, ladder, strict=True)):
        enc, dec = get_codec(cfg), get_codec(cfg)
        blobs = [enc.encode(x[i : i + frame]) for i in range(0, x.shape[0], frame)]
        y = np.concatenate([dec.decode(b) for b in blobs])
        ratio = x.nbytes / sum(len(b) for b in blobs)
        if enc.lossless:
            print(f"  level {level} {label:16s} ratio {ratio:6.2f}  bit-exact {np.array_equal(x, y)}")
            continue
        f = fidelity(x.astype(np.float64), y.astype(np.float64), fs)
        print(f"  level {level} {label:16s} ratio {ratio:6.2f}  SNR {f['snr_db']:5.1f} dB  spike F1 {f['spike_f1']:.2f}"
              f"  band-power error {100 * f['band_power_err']:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
