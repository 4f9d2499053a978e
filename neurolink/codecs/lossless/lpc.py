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

State per channel: ``hist[c, 0:3]`` last three codes (most recent first), ``rice[:, c] = (A, N, k)``
(field-major, so the per-row updates vectorise; ``N`` is the same for every channel).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from neurolink.codecs.lossless.bitio import load_be64, lsr, store_be64
from neurolink.codecs.lossless.huff import CODES, DEC, ENC, ESC, LENGTHS, MAXLEN, RAW_FAST, D
from neurolink.codecs.lossless.rice import NRESET, QMAX, update_k

N_W = 6  # w0..w5 (own t-1..t-3, left t, t-1, t-2)
N_COEF = N_W + 1  # + bias
SHIFT = 12
MAX_W = 1 << 15
MAX_BIAS = 1 << 40
MAX_K = 40
A_KEY0 = 32 * 64


# Row helpers index the frame and the weights in 2-D (no row views), and the per-row ones keep a
# simple control flow: numba's reference-count pruning then removes the increfs of their array
# arguments (a helper with the key-row and history branches inlined cost ~4x on 4-channel rows).

@njit(cache=True, inline="always")
def _pred_hist(wt, sg, hist, c, left, lo, hi):
    """Clamped prediction of channel ``c`` from the history (before the row is pushed) and its left
    neighbour's value in this row (``left``; its history rows are ``hist[c - 1]``, already pushed)."""
    p = wt[sg, 0, c] * hist[c, 0] + wt[sg, 1, c] * hist[c, 1] + wt[sg, 2, c] * hist[c, 2] + wt[sg, 6, c]
    if c > 0:
        p += wt[sg, 3, c] * left + wt[sg, 4, c] * hist[c - 1, 1] + wt[sg, 5, c] * hist[c - 1, 2]
    return min(max(p >> SHIFT, lo), hi)


@njit(cache=True, inline="always")
def _push_hist(hist, c, v) -> None:
    hist[c, 2] = hist[c, 1]
    hist[c, 1] = hist[c, 0]
    hist[c, 0] = v


@njit(cache=True)
def _row_first(x, t, hist, wt, sg, key, lo, hi, erow) -> None:
    """Rows 0-2 of a call: row 0 of a keyframe is a spatial difference and (re)initialises ``hist``;
    otherwise the predictor takes the rows before the call from ``hist`` (updated row by row)."""
    n_ch = x.shape[1]
    if t == 0 and key:
        prev = np.int64(0)
        for c in range(n_ch):
            v = np.int64(x[0, c])
            erow[c] = v - prev
            prev = v
            hist[c, 0] = v
            hist[c, 1] = v
            hist[c, 2] = v
        return
    left = np.int64(0)
    for c in range(n_ch):
        v = np.int64(x[t, c])
        erow[c] = v - _pred_hist(wt, sg, hist, c, left, lo, hi)
        _push_hist(hist, c, v)
        left = v


@njit(cache=True, inline="always")
def _row32(x, t, w, sg, lo, hi, erow) -> None:
    """Residuals of row ``t`` >= 3 (only loads from ``x``: LLVM vectorises over channels) in int32,
    when ``fast32`` (:func:`transpose`: no sum can leave int32; 8 lanes, no 64-bit multiplies: ~3x)."""
    lo32 = np.int32(lo)
    hi32 = np.int32(hi)
    for c in range(x.shape[1]):
        s = _sum32(x, t, w, sg, c)
        if c > 0:
            s = np.int32(s + np.int32(w[sg, 3, c] * np.int32(x[t, c - 1])))
        erow[c] = np.int32(x[t, c]) - min(max(np.int32(s >> SHIFT), lo32), hi32)


@njit(cache=True, inline="always")
def _row64(x, t, w, sg, lo, hi, erow) -> None:
    """:func:`_row32` in int64 (int32 data, or weights too large for int32 sums)."""
    for c in range(x.shape[1]):
        p = _sum64(x, t, w, sg, c)
        if c > 0:
            p += w[sg, 3, c] * np.int64(x[t, c - 1])
        erow[c] = np.int64(x[t, c]) - min(max(p >> SHIFT, lo), hi)


@njit(cache=True, inline="always")
def _sum32(x, t, w, sg, c):
    """Prediction sum of row ``t``, channel ``c`` without the same-row neighbour term, in int32
    (``fast32``)."""
    s = np.int32(w[sg, 0, c] * np.int32(x[t - 1, c]))
    s = np.int32(s + np.int32(w[sg, 1, c] * np.int32(x[t - 2, c])))
    s = np.int32(s + np.int32(w[sg, 2, c] * np.int32(x[t - 3, c])))
    if c > 0:
        s = np.int32(s + np.int32(w[sg, 4, c] * np.int32(x[t - 1, c - 1])))
        s = np.int32(s + np.int32(w[sg, 5, c] * np.int32(x[t - 2, c - 1])))
    return np.int32(s + w[sg, 6, c])


@njit(cache=True, inline="always")
def _sum64(x, t, w, sg, c):
    """As :func:`_sum32` in int64."""
    s = w[sg, 0, c] * np.int64(x[t - 1, c]) + w[sg, 1, c] * np.int64(x[t - 2, c]) + w[sg, 2, c] * np.int64(x[t - 3, c])
    if c > 0:
        s += w[sg, 4, c] * np.int64(x[t - 1, c - 1]) + w[sg, 5, c] * np.int64(x[t - 2, c - 1])
    return s + w[sg, 6, c]


@njit(cache=True, inline="always")
def _end_hist(x, hist) -> None:
    """History after a call of >= 3 rows: its last three rows (shorter calls updated it row by row)."""
    n_s, n_ch = x.shape
    if n_s > 3:
        for c in range(n_ch):
            hist[c, 0] = x[n_s - 1, c]
            hist[c, 1] = x[n_s - 2, c]
            hist[c, 2] = x[n_s - 3, c]


@njit(cache=True, nogil=True)
def residuals(x, hist, wt, wt32, fast32, seg, key, lo, hi, e) -> None:
    """Residuals of ``x`` (n_s, n_ch) into ``e``; weights as from :func:`transpose`; updates ``hist``.
    Only the encoder's first keyframe needs them apart from the bitstream (its initial Rice k):
    :func:`encode_frame` computes them row by row itself."""
    for t in range(x.shape[0]):
        sg = t // seg
        if t < 3:
            _row_first(x, t, hist, wt, sg, key, lo, hi, e[t])
        elif fast32[sg]:
            _row32(x, t, wt32, sg, lo, hi, e[t])
        else:
            _row64(x, t, wt, sg, lo, hi, e[t])
    _end_hist(x, hist)


#: int16 codes (also under an alphabet) satisfy |x| <= XMAX16
XMAX16 = 1 << 15


def transpose(coefs: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_seg, n_ch, N_COEF) weights as sent -> the kernels' layout (n_seg, N_COEF, n_ch) in int64 and
    int32, and per segment whether int32 arithmetic is exact: int16 data, and sum |w| * 2^15 + |bias|
    < 2^31 for every channel (then no partial sum of a prediction can overflow)."""
    wt = np.ascontiguousarray(coefs.transpose(0, 2, 1))
    bound = np.abs(wt[:, :N_W]).sum(axis=1) * XMAX16 + np.abs(wt[:, N_W])
    fast32 = (bound.max(axis=1, initial=0) < (1 << 31)) & (dtype == np.int16)
    return wt, wt.astype(np.int32), fast32


# --- bit writer: ``acc`` holds the pending bits right-aligned (the low ``nb`` < 8 between codes; bits
# --- above them are stale). After each code the accumulator is stored left-aligned, whole (8 bytes,
# --- unaligned), and ``pos`` advances by the bytes completed: no "is a word full?" branch.

@njit(cache=True)
def _put(out, ws, code, n) -> None:
    """Slow-path writer (state in ``ws`` = [acc, nb, pos]): the low ``n`` (<= 32) bits of ``code``."""
    if n <= 0:
        return
    acc = (ws[0] << n) | (code & ((np.int64(1) << n) - 1))
    nb = ws[1] + n
    pos = ws[2]
    store_be64(out, pos, acc << (64 - nb))
    ws[0] = acc
    ws[1] = nb & 7
    ws[2] = pos + (nb >> 3)


@njit(cache=True)
def _put_raw(out, ws, u, n) -> None:
    """The low ``n`` (<= 64) bits of ``u``, in pieces of <= 32."""
    if n > 32:
        _put(out, ws, u >> 32, n - 32)
        _put(out, ws, u & 0xFFFFFFFF, 32)
    else:
        _put(out, ws, u, n)


@njit(cache=True)
def _put_rice_slow(out, ws, u, k, esc_bits) -> None:
    """A Rice code longer than 32 bits, or the escape (``QMAX`` zeros + ``esc_bits`` raw bits)."""
    q = u >> k
    if q < QMAX:
        _put(out, ws, 1, q + 1)
        _put_raw(out, ws, u, k)
    else:
        _put(out, ws, 0, QMAX)
        _put_raw(out, ws, u, esc_bits)


@njit(cache=True)
def _put_prefix_slow(out, ws, u, tb, q, b, esc_bits) -> None:
    """A prefix-coded quotient with more than ``RAW_FAST`` raw bits, or its escape."""
    if q >= ESC:
        _put(out, ws, CODES[tb, ESC], LENGTHS[tb, ESC])
        _put_raw(out, ws, u, esc_bits)
    else:
        _put(out, ws, CODES[tb, q], LENGTHS[tb, q])
        _put_raw(out, ws, u, b)


@njit(cache=True, inline="always")
def _k_of(a, nn, lz_nn):
    """:func:`rice.update_k` with ``lz_nn`` = leading zeros of ``nn`` hoisted out of the row."""
    d = max(lz_nn - np.int64(leading_zeros(a)), 0)
    return min(d + ((nn << d) < a), 50)


@njit(cache=True)
def _words_key(erow, wcode, wlen) -> None:
    """Row 0 of a keyframe: Rice with its own context, which adapts channel to channel (serial)."""
    a0 = np.int64(A_KEY0)
    n0 = np.int64(1)
    k = update_k(0, a0, n0)
    for c in range(erow.shape[0]):
        v = np.int64(erow[c])
        u = (v << 1) ^ (v >> 63)
        q = u >> k
        n = q + 1 + k
        fast = (q < QMAX) & (n <= 32)
        wcode[c] = (u ^ ((q ^ 1) << k)) if fast else u
        wlen[c] = n if fast else -1 - k
        a0 += abs(v)
        n0 += 1
        k = update_k(k, a0, n0)


@njit(cache=True, inline="always")
def _words_rice(erow, amean, kk, h, nn, lz_nn, wcode, wlen) -> None:
    """A Rice row's code words and lengths (length -1 - k: a slow code of ``u`` = the word) and each
    channel's next Rice state; per channel independent, so the loop vectorises."""
    for c in range(erow.shape[0]):
        v = np.int64(erow[c])
        k = kk[c]
        u = (v << 1) ^ (v >> 63)
        q = u >> k
        n = q + 1 + k
        fast = (q < QMAX) & (n <= 32)
        wcode[c] = (u ^ ((q ^ 1) << k)) if fast else u  # 0^q 1 and the k low bits of u
        wlen[c] = n if fast else -1 - k
        a = (amean[c] + ((u + 1) >> 1)) >> h
        amean[c] = a
        kk[c] = _k_of(a, nn, lz_nn)


@njit(cache=True)
def _words_prefix(erow, amean, kk, h, nn, lz_nn, esc_bits, pfx, cost, wcode, wlen) -> None:
    """:func:`_words_rice` with the prefix code on the channels with ``pfx[c] = 1``, and both codes'
    bits per sample added to ``cost[c]`` (the next keyframe picks each channel's code from them)."""
    for c in range(erow.shape[0]):
        v = np.int64(erow[c])
        k = kk[c]
        u = (v << 1) ^ (v >> 63)
        b = k - D if k > D else 0
        q = u >> b
        tb = k if k < D else D
        rq = u >> k
        cost[c, 0] += rq + 1 + k if rq < QMAX else QMAX + esc_bits
        cost[c, 1] += (ENC[(tb << 6) | q] & 15) + b if q < ESC else LENGTHS[tb, ESC] + esc_bits
        wcode[c] = u
        wlen[c] = -1 - k
        if pfx[c] == 0:
            n = rq + 1 + k
            if rq < QMAX and n <= 32:
                wcode[c] = u ^ ((rq ^ 1) << k)
                wlen[c] = n
        elif q < ESC and b <= RAW_FAST:
            ent = ENC[(tb << 6) | q]
            wcode[c] = ((ent >> 4) << b) | (u & ((np.int64(1) << b) - 1))
            wlen[c] = (ent & 15) + b
        a = (amean[c] + ((u + 1) >> 1)) >> h
        amean[c] = a
        kk[c] = _k_of(a, nn, lz_nn)


@njit(cache=True, nogil=True)
def encode_frame(x, hist, wt, wt32, fast32, seg, key, lo, hi, rice, esc_bits, out, lead, tail_val, tail_min,
                 prefix, pfx, cost, erow, words, kb, kpos, force) -> int:
    """Residuals of ``x`` (codes, n_s x n_ch) and their bitstream into ``out``; returns the bytes written.

    One call per frame (v2 archive block, v2/v3 stream frame), three passes per row: residuals into
    ``erow`` (vectorised), code words and lengths into ``words`` (2, n_ch) with the next Rice state
    (Rice only: vectorised), then the serial bit packing (~10 instructions a code; one fused loop was
    ~2x the time). Row 0 of a keyframe: spatial difference, Rice with its own context. Other rows:
    adaptive Rice (LOCO-I ``rice[:, c] = (A, N, k)``), or with ``prefix`` the quotient of the
    channels with ``pfx[c] = 1`` through the prefix code of :mod:`huff`, adding each sample's (Rice,
    prefix) bits to ``cost[c]``. ``N`` is the same for every channel (every row updates each channel
    once from the common initial value of :func:`init_rice`), so it is kept per row. ``lead`` zero bits
    come first (v3 predicted frames: the keyframe flag); with ``tail_min >= 0`` the last byte is filled
    with ``r`` in [tail_min, tail_min + 7] low bits of ``tail_val`` (the v3 frame check) instead of
    zero padding. ``out`` needs 8 bytes of slack past the worst case. With ``kpos >= 0`` (a v3
    keyframe) :func:`key_rice` runs first, writing the Rice k bytes to ``kb[kpos:]``; returns -1 without
    coding anything when it declines (every k 0 and not ``force``: the caller estimates them)."""
    n_s, n_ch = x.shape
    if kpos >= 0 and not key_rice(rice, prefix, pfx, kb, kpos, force):
        return -1
    ws = np.zeros(3, np.int64)
    acc = np.int64(0)
    nb = np.int64(lead)
    pos = np.int64(0)
    nn = rice[1, 0] if n_ch else np.int64(0)
    amean = rice[0]
    kk = rice[2]
    wcode = words[0]
    wlen = words[1]
    for t in range(n_s):
        sg = t // seg
        if t < 3:
            _row_first(x, t, hist, wt, sg, key, lo, hi, erow)
        elif fast32[sg]:
            _row32(x, t, wt32, sg, lo, hi, erow)
        else:
            _row64(x, t, wt, sg, lo, hi, erow)
        key_row = key and t == 0
        if key_row:
            _words_key(erow, wcode, wlen)
        else:
            nn += 1
            h = np.int64(nn >= NRESET)  # halve A and N
            nn >>= h
            if prefix:
                _words_prefix(erow, amean, kk, h, nn, np.int64(leading_zeros(nn)), esc_bits, pfx, cost, wcode, wlen)
            else:
                _words_rice(erow, amean, kk, h, nn, np.int64(leading_zeros(nn)), wcode, wlen)
        pfx_row = prefix and not key_row
        for c in range(n_ch):
            n = wlen[c]
            if n > 0:
                acc = (acc << n) | wcode[c]
                nb += n
                store_be64(out, pos, acc << (64 - nb))
                pos += nb >> 3
                nb &= 7
            else:
                k = -1 - n
                u = wcode[c]
                ws[0] = acc
                ws[1] = nb
                ws[2] = pos
                if pfx_row and pfx[c] != 0:
                    b = k - D if k > D else 0
                    _put_prefix_slow(out, ws, u, k if k < D else D, u >> b, b, esc_bits)
                else:
                    _put_rice_slow(out, ws, u, k, esc_bits)
                acc = ws[0]
                nb = ws[1]
                pos = ws[2]
    for c in range(n_ch):
        rice[1, c] = nn
    _end_hist(x, hist)
    if tail_min >= 0:
        r = tail_min + ((((8 - nb) & 7) - tail_min) & 7)
        ws[0] = acc
        ws[1] = nb
        ws[2] = pos
        _put(out, ws, tail_val, r)
        acc = ws[0]
        nb = ws[1]
        pos = ws[2]
    if nb > 0:
        store_be64(out, pos, acc << (64 - nb))
        pos += 1
    return pos


# --- bit reader (F. Giesen's "variant 4"): ``bits`` holds the next ``bc`` (>= 56 after a refill) bits
# --- of the stream left-aligned (the bits below them are stream bits too), ``ptr`` is the byte after
# --- them. A refill ORs in an unaligned 8-byte big-endian load and needs no branch; its address does
# --- not depend on the codes just read, so it stays off the critical path (one per two codes). Callers
# --- pad the payload with zeros (:func:`padded`): reads past its end yield zeros, as before.

@njit(cache=True, inline="always")
def _window(buf, bp) -> int:
    return load_be64(buf, bp >> 3) << (bp & 7)


@njit(cache=True)
def _get_raw(buf, bp, q, b, esc_bits, escape, res) -> None:
    """The raw bits of a code at bit ``bp``: ``esc_bits`` of ``u`` for an escape, else ``b`` low bits
    under the quotient ``q``: ``res`` = [value, next bit position]."""
    if escape:
        u = lsr(_window(buf, bp), 64 - esc_bits)
        bp += esc_bits
    else:
        u = q << b
        if b > 0:
            u |= lsr(_window(buf, bp), 64 - b)
            bp += b
    res[0] = (u >> 1) ^ -(u & 1)
    res[1] = bp


@njit(cache=True)
def _get_rice_slow(buf, bp, k, esc_bits, res) -> None:
    """Rice code at bit ``bp`` (any length; unary runs stop at ``QMAX`` zeros = escape)."""
    z = np.int64(leading_zeros(_window(buf, bp)))
    if z >= QMAX:
        _get_raw(buf, bp + QMAX, 0, 0, esc_bits, True, res)
    else:
        _get_raw(buf, bp + z + 1, z, k, esc_bits, False, res)


@njit(cache=True, nogil=True)
def decode_frame(buf, bp, n_bits, y, hist, wt, wt32, fast32, seg, key, lo, hi, rice, esc_bits, prefix, pfx, erows,
                 prow, stat, kb, kpos) -> int:
    """Inverse of :func:`encode_frame`: fills ``y`` (n_s, n_ch) from the bitstream at bit ``bp`` of
    ``buf`` (``n_bits`` real bits, then at least ``8 * n_ch + 16`` zero bytes); returns the bit
    position after the codes (> ``n_bits``: truncated). Decoded values outside [lo, hi] are clamped and
    counted in ``stat[0]``. ``erows`` (2, n_ch) and ``prow`` (n_ch) are scratch.

    A row's codes are read first (``k`` depends on residuals only). Rows >= 3 are reconstructed one
    pass late, in the same channel loop that reads the next row: the part of the prediction without
    the same-row neighbour is summed over all channels first (vectorised), and the remaining serial
    chain (left neighbour -> clamp -> value) then overlaps the bit reader's serial chain instead of
    following it (the two loops one after the other cost ~1.4x). With ``kpos >= 0`` (a v3 keyframe)
    the Rice state comes from the k bytes ``kb[kpos:]`` first (:func:`init_rice_bytes`); returns -1 if
    one is > MAX_K."""
    n_s, n_ch = y.shape
    if kpos >= 0 and init_rice_bytes(rice, kb, kpos, prefix, pfx) > MAX_K:
        return -1
    res = np.zeros(2, np.int64)
    nn = rice[1, 0] if n_ch else np.int64(0)
    amean = rice[0]
    kk = rice[2]
    ptr = bp >> 3
    bits = load_be64(buf, ptr) << (bp & 7)
    bc = 56 - (bp & 7)
    ptr += 7
    t0 = 0
    if key and n_s > 0:
        # row 0 of a keyframe: spatial difference, Rice with its own (serial) context, through the same
        # branch-free reader as the other rows (the slow reader per code cost ~60 us per 1024 channels)
        a0 = np.int64(A_KEY0)
        n0 = np.int64(1)
        k0 = update_k(0, a0, n0)
        prev = np.int64(0)
        for c in range(n_ch):
            if (c & 1) == 0:
                bits |= lsr(load_be64(buf, ptr), bc)
                ptr += (63 - bc) >> 3
                bc |= 56
            z = np.int64(leading_zeros(bits))
            n = z + 1 + k0
            if z < QMAX and n <= bc:
                u = lsr(bits << z, 63 - k0) + ((z - 1) << k0)
                bits <<= n
                bc -= n
                v = (u >> 1) ^ -(u & 1)
            else:
                _get_rice_slow(buf, 8 * ptr - bc, k0, esc_bits, res)
                v = res[0]
                bp = res[1]
                ptr = bp >> 3
                bits = load_be64(buf, ptr) << (bp & 7)
                bc = 56 - (bp & 7)
                ptr += 7
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
    cur = 0
    h = np.int64(0)
    lz_nn = np.int64(0)
    for t in range(t0, n_s + 1):
        read = t < n_s  # read row t
        r = t - 1
        late = r >= 3  # reconstruct row r = t - 1 (pipelined)
        if read:
            if 8 * ptr - bc > n_bits:  # past the end (+ zero padding of one row's worst case): truncated
                return 8 * ptr - bc
            nn += 1
            h = np.int64(nn >= NRESET)  # halve A and N
            nn >>= h
            lz_nn = np.int64(leading_zeros(nn))
        nxt = 1 - cur
        sg = r // seg if late else 0
        if late:
            if fast32[sg]:
                for c in range(n_ch):
                    prow[c] = _sum32(y, r, wt32, sg, c)
            else:
                for c in range(n_ch):
                    prow[c] = _sum64(y, r, wt, sg, c)
        n0 = np.int64(0)
        for c in range(n_ch):
            if read:
                if (c & 1) == 0:  # refill: >= 56 bits, enough for two fast-path codes
                    bits |= lsr(load_be64(buf, ptr), bc)
                    ptr += (63 - bc) >> 3
                    bc |= 56
                k = kk[c]
                slow = False
                if prefix and pfx[c] != 0:
                    tb = k if k < D else D
                    ent = np.int64(DEC[(tb << MAXLEN) | lsr(bits, 64 - MAXLEN)])
                    q = ent >> 4
                    n = ent & 15
                    b = k - D if k > D else 0
                    if q < ESC and n + b <= bc:
                        u = (q << b) | (lsr(bits << n, 1) >> (63 - b))
                        n += b
                    else:
                        slow = True
                        _get_raw(buf, 8 * ptr - bc + n, q, b, esc_bits, q >= ESC, res)
                else:
                    z = np.int64(leading_zeros(bits))
                    n = z + 1 + k
                    if z < QMAX and n <= bc:
                        u = lsr(bits << z, 63 - k) + ((z - 1) << k)  # from the 1: 2^k + the k low bits
                    else:
                        slow = True
                        _get_rice_slow(buf, 8 * ptr - bc, k, esc_bits, res)
                if slow:
                    v = res[0]
                    bp = res[1]
                    ptr = bp >> 3
                    bits = load_be64(buf, ptr) << (bp & 7)
                    bc = 56 - (bp & 7)
                    ptr += 7
                else:
                    bits <<= n
                    bc -= n
                    v = (u >> 1) ^ -(u & 1)
                erows[nxt, c] = v
            if late:
                v = erows[cur, c] + min(max((prow[c] + wt[sg, 3, c] * n0) >> SHIFT, lo), hi)
                if v < lo or v > hi:  # corrupt payload: clamp, the caller reports it
                    v = lo
                    stat[0] += 1
                y[r, c] = v
                n0 = v
        if read:  # the row's k for the next one: independent per channel (vectorised), off the reader's chain
            for c in range(n_ch):
                v = np.int64(erows[nxt, c])
                a = (amean[c] + (v if v >= 0 else -v)) >> h
                amean[c] = a
                kk[c] = _k_of(a, nn, lz_nn)
        if read and t < 3:  # the first rows of a call need the carried history: not pipelined
            sg = t // seg
            left = np.int64(0)
            for c in range(n_ch):
                v = erows[nxt, c] + _pred_hist(wt, sg, hist, c, left, lo, hi)
                if v < lo or v > hi:
                    v = lo
                    stat[0] += 1
                y[t, c] = v
                _push_hist(hist, c, v)
                left = v
        cur = nxt
    for c in range(n_ch):
        rice[1, c] = nn
    _end_hist(y, hist)
    return 8 * ptr - bc


def padded(blob: bytes, start: int, n_ch: int, scratch: np.ndarray | None = None) -> np.ndarray:
    """``blob[start:]`` followed by the zero bytes :func:`decode_frame` may read past it (one row's
    worst case + one 8-byte load); ``scratch`` is reused when it is large enough."""
    n = len(blob) - start
    size = n + 8 * n_ch + 16
    buf = scratch if scratch is not None and scratch.size >= size else np.empty(max(size, 1 << 16), np.uint8)
    buf[:n] = np.frombuffer(blob, np.uint8, n, start)
    buf[n:size] = 0
    return buf


def tail_bits(blob: bytes, n: int) -> int:
    """The last ``n`` (<= 16) bits of a payload (the v3 frame check)."""
    return int.from_bytes(blob[-2:], "big") & ((1 << n) - 1)


@njit(cache=True, nogil=True)
def init_rice(rice, kinit) -> None:
    for c in range(rice.shape[1]):
        rice[0, c] = np.int64(4) << kinit[c]
        rice[1, c] = 4
        rice[2, c] = kinit[c]


@njit(cache=True, nogil=True, inline="always")
def _put_varint(out, pos, v):
    """One zigzag LEB128 value (|v| < 2**62) at ``pos``; returns the new pos."""
    u = (v << 1) ^ (v >> 63)
    while u >= 0x80:
        out[pos] = (u & 0x7F) | 0x80
        pos += 1
        u >>= 7
    out[pos] = u
    return pos + 1


@njit(cache=True, nogil=True)
def put_varints(vals, out, pos) -> int:
    """Zigzag LEB128 of an int64 array (|v| < 2**62) into ``out`` from ``pos``; returns the new pos."""
    for i in range(vals.size):
        pos = _put_varint(out, pos, vals[i])
    return pos


@njit(cache=True, nogil=True, inline="always")
def _get_varint(buf, pos):
    """One zigzag varint at ``pos``: (value, new pos), pos -1 if truncated or overlong (never raises: a
    raise inside a nested kernel leaks the caller's arrays in numba)."""
    n = buf.shape[0]
    u = np.int64(0)
    shift = 0
    while True:
        if pos >= n or shift > 56:
            return np.int64(0), -1
        b = np.int64(buf[pos])
        pos += 1
        u |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    return (u >> 1) ^ -(u & 1), pos


@njit(cache=True, nogil=True)
def get_varints(buf, pos, vals) -> int:
    """Inverse of :func:`put_varints`; returns the new pos, or -1 if truncated / overlong."""
    for i in range(vals.size):
        v, pos = _get_varint(buf, pos)
        if pos < 0:
            return -1
        vals[i] = v
    return pos


@njit(cache=True, nogil=True)
def init_rice_bytes(rice, buf, pos, prefix, pfx) -> int:
    """A v3 keyframe's Rice k bytes ``buf[pos:pos + n_ch]`` (with ``prefix``: bit 6 = the channel's
    ``pfx`` flag, into ``pfx``) -> :func:`init_rice`; returns the largest k (> MAX_K: corrupt, nothing
    initialised)."""
    n_ch = rice.shape[1]
    kmax = np.int64(0)
    for c in range(n_ch):
        k = np.int64(buf[pos + c])
        if prefix:
            k &= 63
        kmax = max(kmax, k)
    if kmax > MAX_K:
        return kmax
    for c in range(n_ch):
        k = np.int64(buf[pos + c])
        if prefix:
            pfx[c] = (k >> 6) & 1
            k &= 63
        rice[0, c] = np.int64(4) << k
        rice[1, c] = 4
        rice[2, c] = k
    return kmax


@njit(cache=True, nogil=True)
def pack_weights(pending, c0, c1, drop, q, wt, wt32, bmax, tab, tpos) -> int:
    """Channels ``c0..c1`` of a v3 weight set, ahead of its keyframe (the streaming fitter calls this as
    it solves them): ``pending`` (n_ch, N_COEF) rounded to multiples of ``2^drop`` into ``q``, the
    kernels' layouts ``wt``/``wt32`` (1, N_COEF, n_ch) as from :func:`transpose` with the largest
    int32 bound so far (``fast32`` iff < 2^31) in ``bmax[0]`` (reset at ``c0 = 0``), and the weights' zigzag varints in units of ``2^drop`` (as
    :func:`put_varints`) into ``tab`` from ``tpos``; returns the new ``tpos``."""
    half = (np.int64(1) << drop) >> 1
    if c0 == 0:
        bmax[0] = 0
    for c in range(c0, c1):
        b = np.int64(0)
        for i in range(N_COEF):
            v = ((pending[c, i] + half) >> drop) << drop
            q[c, i] = v
            wt[0, i, c] = v
            wt32[0, i, c] = np.int32(v)
            b += abs(v) * XMAX16 if i < N_W else abs(v)
            tpos = _put_varint(tab, tpos, v >> drop)
        bmax[0] = max(bmax[0], b)
    return tpos


@njit(cache=True, nogil=True)
def key_rice(rice, prefix, pfx, tab, pos, force) -> bool:
    """A v3 keyframe's Rice state: k per channel capped at MAX_K, :func:`init_rice`, and the k bytes
    (with ``prefix``: bit 6 = ``pfx``) into ``tab[pos:pos + n_ch]``. Returns False (nothing done) when
    every k is 0 and not ``force`` (a fresh stream: the caller estimates them first)."""
    n_ch = rice.shape[1]
    anyk = False
    for c in range(n_ch):
        if rice[2, c] != 0:
            anyk = True
            break
    if not anyk and not force:
        return False
    for c in range(n_ch):
        k = min(rice[2, c], MAX_K)
        rice[0, c] = np.int64(4) << k
        rice[1, c] = 4
        rice[2, c] = k
        tab[pos + c] = (k | (pfx[c] << 6)) if prefix else k
    return True


@njit(cache=True, nogil=True)
def get_weights(buf, pos, drop, is16, coefs, wt, wt32, fast32) -> int:
    """A v3 keyframe's weight set: n_ch x N_COEF zigzag varints in units of ``2^drop`` from
    ``buf[pos]`` -> ``coefs`` (n_ch, N_COEF) in Q12, the kernels' layouts ``wt``/``wt32`` (1, N_COEF,
    n_ch) and ``fast32[0]`` as from :func:`transpose`, in one pass. Returns the offset after the
    varints, -1 if truncated or overlong, -2 if a weight is out of range (|w| >= MAX_W, |b| >= MAX_BIAS
    in units of 2^drop)."""
    n_ch = coefs.shape[0]
    bmax = np.int64(0)
    for c in range(n_ch):
        b = np.int64(0)
        for i in range(N_COEF):
            w, pos = _get_varint(buf, pos)
            if pos < 0:
                return -1
            if abs(w) >= ((MAX_W if i < N_W else MAX_BIAS) >> drop):
                return -2
            v = w << drop
            coefs[c, i] = v
            wt[0, i, c] = v
            wt32[0, i, c] = np.int32(v)
            b += abs(v) * XMAX16 if i < N_W else abs(v)
        bmax = max(bmax, b)
    fast32[0] = is16 and bmax < (np.int64(1) << 31)
    return pos
