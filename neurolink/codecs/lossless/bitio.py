"""Numba bit writer/reader (MSB-first, 64-bit accumulator) shared by the Rice coders.

State lives in tiny int64 arrays so the njit kernels can pass it around without objects:
writer ``ws = [acc, nbits, pos]``, reader ``rs = [acc, nbits, pos, overrun_bits]``. The reader feeds
zeros past the end of the buffer, so a truncated payload ends every loop (Rice
quotients are bounded) and the caller turns ``overrun_bits > 0`` into a CodecError.
The accumulators stay below 2**63 so int64 arithmetic never changes sign.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import leading_zeros
from numba.extending import intrinsic


@njit(cache=True, inline="always")
def put_bits(out: np.ndarray, ws: np.ndarray, value: int, n: int) -> None:
    """Append the low ``n`` (<= 32) bits of ``value``."""
    acc = (ws[0] << n) | (value & ((np.int64(1) << n) - 1))
    nb = ws[1] + n
    if nb >= 32:
        nb -= 32
        pos = ws[2]
        w = acc >> nb
        out[pos] = (w >> 24) & 0xFF
        out[pos + 1] = (w >> 16) & 0xFF
        out[pos + 2] = (w >> 8) & 0xFF
        out[pos + 3] = w & 0xFF
        ws[2] = pos + 4
        acc &= (np.int64(1) << nb) - 1
    ws[0] = acc
    ws[1] = nb


@njit(cache=True)
def flush_bits(out: np.ndarray, ws: np.ndarray) -> int:
    """Pad the last byte with zeros; returns the number of bytes written."""
    nb = ws[1]
    acc = ws[0]
    pos = ws[2]
    while nb >= 8:
        nb -= 8
        out[pos] = (acc >> nb) & 0xFF
        pos += 1
    if nb > 0:
        out[pos] = (acc << (8 - nb)) & 0xFF
        pos += 1
    ws[0] = 0
    ws[1] = 0
    ws[2] = pos
    return pos


@njit(cache=True, inline="always")
def _refill(buf: np.ndarray, rs: np.ndarray) -> None:
    """Top the accumulator up by 32 bits (zeros past the end, counted in rs[3])."""
    pos = rs[2]
    n = buf.shape[0]
    if pos + 4 <= n:
        w = (
            (np.int64(buf[pos]) << 24)
            | (np.int64(buf[pos + 1]) << 16)
            | (np.int64(buf[pos + 2]) << 8)
            | np.int64(buf[pos + 3])
        )
    else:
        w = np.int64(0)
        for i in range(4):
            w <<= 8
            if pos + i < n:
                w |= np.int64(buf[pos + i])
            else:
                rs[3] += 8
    rs[0] = (rs[0] << 32) | w
    rs[1] += 32
    rs[2] = pos + 4


@njit(cache=True, inline="always")
def get_bits(buf: np.ndarray, rs: np.ndarray, n: int) -> int:
    """Read ``n`` (<= 32) bits."""
    if rs[1] < n:
        _refill(buf, rs)
    nb = rs[1] - n
    v = rs[0] >> nb
    rs[1] = nb
    rs[0] = rs[0] & ((np.int64(1) << nb) - 1)
    return v


@njit(cache=True, inline="always")
def get_zeros(buf: np.ndarray, rs: np.ndarray, limit: int) -> int:
    """Count zeros up to the terminating one (consumed too); at most ``limit`` (<= 30) zeros, then stop."""
    q = 0
    while True:
        if rs[1] <= 30:
            _refill(buf, rs)
        acc = rs[0]
        nb = rs[1]
        if acc == 0:
            z = nb
        else:
            z = np.int64(leading_zeros(acc)) - (64 - nb)
        if q + z >= limit:
            nb -= limit - q
            rs[1] = nb
            rs[0] = acc & ((np.int64(1) << nb) - 1)
            return limit
        if z < nb:
            nb -= z + 1
            rs[1] = nb
            rs[0] = acc & ((np.int64(1) << nb) - 1)
            return q + z
        q += nb
        rs[1] = 0
        rs[0] = 0


def bytes_consumed(rs: np.ndarray) -> int:
    """Bytes the reader actually consumed (a partial last byte counts); > buffer size means truncated."""
    bits = int(rs[2]) * 8 - int(rs[1])
    return (bits + 7) // 8


# --- unaligned big-endian 64-bit access (the v2/v3 frame kernels' branch-free bit writer and reader) ---
# A bit writer that stores 8 bytes after every code and advances by the whole bytes it completed needs
# no "is a word full?" branch (taken every ~4 codes in no predictable pattern: ~1/3 of the old Rice
# writer's time); numba has no unaligned word access into a byte array, hence the two intrinsics.


@intrinsic
def store_be64(typingctx, arr, pos, val):
    """``arr[pos : pos + 8] = val`` as big-endian bytes (no bounds check: callers keep 8 bytes of slack)."""

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(builder.bswap(args[2]), ptr).align = 1
        return context.get_dummy_value()

    return types.void(arr, types.int64, types.int64), codegen


@intrinsic
def load_be64(typingctx, arr, pos):
    """``arr[pos : pos + 8]`` as a big-endian int64 (no bounds check: callers pad the buffer)."""

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        ld = builder.load(ptr)
        ld.align = 1
        return builder.bswap(ld)

    return types.int64(arr, types.int64), codegen


@njit(cache=True, inline="always")
def lsr(x: int, s: int) -> int:
    """Logical right shift of an int64 (``s`` in 0..63)."""
    return np.int64(np.uint64(x) >> np.uint64(s))
