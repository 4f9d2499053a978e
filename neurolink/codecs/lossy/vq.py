"""Predictive gain-shape vector quantisation with codebooks trained on real recordings.

Why this shape: 1 ms frames have 1 (ECoG at 1 kHz) to 30 samples, so vectors run across channels:
each time step of each group of 4 neighbouring channels is one 4-D vector, whatever the frame
length. Per channel a closed-loop predictor ``m + rho * (previous reconstruction - m)`` (mean and
rho from the encoder's window statistics, sent in keyframes) removes the LFP/DC; per frame and group
a forward gain (3 dB steps, DPCM + Rice across frames) normalises the residual, whose shape is
matched to the nearest codeword (masked for a short last group) and sent as a ``bits``-bit index.
Codebooks: ``neurolink/codecs/models/vq_d4_b{bits}.npy`` (k-means on locust trial 01 + ECoG;
``scripts/train_vq.py``). One rate knob: ``bits`` per 4-sample vector (bits/4 bits per sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import (
    check_pos,
    error_code,
    fail,
    get_bits,
    get_signed,
    new_rice_state,
    put_bits,
    put_signed,
)
from neurolink.codecs.lossy._common import get_f32, get_words, load_model_array, need_bits, put_f32, put_words
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number

DIM = 4
MIN_BITS, MAX_BITS = 2, 8
RHO_BITS = 7
GAIN_MIN, GAIN_MAX = -100, 100  # gain index: g = 2 ** (index / 2)
STATS_DECAY = 0.9
ERR_GAIN = error_code(16, "gain index out of range")  # jitted kernels return errors, never raise
_CODEBOOKS: dict[int, np.ndarray] = {}


def codebook(bits: int) -> np.ndarray:
    if bits not in _CODEBOOKS:
        cb = load_model_array(f"vq_d{DIM}_b{bits}.npy").astype(np.float64)
        if cb.shape != (1 << bits, DIM) or not np.all(np.isfinite(cb)):
            raise ValueError(f"codebook vq_d{DIM}_b{bits}.npy has shape {cb.shape}")
        _CODEBOOKS[bits] = cb
    return _CODEBOOKS[bits]


@njit(cache=True)
def gain_index(rms: float) -> int:
    if rms <= 0.0:
        return GAIN_MIN
    gi = int(np.rint(2.0 * np.log2(rms)))
    return min(max(gi, GAIN_MIN), GAIN_MAX)


@njit(cache=True)
def _encode(x, buf, pos, cb, bits, m, rho, prev, gprev, a, n):
    n_s, n_ch = x.shape
    n_g = (n_ch + DIM - 1) // DIM
    rec = np.empty_like(x)
    ncb = cb.shape[0]
    e = np.zeros(DIM)
    for g in range(n_g):
        c0 = g * DIM
        d = min(DIM, n_ch - c0)
        # forward gain from the open-loop residual of this frame
        pw = 0.0
        for i in range(n_s):
            for j in range(d):
                c = c0 + j
                xp = prev[c] if i == 0 else x[i - 1, c]
                r = x[i, c] - (m[c] + rho[c] * (xp - m[c]))
                pw += r * r
        gi = gain_index(np.sqrt(pw / (n_s * d)))
        pos = put_signed(buf, pos, gi - gprev[g], a, n, g)
        gprev[g] = gi
        gain = 2.0 ** (gi / 2.0)
        for i in range(n_s):
            for j in range(d):
                c = c0 + j
                e[j] = (x[i, c] - (m[c] + rho[c] * (prev[c] - m[c]))) / gain
            best, bd = 0, 1e300
            for k in range(ncb):
                s = 0.0
                for j in range(d):
                    t = e[j] - cb[k, j]
                    s += t * t
                    if s >= bd:
                        break
                if s < bd:
                    bd, best = s, k
            pos = put_bits(buf, pos, best, bits)
            for j in range(d):
                c = c0 + j
                prev[c] = m[c] + rho[c] * (prev[c] - m[c]) + gain * cb[best, j]
                rec[i, c] = prev[c]
    return rec, pos


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, cb, bits, m, rho, prev, gprev, a, n):
    n_g = (n_ch + DIM - 1) // DIM
    y = np.empty((n_s, n_ch))
    for g in range(n_g):
        c0 = g * DIM
        d = min(DIM, n_ch - c0)
        dg, pos = get_signed(buf, pos, a, n, g)
        gi = gprev[g] + dg
        if gi < GAIN_MIN or gi > GAIN_MAX:
            return y, fail(pos, ERR_GAIN)
        gprev[g] = gi
        gain = 2.0 ** (gi / 2.0)
        for i in range(n_s):
            k, pos = get_bits(buf, pos, bits)
            for j in range(d):
                c = c0 + j
                prev[c] = m[c] + rho[c] * (prev[c] - m[c]) + gain * cb[k, j]
                y[i, c] = prev[c]
    return y, pos  # pos >= BAD: truncated or corrupt (see _bitio)


class VQ(LossyStreamCodec):
    codec_id = "nl-vq"

    def __init__(self, bits: int = 6, keyframe_interval: int = 100) -> None:
        self.bits = check_number("bits", bits, MIN_BITS, MAX_BITS, "nl-vq", integer=True)
        super().__init__(keyframe_interval)
        self._cb = codebook(self.bits)
        self._stats: list[Any] | None = None

    def _params(self) -> dict[str, Any]:
        return {"bits": self.bits}

    def reset(self) -> None:
        super().reset()
        self._stats = None

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        n_g = (n_channels + DIM - 1) // DIM
        self._gprev = np.zeros(n_g, np.int64)
        self._a, self._n = new_rice_state(n_g)

    def _window_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and lag-1 coefficient per channel from the decaying window statistics (encoder only)."""
        st = self._stats
        if st is None or st[0].size != x.shape[1] or st[3] < 2:
            return x.mean(axis=0), np.zeros(x.shape[1], np.int64)
        mu = st[0] / st[3]
        var = st[1] / st[3] - mu**2
        rho = (st[2] / max(st[3] - 1, 1) - mu**2) / np.maximum(var, 1e-12)
        return mu, np.clip(np.rint(rho * (2**RHO_BITS - 1)), 0, 2**RHO_BITS - 1).astype(np.int64)

    def _accumulate(self, x: np.ndarray) -> None:
        st = self._stats
        if st is None or st[0].size != x.shape[1]:
            st = self._stats = [np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.zeros(x.shape[1]), 0, None]
        st[0] += x.sum(axis=0)
        st[1] += (x * x).sum(axis=0)
        lagged = np.vstack([st[4], x[:-1]]) if st[4] is not None else x[:-1]
        st[2] += (lagged * (x if st[4] is not None else x[1:])).sum(axis=0)
        st[3] += x.shape[0]
        st[4] = x[-1:].copy()

    def _set_model(self, mu: np.ndarray, ridx: np.ndarray) -> None:
        self._m = mu
        self._rho = ridx.astype(np.float64) / (2**RHO_BITS - 1)
        self._prev = mu.copy()

    def _encode_payload(self, x, buf, pos, key):
        if key:
            mu, ridx = self._window_model(x)
            mu = np.asarray(mu, np.float32).astype(np.float64)
            pos = put_f32(buf, pos, mu)
            pos = put_words(buf, pos, ridx, RHO_BITS)
            self._set_model(mu, ridx)
            if self._stats is not None:
                for i in range(3):
                    self._stats[i] *= STATS_DECAY
                self._stats[3] *= STATS_DECAY
        self._accumulate(x)
        return _encode(x, buf, pos, self._cb, self.bits, self._m, self._rho, self._prev, self._gprev, self._a, self._n)

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        if key:
            mu, pos = get_f32(buf, pos, n_ch, "channel mean")
            ridx, pos = get_words(buf, pos, n_ch, RHO_BITS)
            check_pos(buf, pos)
            self._set_model(mu, ridx)
        need_bits(buf, pos, n_s * ((n_ch + DIM - 1) // DIM) * self.bits)
        y, pos = _decode(buf, pos, n_s, n_ch, self._cb, self.bits, self._m, self._rho, self._prev, self._gprev, self._a, self._n)
        check_pos(buf, pos)
        return y
