"""Fast path: fixed polynomial predictors + neighbour-channel residual prediction + adaptive Rice.

Per channel and sample, nine candidate residuals are formed: polynomial order 1, 2 or 3 in time,
each optionally minus the same-order residual of the previous channel at the same instant (full or
half weight; neighbouring electrodes share far-field signal and line noise). The candidate used is
the one with the smallest exponentially decayed |residual| so far (backward adaptive: the decoder
makes the same choice, so there is no side information, which matters for 1-sample frames at 1 kHz).
All state is int64 and carried across calls, so streaming frames continue where the last one ended.

State arrays (per channel c): ``hist[c, 0:3]`` last three values, ``cost[c, 0:9]``, ``rice[c, 0:3]``
= (A, N, k). A keyframe re-initialises them from its own first row, coded as a spatial difference.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurolink.codecs.lossless.rice import NRESET, QMAX, rice_get, rice_put, update_k

N_MODES = 9
COST_SHIFT = 4
A_INIT = 32


@njit(cache=True)
def init_state(n_ch: int) -> tuple:
    hist = np.zeros((n_ch, 3), np.int64)
    cost = np.zeros((n_ch, N_MODES), np.int64)
    rice = np.zeros((n_ch, 3), np.int64)
    return hist, cost, rice


@njit(cache=True, inline="always")
def _argmin9(cost, c) -> int:
    best = cost[c, 0]
    m = 0
    for j in range(1, N_MODES):
        if cost[c, j] < best:
            best = cost[c, j]
            m = j
    return m


@njit(cache=True, inline="always")
def _candidate(m: int, r1: int, r2: int, r3: int, q1: int, q2: int, q3: int) -> int:
    o = m // 3
    w = m - 3 * o
    if o == 0:
        r = r1
        q = q1
    elif o == 1:
        r = r2
        q = q2
    else:
        r = r3
        q = q3
    if w == 1:
        return r - q
    if w == 2:
        return r - (q >> 1)
    return r


@njit(cache=True, inline="always")
def _update(cost, c, r1, r2, r3, q1, q2, q3) -> None:
    cost[c, 0] += abs(r1) - (cost[c, 0] >> COST_SHIFT)
    cost[c, 1] += abs(r1 - q1) - (cost[c, 1] >> COST_SHIFT)
    cost[c, 2] += abs(r1 - (q1 >> 1)) - (cost[c, 2] >> COST_SHIFT)
    cost[c, 3] += abs(r2) - (cost[c, 3] >> COST_SHIFT)
    cost[c, 4] += abs(r2 - q2) - (cost[c, 4] >> COST_SHIFT)
    cost[c, 5] += abs(r2 - (q2 >> 1)) - (cost[c, 5] >> COST_SHIFT)
    cost[c, 6] += abs(r3) - (cost[c, 6] >> COST_SHIFT)
    cost[c, 7] += abs(r3 - q3) - (cost[c, 7] >> COST_SHIFT)
    cost[c, 8] += abs(r3 - (q3 >> 1)) - (cost[c, 8] >> COST_SHIFT)


@njit(cache=True, inline="always")
def _rice_update(rice, c, mag) -> None:
    a = rice[c, 0] + mag
    n = rice[c, 1] + 1
    if n >= NRESET:
        a >>= 1
        n >>= 1
    rice[c, 0] = a
    rice[c, 1] = n
    rice[c, 2] = update_k(rice[c, 2], a, n)


@njit(cache=True, nogil=True)
def encode_block(x, hist, cost, rice, key: bool, esc_bits: int, out, ws) -> None:
    """Append the Rice bitstream of ``x`` (n_samples, n_channels), updating the state in place."""
    n_s, n_ch = x.shape
    t0 = 0
    if key and n_s > 0:
        a0 = A_INIT * 64
        n0 = 1
        k0 = update_k(0, a0, n0)
        prev = 0
        for c in range(n_ch):
            v = np.int64(x[0, c])
            mag = rice_put(out, ws, v - prev, k0, esc_bits)
            prev = v
            a0 += mag
            n0 += 1
            k0 = update_k(k0, a0, n0)
            hist[c, 0] = v
            hist[c, 1] = v
            hist[c, 2] = v
            for j in range(N_MODES):
                cost[c, j] = 0
            rice[c, 0] = A_INIT
            rice[c, 1] = 1
            rice[c, 2] = update_k(0, A_INIT, 1)
        t0 = 1
    acc = ws[0]
    nb = ws[1]
    pos = ws[2]
    for t in range(t0, n_s):
        q1 = 0
        q2 = 0
        q3 = 0
        for c in range(n_ch):
            v = np.int64(x[t, c])
            h1 = hist[c, 0]
            h2 = hist[c, 1]
            h3 = hist[c, 2]
            r1 = v - h1
            r2 = r1 - (h1 - h2)
            r3 = r2 - (h1 - 2 * h2 + h3)
            m = _argmin9(cost, c)
            e = _candidate(m, r1, r2, r3, q1, q2, q3)
            k = rice[c, 2]
            u = (e << 1) ^ (e >> 63)
            qq = u >> k
            nbits = qq + 1 + k
            if qq < QMAX and nbits <= 32:  # fast path: writer state in registers
                acc = (acc << nbits) | ((np.int64(1) << k) | (u & ((np.int64(1) << k) - 1)))
                nb += nbits
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
                _slow_put(out, ws, e, k, esc_bits)
                acc = ws[0]
                nb = ws[1]
                pos = ws[2]
            _rice_update(rice, c, e if e >= 0 else -e)
            _update(cost, c, r1, r2, r3, q1, q2, q3)
            q1 = r1
            q2 = r2
            q3 = r3
            hist[c, 2] = h2
            hist[c, 1] = h1
            hist[c, 0] = v
    ws[0] = acc
    ws[1] = nb
    ws[2] = pos


@njit(cache=True)
def _slow_put(out, ws, e, k, esc_bits) -> None:
    rice_put(out, ws, e, k, esc_bits)


@njit(cache=True, nogil=True)
def decode_block(buf, rs, y, hist, cost, rice, key: bool, esc_bits: int) -> None:
    """Inverse of :func:`encode_block`: fills ``y`` (int64, n_samples x n_channels)."""
    n_s, n_ch = y.shape
    t0 = 0
    if key and n_s > 0:
        a0 = A_INIT * 64
        n0 = 1
        k0 = update_k(0, a0, n0)
        prev = 0
        for c in range(n_ch):
            e = rice_get(buf, rs, k0, esc_bits)
            v = prev + e
            prev = v
            a0 += abs(e)
            n0 += 1
            k0 = update_k(k0, a0, n0)
            y[0, c] = v
            hist[c, 0] = v
            hist[c, 1] = v
            hist[c, 2] = v
            for j in range(N_MODES):
                cost[c, j] = 0
            rice[c, 0] = A_INIT
            rice[c, 1] = 1
            rice[c, 2] = update_k(0, A_INIT, 1)
        t0 = 1
    for t in range(t0, n_s):
        q1 = 0
        q2 = 0
        q3 = 0
        for c in range(n_ch):
            h1 = hist[c, 0]
            h2 = hist[c, 1]
            h3 = hist[c, 2]
            m = _argmin9(cost, c)
            e = rice_get(buf, rs, rice[c, 2], esc_bits)
            o = m // 3
            w = m - 3 * o
            if o == 0:
                p = h1
                q = q1
            elif o == 1:
                p = 2 * h1 - h2
                q = q2
            else:
                p = 3 * h1 - 3 * h2 + h3
                q = q3
            if w == 1:
                p += q
            elif w == 2:
                p += q >> 1
            v = e + p
            y[t, c] = v
            _rice_update(rice, c, abs(e))
            r1 = v - h1
            r2 = r1 - (h1 - h2)
            r3 = r2 - (h1 - 2 * h2 + h3)
            _update(cost, c, r1, r2, r3, q1, q2, q3)
            q1 = r1
            q2 = r2
            q3 = r3
            hist[c, 2] = h2
            hist[c, 1] = h1
            hist[c, 0] = v
