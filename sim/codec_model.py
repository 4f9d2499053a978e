"""The measured codec model: per ladder level, per-frame encoded sizes and one fidelity score.

The table (``sim/data/codec_model.json``) is produced by ``python -m sim.measure_codec_model`` from the
real codecs on the real recordings; this module only loads and samples it. The number of levels comes
from the file, never from a constant.

Fidelity score (the ONE scalar the reward uses), in [0, 1]:
    snr_term = clip(snr_db / 50, 0, 1)                    (lossless: snr = inf -> 1)
    with neurolink.metrics: mean(snr_term, spike_f1, clip(1 - band_power_err, 0, 1), clip(pearson_r, 0, 1)),
        leaving out a metric that is undefined on a recording (spike_f1 is NaN on ECoG: no spikes)
    without it (provisional): snr_term
50 dB is where quantisation noise is far below the recordings' noise floor, so the score saturates there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurolink.errors import ConfigError

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "codec_model.json"
SNR_SATURATION_DB = 50.0


def fidelity_score(fid: dict[str, float]) -> float:
    """Collapse a fidelity dict into the reward's scalar in [0, 1] (rule in the module docstring)."""
    snr = float(fid.get("snr_db", math.inf))
    snr_term = 1.0 if not math.isfinite(snr) or snr >= 1e8 else min(max(snr / SNR_SATURATION_DB, 0.0), 1.0)
    keys = ("spike_f1", "band_power_err", "pearson_r")
    if not any(k in fid for k in keys):
        return snr_term
    terms = [snr_term]
    for k in keys:  # a metric that is undefined on a recording (no spikes in ECoG: NaN) is left out
        v = fid.get(k)
        if v is None or not math.isfinite(float(v)) or abs(float(v)) >= 1e8:
            continue
        v = 1.0 - float(v) if k == "band_power_err" else float(v)
        terms.append(min(max(v, 0.0), 1.0))
    return float(np.mean(terms))


@dataclass(frozen=True)
class StreamModel:
    """One recording's measured ladder: ``bits_per_sample[level, i]`` for consecutive real blocks.

    A 1 ms frame of this stream carries ``samples_per_ms`` samples; frame ``j`` of block ``i`` weighs
    ``bits_per_sample[level, i] * samples_per_ms / 8`` bytes (real block-to-block variability, real
    cross-level correlation, since all levels were measured on the same blocks).
    """

    name: str
    frame_s: float
    block_ms: int
    samples_per_ms: float
    bits_per_sample: np.ndarray  # (n_levels, n_blocks)
    fidelity: np.ndarray  # (n_levels,) score in [0, 1]

    @property
    def n_levels(self) -> int:
        return int(self.bits_per_sample.shape[0])

    @property
    def mean_bytes(self) -> np.ndarray:
        """Mean bytes per 1 ms frame of each level."""
        return self.bits_per_sample.mean(axis=1) * self.samples_per_ms / 8.0

    @property
    def stream_bps(self) -> float:
        """Lossless (level 0) bitrate: the unit every rate in the simulator is normalised by."""
        return float(self.mean_bytes[0] * 8.0 / self.frame_s)

    def sample_sizes(self, rng: np.random.Generator, n_frames: int) -> np.ndarray:
        """(n_levels, n_frames) bytes per frame: a random circular window over the measured blocks."""
        nb = self.bits_per_sample.shape[1]
        n_blocks = n_frames // self.block_ms + 2
        idx = (int(rng.integers(nb)) + np.arange(n_blocks)) % nb
        per_ms = np.repeat(self.bits_per_sample[:, idx], self.block_ms, axis=1)
        off = int(rng.integers(self.block_ms))
        return per_ms[:, off : off + n_frames] * (self.samples_per_ms / 8.0)


@dataclass(frozen=True)
class CodecModel:
    streams: tuple[StreamModel, ...]
    provisional: bool
    source: str

    @property
    def n_levels(self) -> int:
        return self.streams[0].n_levels


def load_codec_model(path: str | Path | None = None) -> CodecModel:
    p = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        data: dict[str, Any] = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("codec_model", f"{p} not found: run `python -m sim.measure_codec_model`") from None
    except json.JSONDecodeError as exc:
        raise ConfigError("codec_model", f"invalid JSON: {exc}", source=str(p)) from None
    frame_s = float(data.get("frame_ms", 1.0)) / 1000.0
    streams = []
    for r in data.get("recordings", []):
        levels = r["levels"]
        spb = float(r.get("samples_per_block", 1)) * int(r["channels"])
        per = [np.asarray(lv["bytes_per_block"], np.float64) * 8.0 / spb if "bytes_per_block" in lv
               else np.asarray(lv["bits_per_sample_blocks"], np.float64) for lv in levels]
        n = min(len(b) for b in per)
        bps = np.array([b[:n] for b in per], dtype=np.float64)
        fid = np.array([lv["fidelity_score"] for lv in levels], dtype=np.float64)
        # samples per 1 ms frame as the framer cuts them (whole samples): block samples / block ms
        spm = float(r.get("samples_per_block", float(r["fs"]) * int(r["block_ms"]) / 1000.0)) * int(r["channels"]) / int(r["block_ms"])
        streams.append(StreamModel(r["recording"], frame_s, int(r["block_ms"]), spm, bps, fid))
    if not streams:
        raise ConfigError("recordings", "codec model has no recordings", source=str(p))
    if len({s.n_levels for s in streams}) != 1:
        raise ConfigError("levels", "recordings disagree on the number of levels", source=str(p))
    return CodecModel(tuple(streams), bool(data.get("provisional_ladder", False)), str(p))
