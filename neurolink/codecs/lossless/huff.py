"""Format v3 residual code: the LOCO-I Rice parameter, but the quotient through a fixed prefix code.

Why: Golomb-Rice codes assume a geometric (Laplacian) residual; tetrode residuals are close to
Gaussian, and no Golomb parameter fixes that (locust: Rice 7.889 bit/sample, the best Golomb m
per scale bucket 7.887, entropy ~7.80). Splitting ``u = zigzag(e)`` at ``b = max(k - D, 0)`` bits
(``k`` = the v2 adaptive Rice parameter, no side information) leaves a quotient ``q = u >> b`` with
an almost scale-free distribution, coded here with a canonical Huffman code: 7.858 bit/sample on
locust (-0.031, ~1.9 bits per 1 ms frame). An arithmetic coder would gain ~0.04 more but needs
~5 bits of termination per frame and ~2x the time; a prefix code costs what Rice costs.

Tables: one code per context ``min(k, D)`` (k = 0, 1, >= 2), lengths from a discretised Gaussian
residual whose mean |e| is spread log-uniformly over the LOCO k bucket, length-limited to 12 bits
(:func:`gen_lengths`); the integer lengths are frozen below so every machine decodes identically.
``q >= ESC`` sends ``ESC`` and the raw ``u`` (bounded, as the v2 escape).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from neurolink.codecs.lossless.bitio import _refill, get_bits, put_bits
from neurolink.codecs.lossless.lpc import A_KEY0, SHIFT, _slow_get, _slow_put
from neurolink.codecs.lossless.rice import NRESET, QMAX, update_k

D = 2
N_SYM = 64
ESC = N_SYM - 1
MAXLEN = 12
RAW_FAST = 16  # raw low bits written with the code in one go up to this many

# fmt: off
LENGTHS = np.array([
    [1, 3, 2, 5, 4, 7, 7, 10, 10, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
     12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 11],
    [2, 3, 2, 3, 3, 5, 5, 6, 6, 7, 7, 10, 9, 12, 11, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
     12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12],
    [3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 9, 9, 10, 11, 11, 11, 12, 12, 12, 12, 12, 12,
     12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12],
], np.int64)
# fmt: on


def gen_lengths(beta: float = 2.0, n_scale: int = 64) -> np.ndarray:
    """How :data:`LENGTHS` was made (run once, float maths: not used at run time)."""
    import heapq
    from math import gamma

    rows = []
    for kk in (0, 1, 8):
        kp = max(kk - D, 0)
        p = np.zeros(N_SYM)
        lo, hi = (2.0 ** (kk - 1) if kk > 0 else 0.25), 2.0**kk
        for m in np.exp(np.log(lo) + (np.arange(n_scale) + 0.5) / n_scale * np.log(hi / lo)):
            a = m * gamma(1 / beta) / gamma(2 / beta)
            ev = np.arange(-int(80 * m + 60), int(80 * m + 60) + 1)
            g = np.exp(-np.abs(ev / a) ** beta)
            u = np.where(ev >= 0, 2 * ev, -2 * ev - 1)
            p += np.bincount(np.minimum(u >> kp, ESC), weights=g / g.sum(), minlength=N_SYM)
        p = np.maximum(p / p.sum(), 1e-9)
        for it in range(200):
            lens = np.zeros(N_SYM, np.int64)
            h = [(pp, i, [i]) for i, pp in enumerate(p)]
            heapq.heapify(h)
            while len(h) > 1:
                a1, b1 = heapq.heappop(h), heapq.heappop(h)
                for i in a1[2] + b1[2]:
                    lens[i] += 1
                heapq.heappush(h, (a1[0] + b1[0], min(a1[1], b1[1]), a1[2] + b1[2]))
            if lens.max() <= MAXLEN:
                break
            p = np.maximum(p, 2.0 ** -(MAXLEN + 2) * (1 + it * 0.25))
            p /= p.sum()
        rows.append(lens)
    return np.array(rows)


def _canonical(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical codes (integer maths) and the decoder's MAXLEN-bit lookup: (sym << 4) | length."""
    n_tab = lengths.shape[0]
    codes = np.zeros_like(lengths)
    dec = np.zeros((n_tab, 1 << MAXLEN), np.int64)
    for t in range(n_tab):
        code = 0
        order = sorted(range(N_SYM), key=lambda s: (int(lengths[t, s]), s))
        prev_len = int(lengths[t, order[0]])
        for s in order:
            ln = int(lengths[t, s])
            code <<= ln - prev_len
            prev_len = ln
            codes[t, s] = code
            lo = code << (MAXLEN - ln)
            dec[t, lo : lo + (1 << (MAXLEN - ln))] = (s << 4) | ln
            code += 1
        assert code <= 1 << prev_len
    return codes, dec


assert ((2.0 ** -LENGTHS.astype(np.float64)).sum(axis=1) <= 1.0).all()
CODES, _DEC2 = _canonical(LENGTHS)
#: encoder: (code << 4) | length at [(context << 6) | q]; decoder: (q << 4) | length at [(context << MAXLEN) | next 12 bits]
ENC = ((CODES << 4) | LENGTHS).reshape(-1).astype(np.int64)
DEC = _DEC2.reshape(-1).astype(np.uint16)


@njit(cache=True)
def _esc_put(out, ws, code, ln, u, esc_bits) -> None:
    put_bits(out, ws, code, ln)
    if esc_bits > 32:
        put_bits(out, ws, u >> 32, esc_bits - 32)
        put_bits(out, ws, u & 0xFFFFFFFF, 32)
    else:
        put_bits(out, ws, u, esc_bits)


@njit(cache=True)
def _long_put(out, ws, code, ln, u, b) -> None:
    put_bits(out, ws, code, ln)
    if b > 32:
        put_bits(out, ws, u >> 32, b - 32)
        put_bits(out, ws, u & 0xFFFFFFFF, 32)
    else:
        put_bits(out, ws, u, b)


@njit(cache=True)
def encode(e, rice, key, esc_bits, out, lead, tail_val, tail_min, pfx, cost) -> int:
    """v3 bitstream of residuals ``e``: as :func:`lpc.rice_encode` (same key row, same ``k``
    adaptation, same lead/tail framing), the quotient through the prefix code on channels with
    ``pfx[c] = 1``, plain Rice on the others. ``cost[c] += (Rice bits, prefix bits)`` of every sample
    (the encoder picks each channel's code for the next keyframe from it). Returns bytes written."""
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
            b = k - D if k > D else 0
            q = u >> b
            tb = k if k < D else D
            rq = u >> k
            cost[c, 0] += rq + 1 + k if rq < QMAX else QMAX + esc_bits
            cost[c, 1] += (ENC[(tb << 6) | q] & 15) + b if q < ESC else LENGTHS[tb, ESC] + esc_bits
            if pfx[c] == 0:
                n = rq + 1 + k
                if rq < QMAX and n <= 32:
                    acc = (acc << n) | ((np.int64(1) << k) | (u & ((np.int64(1) << k) - 1)))
                    nb += n
                else:
                    ws[0] = acc
                    ws[1] = nb
                    ws[2] = pos
                    _slow_put(out, ws, v, k, esc_bits)
                    acc = ws[0]
                    nb = ws[1]
                    pos = ws[2]
            elif q < ESC and b <= RAW_FAST:
                ent = ENC[(tb << 6) | q]
                n = (ent & 15) + b
                acc = (acc << n) | ((ent >> 4) << b) | (u & ((np.int64(1) << b) - 1))
                nb += n
            else:
                ws[0] = acc
                ws[1] = nb
                ws[2] = pos
                if q >= ESC:
                    _esc_put(out, ws, CODES[tb, ESC], LENGTHS[tb, ESC], u, esc_bits)
                else:
                    _long_put(out, ws, CODES[tb, q], LENGTHS[tb, q], u & ((np.int64(1) << b) - 1), b)
                acc = ws[0]
                nb = ws[1]
                pos = ws[2]
            if nb >= 32:
                nb -= 32
                wv = acc >> nb
                out[pos] = (wv >> 24) & 0xFF
                out[pos + 1] = (wv >> 16) & 0xFF
                out[pos + 2] = (wv >> 8) & 0xFF
                out[pos + 3] = wv & 0xFF
                pos += 4
                acc &= (np.int64(1) << nb) - 1
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
def _slow_raw(buf, rs, n) -> int:
    if n > 32:
        hi = get_bits(buf, rs, n - 32)
        return (hi << 32) | get_bits(buf, rs, 32)
    return get_bits(buf, rs, n)


@njit(cache=True)
def decode_rows(buf, rs, erow, rice, esc_bits, pfx) -> None:
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
        if pfx[c] == 0:  # Rice, as lpc.rice_decode_rows
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
            continue
        tb = k if k < D else D
        ent = np.int64(DEC[(tb << MAXLEN) | ((acc >> (nb - MAXLEN)) & ((1 << MAXLEN) - 1))])
        q = ent >> 4
        nb -= ent & 15
        acc &= (np.int64(1) << nb) - 1
        b = k - D if k > D else 0
        if q < ESC and b <= nb:
            nb -= b
            u = (q << b) | (acc >> nb)
            acc &= (np.int64(1) << nb) - 1
        else:
            rs[0] = acc
            rs[1] = nb
            rs[2] = pos
            if q >= ESC:
                u = _slow_raw(buf, rs, esc_bits)
            else:
                u = (q << b) | _slow_raw(buf, rs, b)
            acc = rs[0]
            nb = rs[1]
            pos = rs[2]
        v = (u >> 1) ^ -(u & 1)
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
def decode_block(buf, rs, y, hist, coefs, seg, rice, key, esc_bits, lo, hi, erow, pfx) -> None:
    """Inverse of :func:`lpc.residuals` + :func:`encode`: fills ``y`` (n_s, n_ch)."""
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
            if prev < lo or prev > hi:
                prev = lo
            y[0, c] = prev
            hist[c, 0] = prev
            hist[c, 1] = prev
            hist[c, 2] = prev
        t0 = 1
    for t in range(t0, n_s):
        decode_rows(buf, rs, erow, rice, esc_bits, pfx)
        w = coefs[t // seg]
        n0 = np.int64(0)
        n1 = np.int64(0)
        n2 = np.int64(0)
        for c in range(n_ch):
            h1 = hist[c, 0]
            h2 = hist[c, 1]
            p = (w[c, 0] * h1 + w[c, 1] * h2 + w[c, 2] * hist[c, 2] + w[c, 3] * n0 + w[c, 4] * n1 + w[c, 5] * n2
                 + w[c, 6]) >> SHIFT
            if p < lo:
                p = lo
            elif p > hi:
                p = hi
            v = erow[c] + p
            if v < lo or v > hi:
                v = lo
                rs[3] += 1 << 20
            y[t, c] = v
            n0 = v
            n1 = h1
            n2 = h2
            hist[c, 2] = h2
            hist[c, 1] = h1
            hist[c, 0] = v
