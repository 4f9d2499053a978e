"""Adaptive binary range coder (numba) for small quantised residuals, with a near-free per-frame flush.

At ~2 bits/sample the Rice codes of ``_bitio`` waste 5-15 %: a Rice code cannot spend less than one
bit on a zero, nor model that zeros cluster in quiet stretches. This is the LZMA range coder (32-bit
range, carry propagation through a cached byte) with 12-bit probabilities whose adaptation rate starts
fast (1/2, 1/4, ...) and settles at 1/64, so contexts reset at a keyframe are learnt in a few symbols.

Why the flush matters: a 1 ms frame of a tetrode carries ~17 bytes. LZMA's flush writes 5 bytes;
here the encoder picks the value in the final interval with the most trailing zero bits and drops
them (the decoder reads zeros past the end), so a frame pays ~1-2 bits over its information content.
The first byte of an LZMA stream is always 0 and is not sent either.

State: encoder tuple ``(low, range, cache, cache_size, out_pos)`` with a caller-owned uint8 ``out``;
decoder tuple ``(code, range, in_pos)`` over a uint8 ``src`` (reads past its end give 0).
Probabilities: ``prob`` int64 (P(bit = 0) in 1/4096) and ``cnt`` int64 (symbols seen, for the rate).
"""

from __future__ import annotations

import numpy as np
from numba import njit

PROB_BITS = 12
PROB_ONE = 1 << PROB_BITS
SHIFT_MAX = 6  # slowest adaptation rate 1/64
#: Probabilities move towards P_HI after a 0 and P_LO after a 1 (p += (target - p) >> shift), so they
#: stay inside [P_LO, P_HI] without branches (the encoder's loop is branch-free).
P_LO, P_HI = 31, PROB_ONE - 31
TOP = 1 << 24
MASK32 = (1 << 32) - 1


def new_model(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh probabilities (1/2) and counters for n binary contexts (+1 scratch slot for enc_decisions)."""
    return np.full(n + 1, PROB_ONE // 2, np.int64), np.zeros(n + 1, np.int64)


#: Adaptation shift after c symbols in a context (rate ~1/(c+2), down to 1/2^SHIFT_MAX); c saturates at 63.
_SHIFTS = np.array([min(SHIFT_MAX, max(1, int(np.log2(c + 2)))) for c in range(64)], np.int64)


@njit(cache=True, inline="always")
def rate(cnt, ctx):
    c = cnt[ctx]
    cnt[ctx] = min(c + 1, 63)
    return _SHIFTS[c]


# The coder state travels as scalars: (low, range, cache, cache_size, out_pos) for the encoder and
# (code, range, in_pos) for the decoder, passed in and returned as a tuple that the caller unpacks at
# once. numba keeps them in registers that way; a loop-carried tuple or an int64 state array was 6-15x
# slower (every update went through memory).
@njit(cache=True, inline="always")
def enc_init():
    return np.int64(0), np.int64(MASK32), np.int64(0), np.int64(1), np.int64(0)


@njit(cache=True, inline="always")
def shift_low(low, cache, csize, opos, out):
    if low < 0xFF000000 or low > MASK32:
        carry = low >> 32
        temp = cache
        while True:
            if opos < out.size:
                out[opos] = (temp + carry) & 0xFF
            opos += 1
            temp = 0xFF
            csize -= 1
            if csize == 0:
                break
        cache = (low >> 24) & 0xFF
    return (low & 0x00FFFFFF) << 8, cache, csize + 1, opos


@njit(cache=True)
def enc_decisions(low, rng, cache, csize, opos, out, prob, cnt, dctx, dbit, nd):
    """Code nd buffered decisions: dctx[i] >= 0 is an adaptive context with bit dbit[i]; dctx[i] = -n
    (n <= 16) codes the n-bit value dbit[i] with equiprobable bits in one step.

    Branch-free apart from renormalisation (both paths are computed and selected; the last context,
    ``prob.size - 1``, is a scratch slot for the direct path): the decisions are unpredictable and
    branch misses made this loop 3x slower (10 ns per decision instead of 3.5).
    """
    dummy = prob.size - 1
    for d in range(nd):
        ctx = dctx[d]
        v = dbit[d]
        isd = ctx < 0
        n = -ctx if isd else 0
        c2 = dummy if isd else ctx
        pr = prob[c2]
        bound = (rng >> PROB_BITS) * pr
        mask = -v
        low_a = low + (bound & mask)
        rng_a = bound ^ ((bound ^ (rng - bound)) & mask)
        k = cnt[c2]
        cnt[c2] = min(k + 1, 63)
        prob[c2] = pr + (((P_HI ^ ((P_HI ^ P_LO) & mask)) - pr) >> _SHIFTS[k])
        r2 = rng >> n
        low = (low + r2 * v) if isd else low_a
        rng = r2 if isd else rng_a
        while rng < TOP:
            rng <<= 8
            low, cache, csize, opos = shift_low(low, cache, csize, opos, out)
    return low, rng, cache, csize, opos


@njit(cache=True)
def enc_finish(low, rng, cache, csize, opos, out) -> int:
    """Flush with the fewest bytes; returns the byte count (trailing zero bytes dropped; out[0] is 0)."""
    for j in range(32, -1, -1):
        m = np.int64(1) << j
        v = (low + m - 1) & ~(m - 1)
        if v < low + rng:
            low = v
            break
    for _ in range(5):
        low, cache, csize, opos = shift_low(low, cache, csize, opos, out)
    n = opos
    if n > out.size:
        raise ValueError("range coder output buffer too small")
    while n > 1 and out[n - 1] == 0:
        n -= 1
    # out[0] is always 0 (the coded value is < 1): the caller sends out[1:n]
    return n


@njit(cache=True, inline="always")
def _next(src, p):
    if p < src.size:
        return np.int64(src[p])
    return np.int64(0)


@njit(cache=True, inline="always")
def dec_init(src):
    """src is the stream without its leading 0 byte; returns (code, range, in_pos)."""
    code = np.int64(0)
    for i in range(4):
        code = (code << 8) | _next(src, i)
    return code, np.int64(MASK32), np.int64(4)


@njit(cache=True, inline="always")
def _dec_normalise(code, rng, ip, src):
    """Shift input bytes in until the range is >= TOP again."""
    while rng < TOP:
        rng <<= 8
        code = ((code << 8) | _next(src, ip)) & MASK32
        ip += 1
    return code, rng, ip


@njit(cache=True, inline="always")
def dec_bit(code, rng, ip, src, prob, cnt, ctx):
    p = prob[ctx]
    bound = (rng >> PROB_BITS) * p
    sh = rate(cnt, ctx)
    if code < bound:
        rng = bound
        prob[ctx] = p + ((P_HI - p) >> sh)
        bit = 0
    else:
        code -= bound
        rng -= bound
        prob[ctx] = p + ((P_LO - p) >> sh)
        bit = 1
    code, rng, ip = _dec_normalise(code, rng, ip, src)
    return code, rng, ip, bit


@njit(cache=True, inline="always")
def dec_direct(code, rng, ip, src, nbits):
    """nbits (<= 16) equiprobable bits in one step (the encoder's ``dctx = -nbits``)."""
    rng >>= nbits
    v = code // rng
    top = (1 << nbits) - 1
    if v > top:  # only on a corrupt stream
        v = top
    code -= v * rng
    code, rng, ip = _dec_normalise(code, rng, ip, src)
    return code, rng, ip, v
