"""Spike-gated coding: every frame keeps its LFP, only frames that may hold a spike keep their detail.

What a neuroscientist reads from an extracellular recording is the LFP (power below ~300 Hz) and the
spikes; the broadband background noise between spikes carries neither. Per channel and frame this
codec sends (1) the frame mean, closed-loop DPCM across frames with step ``step / 4`` — the block
mean's box filter has nulls at multiples of the frame rate, so it preserves LFP band power without
aliasing the noise into it — and (2) one flag bit; when the frame's detail (samples minus the mean)
exceeds an encoder-side trigger of ``2.5 + 4 * step / sigma`` noise sigmas (sigma: running estimate
of the quiet-frame detail), the detail is quantised with ``step`` and Rice-coded. Quiet frames decode
to their mean. The decoder needs no noise estimate. One rate knob: ``step`` (input units, LSB).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import (
    BAD,
    check_pos,
    get_bits,
    get_signed,
    new_rice_state,
    put_bits,
    put_signed,
)
from neurolink.codecs.lossy._common import need_bits
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number

SIGMA_ALPHA = 0.02  # EMA weight of the encoder's noise estimate (~50 quiet frames)
MEAN_FRACTION = 0.5  # mean step / detail step


@njit(cache=True)
def _encode(x, buf, pos, step, mstep, prev, sigma, efb, a, n):
    n_s, n_ch = x.shape
    rec = np.empty_like(x)
    for c in range(n_ch):
        m = 0.0
        for i in range(n_s):
            m += x[i, c]
        m /= n_s
        t = m + efb[c]  # first-order error feedback: mean quantisation noise shaped away from the LFP bands
        q = int(np.rint((t - prev[c]) / mstep))
        mr = prev[c] + q * mstep
        efb[c] = t - mr
        prev[c] = mr
        pos = put_signed(buf, pos, q, a, n, 2 * c)
        dmax = 0.0
        dabs = 0.0
        for i in range(n_s):
            d = abs(x[i, c] - mr)
            dabs += d
            if d > dmax:
                dmax = d
        dabs = 1.2533 * dabs / n_s  # mean |detail| -> Gaussian sigma
        if sigma[c] <= 0.0:
            sigma[c] = max(dabs, 1e-9)
        thr = (2.5 + 4.0 * step / sigma[c]) * sigma[c]
        active = n_s > 1 and dmax > thr
        pos = put_bits(buf, pos, 1 if active else 0, 1)
        if active:
            for i in range(n_s):
                r = int(np.rint((x[i, c] - mr) / step))
                rec[i, c] = mr + r * step
                pos = put_signed(buf, pos, r, a, n, 2 * c + 1)
        else:
            for i in range(n_s):
                rec[i, c] = mr
            if n_s > 1:
                sigma[c] += SIGMA_ALPHA * (dabs - sigma[c])
    return rec, pos


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, step, mstep, prev, a, n):
    y = np.empty((n_s, n_ch))
    for c in range(n_ch):
        q, pos = get_signed(buf, pos, a, n, 2 * c)
        mr = prev[c] + q * mstep
        prev[c] = mr
        active, pos = get_bits(buf, pos, 1)
        if pos >= BAD:  # truncated: stop here, the caller raises (bounds the work on hostile headers)
            return y, pos
        if active:
            for i in range(n_s):
                r, pos = get_signed(buf, pos, a, n, 2 * c + 1)
                y[i, c] = mr + r * step
        else:
            for i in range(n_s):
                y[i, c] = mr
    return y, pos  # pos >= BAD: truncated (the readers never raise; see _bitio)


class SpikeGated(LossyStreamCodec):
    codec_id = "nl-spike"

    def __init__(self, step: float = 8.0, keyframe_interval: int = 100) -> None:
        self.step = check_number("step", step, 0.01, 1e6, "nl-spike")
        super().__init__(keyframe_interval)
        self._sigma: np.ndarray | None = None

    def _params(self) -> dict[str, Any]:
        return {"step": self.step}

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._efb = np.zeros(n_channels)
        self._a, self._n = new_rice_state(2 * n_channels)
        if encoder and (self._sigma is None or self._sigma.size != n_channels):
            self._sigma = np.zeros(n_channels)  # encoder-only; survives keyframes (it never reaches the decoder)

    def reset(self) -> None:
        super().reset()
        self._sigma = None

    def _encode_payload(self, x, buf, pos, key):
        return _encode(x, buf, pos, self.step, max(self.step * MEAN_FRACTION, 1e-3), self._prev, self._sigma, self._efb, self._a, self._n)

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        need_bits(buf, pos, 2 * n_ch)  # >= 2 bits per channel (mean, flag)
        y, pos = _decode(buf, pos, n_s, n_ch, self.step, max(self.step * MEAN_FRACTION, 1e-3), self._prev, self._a, self._n)
        check_pos(buf, pos)
        return y
