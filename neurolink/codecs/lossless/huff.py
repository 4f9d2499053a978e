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

The coder itself is part of the frame kernels in :mod:`lpc` (:func:`lpc.encode_frame`,
:func:`lpc.decode_frame`: one code per channel, Rice or this one); this module holds the tables.
"""

from __future__ import annotations

import numpy as np

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
