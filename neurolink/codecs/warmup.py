"""Compile the codecs' numba kernels before data flows.

numba compiles a kernel the first time it sees a type signature (seconds per codec on a cold cache).
Inside a running daemon that stall lands on the first frames: a 1 ms pipeline backs up, drops the oldest
frames and conceals them. So daemons and the demo warm their ladder up front, and ``make setup`` runs
``python -m neurolink.codecs.warmup`` once so the on-disk cache (``cache=True``) is filled before any
stream starts.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _frames(n_frames: int, frame_samples: int, n_channels: int, dtype: np.dtype) -> list[np.ndarray]:
    """Noisy, slowly varying frames: exercises keyframes, predicted frames and every coder branch."""
    rng = np.random.default_rng(0)
    n = n_frames * frame_samples
    t = np.arange(n)[:, None]
    x = 200.0 * np.sin(2 * np.pi * t / 97.0 + np.arange(n_channels)[None, :]) + rng.normal(0, 30, (n, n_channels))
    if dtype.kind == "f":  # ADC counts in µV, as amplifiers publish them (nl-float's integer path)
        x = (np.rint(x) * 0.195).astype(dtype)
    else:
        x = np.clip(np.rint(x), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    return [np.ascontiguousarray(x[i * frame_samples : (i + 1) * frame_samples]) for i in range(n_frames)]


def warm_up(configs: Iterable[Mapping[str, Any]], n_channels: int, frame_samples: int,
            dtype: Any = np.int16, n_frames: int = 4) -> float:
    """Encode and decode a few frames of this shape with every codec config; returns seconds spent.

    Fresh encoder/decoder instances are used and thrown away, so no stream state leaks into the real
    session. A codec that rejects the shape or dtype is skipped (the real stream will report it).
    """
    from neurolink.codecs.registry import get_codec

    t0 = time.perf_counter()
    frames = _frames(n_frames, max(1, frame_samples), max(1, n_channels), np.dtype(dtype))
    for cfg in configs:
        try:
            enc, dec = get_codec(dict(cfg)), get_codec(dict(cfg))
            for f in frames:
                dec.decode(enc.encode(f))
        except Exception as exc:  # noqa: BLE001 - warm-up must never stop a daemon
            log.debug("warm-up skipped %s for %d ch %s: %s", cfg, n_channels, np.dtype(dtype), exc)
    try:  # nl-lossless's prefilter: planned later in a stream, on a bulk thread (see prefilter.warm_up)
        from neurolink.codecs.lossless import prefilter

        prefilter.warm_up()
    except Exception as exc:  # noqa: BLE001
        log.debug("prefilter warm-up skipped: %s", exc)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neurolink.codecs.warmup", description=__doc__.splitlines()[0])
    p.add_argument("--ladder", default=None, help="ladder TOML (default: the packaged one)")
    p.add_argument("--dtypes", default="int16,int32,float32,float64", help="comma-separated sample dtypes")
    args = p.parse_args(argv)
    from neurolink.codecs.dtype_ladder import float_configs
    from neurolink.codecs.ladder import load_ladder

    ladder = load_ladder(args.ladder)
    configs = list(ladder) + [c for c in float_configs(list(ladder)) if c not in list(ladder)]
    total = 0.0
    for dt in args.dtypes.split(","):
        # one narrow and one wide shape: numba specialises on types, but some codecs branch on width
        for ch, fs in ((4, 15), (64, 30)):
            total += warm_up(configs, ch, fs, np.dtype(dt.strip()), n_frames=4 if ch > 4 else 6)
    print(f"neurolink: codec kernels compiled/cached for {len(ladder)} ladder levels in {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
