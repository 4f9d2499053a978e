"""Bit-level I/O and adaptive Rice coding (numba), shared by the lossy codecs.

1 ms frames carry a few dozen bytes, far below what zstd's frame overhead allows, so the lossy
family writes its own bitstream: raw bits, and signed integers in Rice codes whose parameter adapts
per context from the running mean magnitude (as JPEG-LS does), so no per-frame side information is
spent on it. Readers bound-check every access but never raise: a ``raise`` inside nopython code
leaks the arrays held by the raising frame and its jitted callers (~150 kB per rejected frame in the
fuzzer). A read past the end returns 0 and a *sticky error position* (>= ``BAD``, far past any
buffer), which every later read also treats as out of range and keeps, so jitted kernels just
propagate ``pos``; the Python wrapper calls ``check_pos``, which raises ``ValueError`` (mapped to
CodecError) with the message of the first error. Kernels report value errors the same way
(``fail(pos, code)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Unary prefixes longer than this escape to a raw 32-bit value (bounds the worst case).
ESCAPE = 24
RICE_LIMIT = 16  # cap of the adaptive Rice parameter
RESET = 64  # halve the adaptive statistics every RESET symbols (tracks non-stationarity)

#: Error positions: ``BAD + code`` (any position >= BAD is an error; far past any buffer, no overflow).
BAD = 1 << 62
ERR_FIELD, ERR_PREFIX, ERR_TABLE = BAD, BAD + 1, BAD + 2
_MESSAGES = {
    ERR_FIELD: "bitstream ends inside a field",
    ERR_PREFIX: "bitstream ends inside a Rice prefix",
    ERR_TABLE: "bitstream ends inside a keyframe table",
}


def error_code(index: int, message: str) -> int:
    """Register a codec's own error (index >= 16, unique across the lossy codecs); returns its position."""
    code = BAD + index
    if index < 16 or _MESSAGES.get(code, message) != message:
        raise ValueError(f"error index {index} reserved or taken")
    _MESSAGES[code] = message
    return code


@njit(cache=True, inline="always")
def fail(pos: int, code: int) -> int:
    """Error position for code, keeping an earlier error (the first one is the one reported)."""
    return pos if pos >= BAD else code


def check_pos(buf: np.ndarray, pos: int) -> int:
    """Raise ValueError (-> CodecError) if a jitted reader returned an error position; returns pos."""
    if pos >= BAD or pos > buf.size * 8:
        raise ValueError(_MESSAGES.get(int(pos), "bitstream ends inside a field"))
    return pos


@njit(cache=True)
def put_bits(buf: np.ndarray, pos: int, value: int, nbits: int) -> int:
    """Write the low ``nbits`` (<= 32) of value MSB-first at bit position pos (buf pre-zeroed); returns the new position."""
    while nbits > 0:
        free = 8 - (pos & 7)
        take = free if free < nbits else nbits
        bits = (value >> (nbits - take)) & ((1 << take) - 1)
        buf[pos >> 3] |= np.uint8(bits << (free - take))
        pos += take
        nbits -= take
    return pos


@njit(cache=True)
def get_bits(buf: np.ndarray, pos: int, nbits: int) -> tuple[int, int]:
    if pos + nbits > buf.size * 8:
        return 0, fail(pos, ERR_FIELD)  # also keeps an error position (never raise: see the docstring)
    v = np.int64(0)
    while nbits > 0:
        avail = 8 - (pos & 7)
        take = avail if avail < nbits else nbits
        byte = np.int64(buf[pos >> 3])
        v = (v << take) | ((byte >> (avail - take)) & ((1 << take) - 1))
        pos += take
        nbits -= take
    return int(v), pos  # int64 either way in numba (same machine code as a plain 0 start)


@njit(cache=True)
def rice_k(a: np.ndarray, n: np.ndarray, ctx: int) -> int:
    k = 0
    while (n[ctx] << k) < a[ctx] and k < RICE_LIMIT:
        k += 1
    return k


@njit(cache=True)
def rice_update(a: np.ndarray, n: np.ndarray, ctx: int, mag: int) -> None:
    av = a[ctx] + mag
    nv = n[ctx] + 1
    if nv >= RESET:
        av = (av + 1) >> 1
        nv = nv >> 1
    a[ctx] = av
    n[ctx] = nv


@njit(cache=True)
def put_signed(buf: np.ndarray, pos: int, v: int, a: np.ndarray, n: np.ndarray, ctx: int) -> int:
    """Adaptive Rice code of a signed integer (zigzag mapped) in context ctx."""
    u = (v << 1) if v >= 0 else ((-v << 1) - 1)
    k = rice_k(a, n, ctx)
    q = u >> k
    if q >= ESCAPE:
        pos = put_bits(buf, pos, (1 << ESCAPE) - 1, ESCAPE)
        pos = put_bits(buf, pos, u, 32)
    else:
        pos = put_bits(buf, pos, ((1 << q) - 1) << 1, q + 1)
        pos = put_bits(buf, pos, u & ((1 << k) - 1), k)
    rice_update(a, n, ctx, u >> 1)
    return pos


@njit(cache=True)
def get_signed(buf: np.ndarray, pos: int, a: np.ndarray, n: np.ndarray, ctx: int) -> tuple[int, int]:
    k = rice_k(a, n, ctx)
    q = 0
    limit = buf.size * 8
    while True:  # unary prefix: count ones up to the terminating zero
        if pos >= limit:
            return 0, fail(pos, ERR_PREFIX)
        b = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
        pos += 1
        if b == 0:
            break
        q += 1
        if q >= ESCAPE:
            break
    if q >= ESCAPE:
        u, pos = get_bits(buf, pos, 32)
    else:
        r, pos = get_bits(buf, pos, k)
        u = (q << k) | r
    rice_update(a, n, ctx, u >> 1)
    v = (u >> 1) if (u & 1) == 0 else -((u + 1) >> 1)
    return v, pos


def new_rice_state(n_ctx: int, init: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Fresh adaptive statistics (A = running |v| sum, N = count) for n_ctx contexts."""
    return np.full(max(n_ctx, 1), init, np.int64), np.ones(max(n_ctx, 1), np.int64)


@njit(cache=True)
def put_ints(buf: np.ndarray, pos: int, q: np.ndarray, ctx_of_row: np.ndarray, a: np.ndarray, n: np.ndarray) -> int:
    """Rice-code a 2-D (rows, channels) integer array; row r uses context ctx_of_row[r] (shared by channels)."""
    for c in range(q.shape[1]):
        for r in range(q.shape[0]):
            pos = put_signed(buf, pos, q[r, c], a, n, ctx_of_row[r])
    return pos


@njit(cache=True)
def get_ints(buf: np.ndarray, pos: int, out: np.ndarray, ctx_of_row: np.ndarray, a: np.ndarray, n: np.ndarray) -> int:
    for c in range(out.shape[1]):
        for r in range(out.shape[0]):
            out[r, c], pos = get_signed(buf, pos, a, n, ctx_of_row[r])
    return pos
