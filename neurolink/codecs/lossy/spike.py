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
    ERR_FIELD,
    ERR_PREFIX,
    ESCAPE,
    check_pos,
    error_code,
    fail,
    new_rice_state,
)
from neurolink.codecs.lossy._common import need_bits
from neurolink.codecs.lossy._fastbits import (
    FILL,
    RAW_LEN_BITS,
    lead_ones,
    pack,
    raw_code,
    rd_escape,
    rd_refill,
    rd_rice,
    rd_start,
    rice_code,
    rice_k,
    rice_tail,
    rice_update,
    take,
    zigzag_value,
)
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_flag, check_number

SIGMA_ALPHA = 0.02  # EMA weight of the encoder's noise estimate (~50 quiet frames)
MEAN_FRACTION = 0.5  # mean step / detail step
# frames a channel may stay active in a row before its noise estimate also learns from active frames: the
# locust tetrode's longest runs are 8-10 frames at step 2 (2-4 at the ladder's larger steps), so the shared
# recordings never reach it and their bytes are unchanged
RUN_MAX = 32
ERR_RAW = error_code(19, "keyframe mean wider than 32 bits")


@njit(cache=True)
def _encode(x_in, buf, pos, step, mstep, prev, sigma, run, efb, a, n, x, rec, codes, lens, key):
    """Rice codes as ``_bitio.put_signed`` wrote them (contexts 2c: mean, 2c + 1: detail), collected as
    (code, length) parts and packed once at the end (``_fastbits``: a call that takes buf costs ~20 ns)."""
    n_s, n_ch = x_in.shape
    # work arrays kept by the codec: x, rec (n_ch, n_s): channel-major, as the coder runs (a column of a
    # (samples, channels) array at 1024 channels is a 8 kB stride: every element in the same L1 set);
    # codes, lens: >= n_ch * (2 n_s + 3)
    for i in range(n_s):
        for c in range(n_ch):
            x[c, i] = x_in[i, c]
    m_ = 0
    for c in range(n_ch):
        m = 0.0
        lo = hi = x[c, 0]
        for i in range(n_s):
            m += x[c, i]
            lo = min(lo, x[c, i])
            hi = max(hi, x[c, i])
        m /= n_s
        t = m + efb[c]  # first-order error feedback: mean quantisation noise shaped away from the LFP bands
        q = int(np.rint((t - prev[c]) / mstep))
        mr = prev[c] + q * mstep
        efb[c] = t - mr
        prev[c] = mr
        if key:  # the DC offset (the first mean, predicted from 0), outside the statistics (_fastbits.raw_code)
            c1, n1, c2, n2 = raw_code(q)
        else:
            c1, n1, c2, n2, a[2 * c], n[2 * c], _k = rice_code(q, a[2 * c], n[2 * c], 0)
        codes[m_], lens[m_], codes[m_ + 1], lens[m_ + 1] = c1, n1, c2, n2
        m_ += 2
        dmax = 0.0
        dabs = 0.0
        for i in range(n_s):
            d = abs(x[c, i] - mr)
            dabs += d
            if d > dmax:
                dmax = d
        dabs = 1.2533 * dabs / n_s  # mean |detail| -> Gaussian sigma
        sg = sigma[c]
        if sg <= 0.0:
            sg = max(dabs, 1e-9)
            if hi > lo:
                sigma[c] = sg
        thr = (2.5 + 4.0 * step / sg) * sg
        active = n_s > 1 and dmax > thr
        codes[m_], lens[m_] = 1 if active else 0, 1
        m_ += 1
        if active:
            a_c, n_c, k = a[2 * c + 1], n[2 * c + 1], 0
            for i in range(n_s):
                r = int(np.rint((x[c, i] - mr) / step))
                rec[c, i] = mr + r * step
                c1, n1, c2, n2, a_c, n_c, k = rice_code(r, a_c, n_c, k)
                codes[m_], lens[m_] = c1, n1
                m_ += 1
                if n2:
                    codes[m_], lens[m_] = c2, n2
                    m_ += 1
            a[2 * c + 1], n[2 * c + 1] = a_c, n_c
            run[c] += 1
            if run[c] >= RUN_MAX:  # active for RUN_MAX frames in a row: the noise estimate is too low (it
                sigma[c] += SIGMA_ALPHA * (dabs - sigma[c])  # only learns from quiet frames): let it rise
        else:
            run[c] = 0
            for i in range(n_s):
                rec[c, i] = mr
            # a flat frame (zero-padded start, dead or railed channel) says nothing about the noise: learnt
            # from, its ~0 made every later frame "active" for good (ratio 7.4 -> 2.1 at step 2)
            if n_s > 1 and hi > lo:
                sigma[c] += SIGMA_ALPHA * (dabs - sigma[c])
    return rec.T, pack(buf, pos, codes, lens, m_)


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, step, mstep, prev, a, n, y, key):
    size = buf.size
    limit = size * 8
    bp, acc, nacc = rd_start(buf, pos)
    for c in range(n_ch):
        if key:  # (see _encode)
            if nacc < FILL:
                bp, acc, nacc = rd_refill(buf, bp, acc, nacc)
            nb, acc, nacc = take(acc, nacc, RAW_LEN_BITS)
            if nb > 32:
                return y, ERR_RAW
            u, acc, nacc = take(acc, nacc, nb)
        else:
            u, bp, acc, nacc, a[2 * c], n[2 * c] = rd_rice(buf, bp, acc, nacc, a[2 * c], n[2 * c])
        mr = prev[c] + zigzag_value(u) * mstep
        prev[c] = mr
        if nacc < 1:
            bp, acc, nacc = rd_refill(buf, bp, acc, nacc)
        active, acc, nacc = take(acc, nacc, 1)
        if bp * 8 - nacc > limit:  # truncated: stop here, the caller raises (bounds the work on hostile headers)
            return y, fail(bp * 8 - nacc, ERR_FIELD)
        if active:
            a_c, n_c, k = a[2 * c + 1], n[2 * c + 1], 0
            for i in range(n_s):
                if bp + 8 <= size:  # refill from a 7-byte window, no branch on the bit count (rd_refill inline)
                    nb = (56 - nacc) & -8
                    w = ((np.int64(buf[bp]) << 48) | (np.int64(buf[bp + 1]) << 40) | (np.int64(buf[bp + 2]) << 32)
                         | (np.int64(buf[bp + 3]) << 24) | (np.int64(buf[bp + 4]) << 16) | (np.int64(buf[bp + 5]) << 8)
                         | np.int64(buf[bp + 6]))
                    acc = (acc << nb) | (w >> (56 - nb))
                    bp += nb >> 3
                    nacc += nb
                elif nacc < FILL:
                    bp, acc, nacc = rd_refill(buf, bp, acc, nacc)
                q = lead_ones(acc, nacc)
                k = rice_k(k, a_c, n_c)
                if q < ESCAPE:
                    u, acc, nacc = rice_tail(acc, nacc, q, k)
                else:
                    u, bp, acc, nacc = rd_escape(buf, bp, acc, nacc)
                a_c, n_c = rice_update(a_c, n_c, u >> 1)
                y[c, i] = mr + zigzag_value(u) * step
            a[2 * c + 1], n[2 * c + 1] = a_c, n_c
        else:
            for i in range(n_s):
                y[c, i] = mr
    end = bp * 8 - nacc
    return y, (end if end <= limit else fail(end, ERR_PREFIX))  # read past the end: truncated (see _fastbits)


class SpikeGated(LossyStreamCodec):
    codec_id = "nl-spike"
    _reuse_buffers = True

    def __init__(self, step: float = 8.0, keyframe_interval: int = 100, raw_dc: bool = False) -> None:
        self.step = check_number("step", step, 0.01, 1e6, "nl-spike")
        # raw_dc: a keyframe codes each channel's first frame mean (its DC offset, predicted from 0) outside
        # the adaptive Rice statistics (see nl-nearlossless); off by default (it changes the keyframes' bytes)
        self.raw_dc = check_flag("raw_dc", raw_dc, "nl-spike")
        super().__init__(keyframe_interval)
        self._sigma: np.ndarray | None = None
        self._xt = self._rec = self._y = np.zeros((0, 0))  # frame-sized work arrays (see _reuse_buffers)
        self._codes = self._lens = np.zeros(0, np.int64)

    def _params(self) -> dict[str, Any]:
        return {"step": self.step, **({"raw_dc": True} if self.raw_dc else {})}

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._efb = np.zeros(n_channels)
        self._a, self._n = new_rice_state(2 * n_channels)
        if encoder and self._rec.shape != (n_channels, n_samples):  # channel-major work arrays (see _encode)
            self._xt = np.empty((n_channels, n_samples))
            self._rec = np.empty((n_channels, n_samples))
            self._codes = np.empty(2 * n_channels * (n_samples + 2), np.int64)
            self._lens = np.empty(2 * n_channels * (n_samples + 2), np.int64)
        if not encoder and self._y.shape != (n_channels, n_samples):
            self._y = np.empty((n_channels, n_samples))
        if encoder and (self._sigma is None or self._sigma.size != n_channels):
            self._sigma = np.zeros(n_channels)  # encoder-only; survives keyframes (it never reaches the decoder)
            self._run = np.zeros(n_channels, np.int64)  # active frames in a row (encoder-only, as sigma)

    def reset(self) -> None:
        super().reset()
        self._sigma = None

    def _encode_payload(self, x, buf, pos, key):
        return _encode(x, buf, pos, self.step, max(self.step * MEAN_FRACTION, 1e-3), self._prev, self._sigma, self._run, self._efb, self._a, self._n,
                       self._xt, self._rec, self._codes, self._lens, key and self.raw_dc)

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        need_bits(buf, pos, 2 * n_ch)  # >= 2 bits per channel (mean, flag)
        y, pos = _decode(buf, pos, n_s, n_ch, self.step, max(self.step * MEAN_FRACTION, 1e-3), self._prev, self._a, self._n,
                        self._y, key and self.raw_dc)
        check_pos(buf, pos)
        return y.T
