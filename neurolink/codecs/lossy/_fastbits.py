"""Register-buffered adaptive Rice coding for the per-sample loops of the lossy codecs (numba).

Same bitstream as ``_bitio`` (MSB-first, the same adaptive Rice codes and escape), bit for bit, ~10x
cheaper per value. Why: a jitted helper that takes an array (``put_bits(buf, ...)``, ``get_signed(buf,
...)``) is a real call with an atomic reference-count increment and decrement of the array, ~20 ns, and
the ``_bitio`` coders make one to several per value: ``nl-nearlossless`` spent 30-60 ns per sample, 2-4x
slower than real time on 1024 channels at 30 kHz (30720 samples per 1 ms frame). The helpers here take
and return scalars only; the kernel keeps the pending bits in a 64-bit register and does the buffer
stores itself (``wr_flush`` / ``rd_refill`` are the only array-taking calls, once per 32 bits).

Kernel pattern (writer; ``acc`` holds ``nacc`` < 32 pending bits starting at byte ``bp``)::

    bp, acc, nacc = pos >> 3, 0, pos & 7            # the pos & 7 bits already in buf[bp] are kept (OR)
    c1, n1, c2, n2, a_c, n_c, k = rice_code(v, a_c, n_c, k)
    acc, nacc = (acc << n1) | c1, nacc + n1
    if nacc >= 32: bp, acc, nacc = wr_flush(buf, bp, acc, nacc)
    if n2: (same with c2, n2)
    ...
    pos = wr_end(buf, bp, acc, nacc)

Reader: ``acc`` holds the next ``nacc`` bits; ``rd_refill`` tops it up to >= FILL (49) bits (bytes past the end
of the buffer read as zeros: the kernel compares ``bp * 8 - nacc`` with the buffer size at the end, a
read past the end being exactly what ``_bitio``'s readers reported as truncation, since positions only
grow). ``k`` is the context's Rice parameter carried from the previous value of the same context
(``rice_k`` moves it to the minimal k with ``n << k >= a``, as ``_bitio.rice_k`` computes from 0); a
kernel that switches contexts keeps one ``k`` per context or starts from 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import ESCAPE, RESET, RICE_LIMIT

_ONES24 = (1 << ESCAPE) - 1
#: leading one bits of a byte (the unary prefix's loop exit mispredicted on every code)
_LEAD8 = np.array([8 - len(bin(255 - b)) + 2 if b < 255 else 8 for b in range(256)], np.int64)
_LEAD8[:128] = 0
RAW_LEN_BITS = 6  # raw_code's length field
FILL = 49  # rd_fill leaves >= FILL bits: a unary prefix (<= ESCAPE + 1 bits) and k (<= RICE_LIMIT) bits


@njit(cache=True)
def rice_k(k, a_c, n_c):
    """``_bitio.rice_k`` (min k in [0, RICE_LIMIT] with n << k >= a), moved from the previous k."""
    while k < RICE_LIMIT and (n_c << k) < a_c:
        k += 1
    while k > 0 and (n_c << (k - 1)) >= a_c:
        k -= 1
    return k


@njit(cache=True)
def rice_update(a_c, n_c, mag):
    a_c += mag
    n_c += 1
    if n_c >= RESET:
        a_c = (a_c + 1) >> 1
        n_c = n_c >> 1
    return a_c, n_c


@njit(cache=True)
def rice_code(v, a_c, n_c, k):
    """The code ``_bitio.put_signed`` writes for v, as two parts of <= 32 bits (n2 = 0: one part)."""
    u = (v << 1) ^ (v >> 63)  # zigzag, without a branch on the sign
    k = rice_k(k, a_c, n_c)
    q = u >> k
    if q >= ESCAPE:
        c1, n1, c2, n2 = np.int64(_ONES24), np.int64(ESCAPE), u & 0xFFFFFFFF, np.int64(32)
    elif q + 1 + k <= 32:
        c1, n1 = ((((np.int64(1) << q) - 1) << 1) << k) | (u & ((np.int64(1) << k) - 1)), q + 1 + k
        c2, n2 = np.int64(0), np.int64(0)
    else:
        c1, n1, c2, n2 = ((np.int64(1) << q) - 1) << 1, q + 1, u & ((np.int64(1) << k) - 1), np.int64(k)
    a_c, n_c = rice_update(a_c, n_c, u >> 1)
    return c1, n1, c2, n2, a_c, n_c, k


@njit(cache=True)
def wr_flush(buf, bp, acc, nacc):
    """Store the oldest 32 of nacc (32..63) pending bits at byte bp (OR: it may hold earlier bits)."""
    nacc -= 32
    w = acc >> nacc
    buf[bp] |= np.uint8((w >> 24) & 255)
    buf[bp + 1] = np.uint8((w >> 16) & 255)
    buf[bp + 2] = np.uint8((w >> 8) & 255)
    buf[bp + 3] = np.uint8(w & 255)
    return bp + 4, acc & ((np.int64(1) << nacc) - 1), nacc


@njit(cache=True)
def wr_end(buf, bp, acc, nacc):
    """Store the pending bits; returns the bit position after the last one."""
    pos = bp * 8 + nacc
    while nacc > 0:
        if nacc >= 8:
            nacc -= 8
            buf[bp] |= np.uint8((acc >> nacc) & 255)
        else:
            buf[bp] |= np.uint8((acc << (8 - nacc)) & 255)
            nacc = 0
        bp += 1
    return pos


@njit(cache=True)
def rd_start(buf, pos):
    """Reader state (bp, acc, nacc) at bit pos, filled to >= FILL bits."""
    bp = pos >> 3
    acc = np.int64(0)
    nacc = -(pos & 7)  # the first byte's bits before pos are read and dropped below
    bp, acc, nacc = rd_refill(buf, bp, acc, nacc)
    acc &= (np.int64(1) << nacc) - 1
    return bp, acc, nacc


@njit(cache=True)
def rd_refill(buf, bp, acc, nacc):
    """Top the reader up to FILL..56 bits, byte by byte; bytes past the end read as zeros. Loops use the
    branch-free 7-byte window inline (``rd_refill`` is their path for the last 8 bytes of the buffer)."""
    size = buf.size
    while nacc < FILL:
        b = np.int64(buf[bp]) if bp < size else np.int64(0)
        acc = (acc << 8) | b
        bp += 1
        nacc += 8
    return bp, acc, nacc


@njit(cache=True)
def rd_escape(buf, bp, acc, nacc):
    """After a unary prefix of ESCAPE ones (still in acc): drop it, read the 32-bit value (u, bp, acc, nacc)."""
    _, acc, nacc = take(acc, nacc, ESCAPE)
    bp, acc, nacc = rd_refill(buf, bp, acc, nacc)
    u, acc, nacc = take(acc, nacc, 32)
    return u, bp, acc, nacc


@njit(cache=True)
def rice_tail(acc, nacc, q, k):
    """Value of a code with prefix q < ESCAPE (still in acc) and k low bits: (u, acc, nacc); nacc >= q + 1 + k."""
    nacc -= q + 1 + k
    u = (np.int64(q) << k) | ((acc >> nacc) & ((np.int64(1) << k) - 1))
    return u, acc & ((np.int64(1) << nacc) - 1), nacc


@njit(cache=True)
def lead_ones(acc, nacc):
    """Number of leading 1 bits of the nacc-bit window (nacc >= ESCAPE + 1), at most ESCAPE."""
    q = _LEAD8[(acc >> (nacc - 8)) & 255]
    if q == 8:
        while q < ESCAPE and (acc >> (nacc - 1 - q)) & 1:
            q += 1
    return q


@njit(cache=True)
def take(acc, nacc, nb):
    """The next nb (<= nacc) bits: (value, acc, nacc)."""
    nacc -= nb
    return (acc >> nacc) & ((np.int64(1) << nb) - 1), acc & ((np.int64(1) << nacc) - 1), nacc


@njit(cache=True)
def zigzag_value(u):
    """Inverse of the zigzag map (0, -1, 1, -2, ... <- 0, 1, 2, 3, ...), without a branch on the sign."""
    return (u >> 1) ^ -(u & 1)


@njit(cache=True)
def pack(buf, pos, codes, lens, m):
    """Write parts codes[j] of lens[j] (0..32) bits, j < m, from bit pos; returns the end position."""
    bp, acc, nacc = pos >> 3, np.int64(0), pos & 7
    for j in range(m):
        acc, nacc = (acc << lens[j]) | codes[j], nacc + lens[j]
        if nacc >= 32:  # (wr_flush inline)
            nacc -= 32
            w = acc >> nacc
            buf[bp] |= np.uint8((w >> 24) & 255)
            buf[bp + 1] = np.uint8((w >> 16) & 255)
            buf[bp + 2] = np.uint8((w >> 8) & 255)
            buf[bp + 3] = np.uint8(w & 255)
            bp += 4
            acc &= (np.int64(1) << nacc) - 1
    return wr_end(buf, bp, acc, nacc)


@njit(cache=True)
def rd_rice(buf, bp, acc, nacc, a_c, n_c):
    """One Rice code as ``_bitio.get_signed`` reads it (k from the statistics): (u, bp, acc, nacc, a_c, n_c);
    u is the zigzag value (``zigzag_value``). For values read one at a time; loops inline the same steps."""
    if nacc < FILL:
        bp, acc, nacc = rd_refill(buf, bp, acc, nacc)
    q = lead_ones(acc, nacc)
    k = rice_k(0, a_c, n_c)
    if q < ESCAPE:
        u, acc, nacc = rice_tail(acc, nacc, q, k)
    else:
        u, bp, acc, nacc = rd_escape(buf, bp, acc, nacc)
    a_c, n_c = rice_update(a_c, n_c, u >> 1)
    return u, bp, acc, nacc, a_c, n_c


@njit(cache=True)
def raw_code(v):
    """Code of a value outside the adaptive statistics (a keyframe's first value, predicted from 0: the
    channel's DC offset): the bit length of its zigzag value in 6 bits, then those bits. Rice-coding it
    escaped and then inflated the context's statistics for the next ~64 values (``rice_update``)."""
    u = (v << 1) ^ (v >> 63)
    u &= 0xFFFFFFFF  # |v| < 2^31 (QMAX; int16 counts)
    nb = 0
    while (u >> nb) > 0:
        nb += 1
    return nb, np.int64(RAW_LEN_BITS), u, nb

