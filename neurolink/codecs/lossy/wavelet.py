"""Wavelet transform coding: orthonormal Haar per channel and frame, dead-zone thresholding, Rice codes.

Why Haar: a 1 ms frame holds 15-30 samples, too short for longer filters (their boundary handling
would cost more than they decorrelate); Haar is orthonormal for any length (an odd sample passes to
the next level unchanged), so the coefficient-domain error equals the sample-domain error. The
coarsest (DC) coefficient is closed-loop DPCM-coded across frames with step/4 and first-order error
feedback (its noise would otherwise land in the LFP bands; state resets at keyframes);
detail coefficients are quantised with a dead zone (|c| < 0.7 step -> 0: the thresholding that
drops the background noise first) and Rice-coded with one adaptive context per channel and level.
One rate knob: ``step`` (input units).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import check_pos, get_signed, new_rice_state, put_signed
from neurolink.codecs.lossy._common import clampq, need_bits
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number

DC_FRACTION = 0.25  # DC step / detail step: DC noise lands in the LFP bands, so it gets a finer step
ROUND_OFFSET = 0.3  # dead-zone quantiser: q = sign(c) floor(|c|/step + 0.3) (zero zone +-0.7 step)
N_LEVELS = 18  # contexts per channel: DC + up to 17 dyadic levels (n_samples < 2**16)


@njit(cache=True)
def _lengths(n):
    ls = np.empty(N_LEVELS + 1, np.int64)
    k = 0
    ls[0] = n
    while n > 1:
        n = n // 2 + (n & 1)
        k += 1
        ls[k] = n
    return ls[: k + 1]


@njit(cache=True)
def _forward(v, tmp, ls, lev):
    """In-place Haar: v -> [DC, coarsest details, ..., finest details]; lev[i] = level of coefficient i."""
    r2 = np.sqrt(0.5)
    for j in range(ls.size - 1):
        n = ls[j]
        h = n // 2
        na = ls[j + 1]
        for i in range(h):
            a, b = v[2 * i], v[2 * i + 1]
            tmp[i] = (a + b) * r2
            tmp[na + i] = (a - b) * r2
            lev[na + i] = ls.size - 1 - j
        if n & 1:
            tmp[h] = v[n - 1]
        for i in range(n):
            v[i] = tmp[i]
    lev[0] = 0


@njit(cache=True)
def _inverse(v, tmp, ls):
    r2 = np.sqrt(0.5)
    for j in range(ls.size - 2, -1, -1):
        n = ls[j]
        h = n // 2
        na = ls[j + 1]
        for i in range(h):
            s, d = v[i], v[na + i]
            tmp[2 * i] = (s + d) * r2
            tmp[2 * i + 1] = (s - d) * r2
        if n & 1:
            tmp[n - 1] = v[h]
        for i in range(n):
            v[i] = tmp[i]


@njit(cache=True)
def _encode(x, buf, pos, step, dstep, prev, efb, a, n):
    n_s, n_ch = x.shape
    ls = _lengths(n_s)
    v = np.empty(n_s)
    tmp = np.empty(n_s)
    lev = np.zeros(n_s, np.int64)
    for c in range(n_ch):
        for i in range(n_s):
            v[i] = x[i, c]
        _forward(v, tmp, ls, lev)
        t = v[0] + efb[c]  # first-order error feedback pushes the DC noise away from the LFP bands
        q = clampq(np.rint((t - prev[c]) / dstep))
        prev[c] = prev[c] + q * dstep
        efb[c] = t - prev[c]
        pos = put_signed(buf, pos, q, a, n, c * N_LEVELS)
        for i in range(1, n_s):
            t = abs(v[i]) / step + ROUND_OFFSET
            q = clampq(np.floor(t))
            if v[i] < 0:
                q = -q
            pos = put_signed(buf, pos, q, a, n, c * N_LEVELS + lev[i])
    return x, pos


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, step, dstep, prev, a, n):
    ls = _lengths(n_s)
    v = np.empty(n_s)
    tmp = np.empty(n_s)
    lev = np.zeros(n_s, np.int64)
    _forward(np.zeros(n_s), tmp, ls, lev)  # only for the level map
    y = np.empty((n_s, n_ch))
    for c in range(n_ch):
        q, pos = get_signed(buf, pos, a, n, c * N_LEVELS)
        prev[c] = prev[c] + q * dstep
        v[0] = prev[c]
        for i in range(1, n_s):
            q, pos = get_signed(buf, pos, a, n, c * N_LEVELS + lev[i])
            v[i] = q * step
        _inverse(v, tmp, ls)
        for i in range(n_s):
            y[i, c] = v[i]
    return y, pos  # pos >= BAD: truncated (the readers never raise; see _bitio)


class Wavelet(LossyStreamCodec):
    codec_id = "nl-wavelet"

    def __init__(self, step: float = 32.0, keyframe_interval: int = 100) -> None:
        self.step = check_number("step", step, 0.01, 1e6, "nl-wavelet")
        super().__init__(keyframe_interval)

    def _params(self) -> dict[str, Any]:
        return {"step": self.step}

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._efb = np.zeros(n_channels)
        self._a, self._n = new_rice_state(n_channels * N_LEVELS)

    def _encode_payload(self, x, buf, pos, key):
        return _encode(x, buf, pos, self.step, self.step * DC_FRACTION, self._prev, self._efb, self._a, self._n)

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        need_bits(buf, pos, n_s * n_ch)
        y, pos = _decode(buf, pos, n_s, n_ch, self.step, self.step * DC_FRACTION, self._prev, self._a, self._n)
        check_pos(buf, pos)
        return y
