"""Error-bounded near-lossless predictive coding: every sample within k LSB of the original.

Closed-loop DPCM (as JPEG-LS's near-lossless mode): the prediction is made from the *reconstruction*,
so quantisation errors never accumulate and the bound holds sample by sample. The residual is
quantised with step 2k+1 and Rice-coded with per-channel adaptive parameters. The only rate knob is
``k``: k = 0 is lossless for int16; for float32 input the bound is k + 0.5 input units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import ERR_PREFIX, ESCAPE, check_pos, error_code, fail, new_rice_state
from neurolink.codecs.lossy._common import need_bits
from neurolink.codecs.lossy._fastbits import (
    FILL,
    RAW_LEN_BITS,
    lead_ones,
    raw_code,
    rd_escape,
    rd_refill,
    rd_start,
    rice_code,
    rice_k,
    rice_tail,
    rice_update,
    take,
    wr_end,
    wr_flush,
    zigzag_value,
)
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_flag, check_number


@njit(cache=True)
def _encode(x, buf, pos, step, prev, a, n, rec, qs, key):
    """Closed-loop DPCM + adaptive Rice (context = channel), channel by channel. The bits are those of
    ``_bitio.put_signed``; ``_fastbits`` keeps them in a register (see there why: ~10x faster)."""
    n_s, n_ch = x.shape  # rec: x's shape, qs: transposed (int64); work arrays kept by the codec
    for i in range(n_s):  # the DPCM loops of all channels side by side (independent: SIMD, no stalls)
        for c in range(n_ch):
            q = int(np.rint((x[i, c] - prev[c]) / step))
            prev[c] = prev[c] + q * step
            rec[i, c] = prev[c]
            qs[c, i] = q
    bp, acc, nacc = pos >> 3, np.int64(0), pos & 7
    for c in range(n_ch):
        a_c, n_c, k = a[c], n[c], 0
        for i in range(n_s):
            if key and i == 0:  # the DC offset, outside the statistics (see _fastbits.raw_code)
                c1, n1, c2, n2 = raw_code(qs[c, 0])
            else:
                c1, n1, c2, n2, a_c, n_c, k = rice_code(qs[c, i], a_c, n_c, k)
            acc, nacc = (acc << n1) | c1, nacc + n1
            if nacc >= 32:  # (wr_flush inline: a call that takes buf costs ~20 ns)
                nacc -= 32
                w = acc >> nacc
                buf[bp] |= np.uint8((w >> 24) & 255)
                buf[bp + 1] = np.uint8((w >> 16) & 255)
                buf[bp + 2] = np.uint8((w >> 8) & 255)
                buf[bp + 3] = np.uint8(w & 255)
                bp += 4
                acc &= (np.int64(1) << nacc) - 1
            if n2:
                acc, nacc = (acc << n2) | c2, nacc + n2
                if nacc >= 32:
                    bp, acc, nacc = wr_flush(buf, bp, acc, nacc)
        a[c], n[c] = a_c, n_c
    return rec, wr_end(buf, bp, acc, nacc)


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, step, prev, a, n, y, key):
    size = buf.size
    bad = False
    bp, acc, nacc = rd_start(buf, pos)
    for c in range(n_ch):
        p = prev[c]
        a_c, n_c, k = a[c], n[c], 0
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
            if key and i == 0:  # the DC offset (see _fastbits.raw_code)
                nb, acc, nacc = take(acc, nacc, RAW_LEN_BITS)
                if nb > 32:
                    bad = True
                    nb = 0
                u, acc, nacc = take(acc, nacc, nb)
            else:
                q = lead_ones(acc, nacc)
                k = rice_k(k, a_c, n_c)
                if q < ESCAPE:
                    u, acc, nacc = rice_tail(acc, nacc, q, k)
                else:
                    u, bp, acc, nacc = rd_escape(buf, bp, acc, nacc)
                a_c, n_c = rice_update(a_c, n_c, u >> 1)
            p = p + zigzag_value(u) * step
            y[c, i] = p
        prev[c] = p
        a[c], n[c] = a_c, n_c
    end = bp * 8 - nacc
    if bad:
        return y, ERR_RAW
    # bytes past the end read as zeros: reading beyond them is the truncation _bitio's readers reported
    return y, (end if end <= buf.size * 8 else fail(end, ERR_PREFIX))


ERR_RAW = error_code(18, "keyframe value wider than 32 bits")


class NearLossless(LossyStreamCodec):
    codec_id = "nl-nearlossless"
    _reuse_buffers = True

    def __init__(self, k: int = 4, keyframe_interval: int = 100, raw_dc: bool = False) -> None:
        self.k = check_number("k", k, 0, 4096, "nl-nearlossless", integer=True)
        # raw_dc: a keyframe codes each channel's first value (its DC offset, predicted from 0) outside the
        # adaptive Rice statistics (_fastbits.raw_code). Off by default: it changes the keyframes' bytes
        # (the format), so it is opted into by config, which travels with the stream to the decoder.
        self.raw_dc = check_flag("raw_dc", raw_dc, "nl-nearlossless")
        super().__init__(keyframe_interval)
        self._qs = self._rec = self._y = np.zeros((0, 0))  # frame-sized work arrays (see _reuse_buffers)

    def _params(self) -> dict[str, Any]:
        return {"k": self.k, **({"raw_dc": True} if self.raw_dc else {})}

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._a, self._n = new_rice_state(n_channels, 16 * (2 * self.k + 1) if self.k == 0 else 16)
        # channel-major work arrays: the coder runs channel by channel (a column of a (samples, channels)
        # array at 1024 channels is a 8 kB stride: every element in the same L1 set)
        if encoder and self._rec.shape != (n_samples, n_channels):
            self._qs = np.empty((n_channels, n_samples), np.int64)
            self._rec = np.empty((n_samples, n_channels))
        if not encoder and self._y.shape != (n_channels, n_samples):
            self._y = np.empty((n_channels, n_samples))

    def _encode_payload(self, x, buf, pos, key):
        return _encode(x, buf, pos, float(2 * self.k + 1), self._prev, self._a, self._n, self._rec, self._qs, key and self.raw_dc)

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        need_bits(buf, pos, n_s * n_ch)  # the kernel does not stop at the end: bound its work by the payload
        y, pos = _decode(buf, pos, n_s, n_ch, float(2 * self.k + 1), self._prev, self._a, self._n, self._y, key and self.raw_dc)
        check_pos(buf, pos)
        return y.T
