"""Format v2 kernels: per-channel integer LPC (own past + neighbour channel) + adaptive Rice.

Prediction of code ``x[t, c]`` from six features, with integer weights ``w`` (Q12) and a bias::

    pred = clamp((w0*x[t-1,c] + w1*x[t-2,c] + w2*x[t-3,c] + w3*x[t,c-1] + w4*x[t-1,c-1] + w5*x[t-2,c-1] + b) >> 12)

The weights are *sent* (archive: per segment; stream: in every keyframe), so the encoder may choose
them however it likes (least squares on recent data, see :mod:`fit`) and the decoder needs no
adaptation: on near-white tetrode data a fitted order-3 predictor + the neighbour wire beats the
fixed polynomials of v1 by ~0.2 bit/sample; the left channel's t-2 term is what lets LPC beat the
v1 predictor on ECoG too (whole-file fits: 5.61 -> 5.38 bit/sample). The encoder splits work into a branch-free residual pass
(all channels of a row at once) and a tight Rice pass with the bit writer in registers; the decoder
Rice-decodes a row first, then reconstructs it.

State per channel: ``hist[c, 0:3]`` last three codes (most recent first), ``rice[c] = (A, N, k)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from neurolink.codecs.lossless.bitio import _refill, get_bits
from neurolink.codecs.lossless.rice import NRESET, QMAX, rice_get, rice_put, update_k

N_W = 6  # w0..w5 (own t-1..t-3, left t, t-1, t-2)
N_COEF = N_W + 1  # + bias
SHIFT = 12
MAX_W = 1 << 15
MAX_BIAS = 1 << 40
MAX_K = 40
A_KEY0 = 32 * 64


@njit(cache=True, inline="always")
def _pred(w, c, f1, f2, f3, n0, n1, n2, lo, hi):
    p = (w[c, 0] * f1 + w[c, 1] * f2 + w[c, 2] * f3 + w[c, 3] * n0 + w[c, 4] * n1 + w[c, 5] * n2 + w[c, 6]) >> SHIFT
    if p < lo:
        p = lo
    elif p > hi:
        p = hi
    return p


@njit(cache=True)
def _rows_fast(x, wt, t_lo, t_hi, lo, hi, e) -> None:
    """Rows whose three previous rows are inside ``x``: loads only, so LLVM vectorises over channels."""
    n_ch = x.shape[1]
    w0 = wt[0]
    w1 = wt[1]
    w2 = wt[2]
    w3 = wt[3]
    w4 = wt[4]
    w5 = wt[5]
    b = wt[6]
    for t in range(t_lo, t_hi):
        p = (w0[0] * np.int64(x[t - 1, 0]) + w1[0] * np.int64(x[t - 2, 0]) + w2[0] * np.int64(x[t - 3, 0]) + b[0]) >> SHIFT
        p = min(max(p, lo), hi)
        e[t, 0] = np.int64(x[t, 0]) - p
        for c in range(1, n_ch):
            p = (w0[c] * np.int64(x[t - 1, c]) + w1[c] * np.int64(x[t - 2, c]) + w2[c] * np.int64(x[t - 3, c])
                 + w3[c] * np.int64(x[t, c - 1]) + w4[c] * np.int64(x[t - 1, c - 1]) + w5[c] * np.int64(x[t - 2, c - 1])
                 + b[c]) >> SHIFT
            p = min(max(p, lo), hi)
            e[t, c] = np.int64(x[t, c]) - p


@njit(cache=True)
def residuals(x, hist, coefs, seg, key, lo, hi, e):
    """Residuals of ``x`` (n_s, n_ch) into ``e`` (int64); updates ``hist``. Row 0 of a keyframe is a
    spatial difference (its own Rice context in :func:`rice_encode`)."""
    n_s, n_ch = x.shape
    t0 = 0
    if key and n_s > 0:
        prev = np.int64(0)
        for c in range(n_ch):
            v = np.int64(x[0, c])
            e[0, c] = v - prev
            prev = v
            hist[c, 0] = v
            hist[c, 1] = v
            hist[c, 2] = v
        t0 = 1
    # rows needing the carried history (the first three of the call)
    t_slow = min(n_s, 3)
    for t in range(t0, t_slow):
        w = coefs[t // seg]
        n0 = np.int64(0)
        n1 = np.int64(0)
        n2 = np.int64(0)
        for c in range(n_ch):
            v = np.int64(x[t, c])
            h1 = hist[c, 0]
            h2 = hist[c, 1]
            p = _pred(w, c, h1, h2, hist[c, 2], n0, n1, n2, lo, hi)
            e[t, c] = v - p
            n0 = v
            n1 = h1
            n2 = h2
            hist[c, 2] = h2
            hist[c, 1] = h1
            hist[c, 0] = v
    if n_s <= 3:
        return
    n_seg = coefs.shape[0]
    wt = np.empty((N_COEF, n_ch), np.int64)
    for s in range(n_seg):
        t_lo = max(3, s * seg)
        t_hi = min(n_s, (s + 1) * seg)
        if t_lo >= t_hi:
            continue
        for c in range(n_ch):
            for j in range(N_COEF):
                wt[j, c] = coefs[s, c, j]
        _rows_fast(x, wt, t_lo, t_hi, lo, hi, e)
    for c in range(n_ch):
        hist[c, 0] = x[n_s - 1, c]
        hist[c, 1] = x[n_s - 2, c]
        hist[c, 2] = x[n_s - 3, c]


@njit(cache=True)
def _slow_put(out, ws, v, k, esc_bits) -> None:
    """Rare long codes (q + 1 + k > 32, escapes) through the generic writer."""
    rice_put(out, ws, v, k, esc_bits)


@njit(cache=True)
def rice_encode(e, rice, key, esc_bits, out, lead, tail_val, tail_min) -> int:
    """MSB-first adaptive Rice bitstream of ``e`` (row-major) into ``out``; returns bytes written.

    ``lead`` zero bits come first (v3 predicted frames: the keyframe flag; 0 otherwise); with ``tail_min >= 0``
    the last byte is filled with ``r`` in [tail_min, tail_min + 7] low bits of ``tail_val`` (the v3
    frame check) instead of zero padding. The writer state stays in registers on the fast path
    (codes <= 32 bits); measured ~1 ns/sample vs ~11 ns when it lived in an array or came back from
    an inlined helper as a tuple."""
    n_s, n_ch = e.shape
    ws = np.zeros(3, np.int64)
    acc = np.int64(0)
    nb = np.int64(lead)
    pos = np.int64(0)
    t0 = 0
    if key and n_s > 0:
        a0 = np.int64(A_KEY0)
        n0 = np.int64(1)
        k0 = update_k(0, a0, n0)
        for c in range(n_ch):
            v = e[0, c]
            u = (v << 1) ^ (v >> 63)
            q = u >> k0
            n = q + 1 + k0
            if q < QMAX and n <= 32:
                acc = (acc << n) | ((np.int64(1) << k0) | (u & ((np.int64(1) << k0) - 1)))
                nb += n
                if nb >= 32:
                    nb -= 32
                    wv = acc >> nb
                    out[pos] = (wv >> 24) & 0xFF
                    out[pos + 1] = (wv >> 16) & 0xFF
                    out[pos + 2] = (wv >> 8) & 0xFF
                    out[pos + 3] = wv & 0xFF
                    pos += 4
                    acc &= (np.int64(1) << nb) - 1
            else:
                ws[0] = acc
                ws[1] = nb
                ws[2] = pos
                _slow_put(out, ws, v, k0, esc_bits)
                acc = ws[0]
                nb = ws[1]
                pos = ws[2]
            a0 += abs(v)
            n0 += 1
            k0 = update_k(k0, a0, n0)
        t0 = 1
    for t in range(t0, n_s):
        for c in range(n_ch):
            v = e[t, c]
            k = rice[c, 2]
            u = (v << 1) ^ (v >> 63)
            q = u >> k
            n = q + 1 + k
            if q < QMAX and n <= 32:
                acc = (acc << n) | ((np.int64(1) << k) | (u & ((np.int64(1) << k) - 1)))
                nb += n
                if nb >= 32:
                    nb -= 32
                    wv = acc >> nb
                    out[pos] = (wv >> 24) & 0xFF
                    out[pos + 1] = (wv >> 16) & 0xFF
                    out[pos + 2] = (wv >> 8) & 0xFF
                    out[pos + 3] = wv & 0xFF
                    pos += 4
                    acc &= (np.int64(1) << nb) - 1
            else:
                ws[0] = acc
                ws[1] = nb
                ws[2] = pos
                _slow_put(out, ws, v, k, esc_bits)
                acc = ws[0]
                nb = ws[1]
                pos = ws[2]
            mag = v if v >= 0 else -v
            a = rice[c, 0] + mag
            nn = rice[c, 1] + 1
            if nn >= NRESET:
                a >>= 1
                nn >>= 1
            rice[c, 0] = a
            rice[c, 1] = nn
            rice[c, 2] = update_k(k, a, nn)
    if tail_min >= 0:
        r = tail_min + ((((8 - nb) & 7) - tail_min) & 7)
        acc = (acc << r) | (tail_val & ((np.int64(1) << r) - 1))
        nb += r
    while nb >= 8:
        nb -= 8
        out[pos] = (acc >> nb) & 0xFF
        pos += 1
    if nb > 0:
        out[pos] = (acc << (8 - nb)) & 0xFF
        pos += 1
    return pos


@njit(cache=True)
def _slow_get(buf, rs, k, esc_bits) -> int:
    return rice_get(buf, rs, k, esc_bits)


@njit(cache=True)
def rice_decode_rows(buf, rs, erow, rice, esc_bits) -> None:
    """Decode one row of residuals (one per channel) into ``erow``; reader state in registers."""
    n = buf.shape[0]
    acc = rs[0]
    nb = rs[1]
    pos = rs[2]
    for c in range(erow.shape[0]):
        k = rice[c, 2]
        if nb <= 30:
            if pos + 4 <= n:
                acc = (acc << 32) | (np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16) | (
                    np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3])
                nb += 32
                pos += 4
            else:
                rs[0] = acc
                rs[1] = nb
                rs[2] = pos
                _refill(buf, rs)
                acc = rs[0]
                nb = rs[1]
                pos = rs[2]
        z = nb if acc == 0 else np.int64(leading_zeros(acc)) - (64 - nb)
        if z < QMAX and z + 1 + k <= nb:
            nb -= z + 1 + k
            u = (z << k) | ((acc >> nb) & ((np.int64(1) << k) - 1))
            acc &= (np.int64(1) << nb) - 1
            v = (u >> 1) ^ -(u & 1)
        else:
            rs[0] = acc
            rs[1] = nb
            rs[2] = pos
            v = _slow_get(buf, rs, k, esc_bits)
            acc = rs[0]
            nb = rs[1]
            pos = rs[2]
        erow[c] = v
        mag = v if v >= 0 else -v
        a = rice[c, 0] + mag
        nn = rice[c, 1] + 1
        if nn >= NRESET:
            a >>= 1
            nn >>= 1
        rice[c, 0] = a
        rice[c, 1] = nn
        rice[c, 2] = update_k(k, a, nn)
    rs[0] = acc
    rs[1] = nb
    rs[2] = pos


@njit(cache=True)
def decode_block(buf, rs, y, hist, coefs, seg, rice, key, esc_bits, lo, hi, erow) -> None:
    """Inverse of :func:`residuals` + :func:`rice_encode`: fills ``y`` (n_s, n_ch).

    Each row is Rice-decoded first (``k`` depends on residuals only), then reconstructed."""
    n_s, n_ch = y.shape
    t0 = 0
    if key and n_s > 0:
        a0 = np.int64(A_KEY0)
        n0 = np.int64(1)
        k0 = update_k(0, a0, n0)
        prev = np.int64(0)
        for c in range(n_ch):
            v = _slow_get(buf, rs, k0, esc_bits)
            a0 += abs(v)
            n0 += 1
            k0 = update_k(k0, a0, n0)
            prev += v
            if prev < lo or prev > hi:  # corrupt: keep values bounded
                prev = lo
            y[0, c] = prev
            hist[c, 0] = prev
            hist[c, 1] = prev
            hist[c, 2] = prev
        t0 = 1
    for t in range(t0, n_s):
        rice_decode_rows(buf, rs, erow, rice, esc_bits)
        w = coefs[t // seg]
        n0 = np.int64(0)
        n1 = np.int64(0)
        n2 = np.int64(0)
        for c in range(n_ch):
            h1 = hist[c, 0]
            h2 = hist[c, 1]
            p = _pred(w, c, h1, h2, hist[c, 2], n0, n1, n2, lo, hi)
            v = erow[c] + p
            if v < lo or v > hi:  # corrupt payload: clamp, the caller's range check reports it
                v = lo
                rs[3] += 1 << 20
            y[t, c] = v
            n0 = v
            n1 = h1
            n2 = h2
            hist[c, 2] = h2
            hist[c, 1] = h1
            hist[c, 0] = v


@njit(cache=True)
def skip_bits(buf, rs, n) -> int:
    """Read ``n`` (<= 32) bits with the block reader (v3 frame flag and check); returns them."""
    return get_bits(buf, rs, n)


@njit(cache=True)
def init_rice(rice, kinit) -> None:
    for c in range(rice.shape[0]):
        rice[c, 0] = np.int64(4) << kinit[c]
        rice[c, 1] = 4
        rice[c, 2] = kinit[c]


@njit(cache=True)
def put_varints(vals, out, pos) -> int:
    """Zigzag LEB128 of an int64 array (|v| < 2**62) into ``out`` from ``pos``; returns the new pos."""
    for i in range(vals.size):
        v = vals[i]
        u = (v << 1) ^ (v >> 63)
        while u >= 0x80:
            out[pos] = (u & 0x7F) | 0x80
            pos += 1
            u >>= 7
        out[pos] = u
        pos += 1
    return pos


@njit(cache=True)
def get_varints(buf, pos, vals) -> int:
    """Inverse of :func:`put_varints`; returns the new pos, or -1 if truncated / overlong."""
    n = buf.shape[0]
    for i in range(vals.size):
        u = np.int64(0)
        shift = 0
        while True:
            if pos >= n or shift > 56:
                return -1
            b = np.int64(buf[pos])
            pos += 1
            u |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        vals[i] = (u >> 1) ^ -(u & 1)
    return pos
