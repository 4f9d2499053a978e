"""Error-bounded near-lossless coding with a fitted linear predictor: every sample within k of the original.

Same bound and knob as ``nl-nearlossless`` (closed-loop DPCM, residual quantised with step 2k+1), but
the previous-sample predictor of that codec is a poor one on broadband extracellular data (it *adds*
~0.2 dB of error power on the locust tetrode, whose spectrum is nearly flat). Here each channel is
predicted from its own last two reconstructed samples and the current reconstructed sample of the
previous channel, around a channel mean:

    p = mu_c + (w1 (r[t-1] - mu_c) + w2 (r[t-2] - mu_c) + wn (r_{c-1}[t] - mu_{c-1}) + 128) >> 8

all in int64, so encoder and decoder agree bit for bit on any machine. The encoder fits the weights
by ridge least squares on decayed statistics of its own *reconstruction* (at large k the history is
noisy and the optimal weights shrink), quantises them to Q8 and sends them with the means in every
keyframe (~48 bits per channel per keyframe); between keyframes nothing but residuals is sent.
Residuals are binarised and coded with the adaptive binary range coder of ``_rangecoder`` (5-15 %
smaller than adaptive Rice codes at 2-4 bits/sample), with contexts from the local activity (|q| of
the last two samples and of the neighbour channel), which separates spike bursts from background.

``nl-dpcm`` is the same coder with a continuous ``step`` knob (fixed point, 1/16 input unit).

The encoder has an error-feedback hook (``_shape``, 0 here): full first-order feedback moved noise
out of the spike band but cost 3 dB SNR and lowered spike F1 on the locust data, so it is unused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import BAD, check_pos, error_code, fail, get_bits, put_bits
from neurolink.codecs.lossy._common import QMAX
from neurolink.codecs.lossy._rangecoder import (
    dec_bit,
    dec_direct,
    dec_init,
    enc_decisions,
    enc_finish,
    enc_init,
    new_model,
)
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number

N_W = 3  # weights per channel: lag 1, lag 2, neighbour channel at lag 0
W_BITS = 10  # Q8 weights in [-2, 2)
W_SHIFT = 8
N_BUCKETS = 16  # activity buckets (zero-flag contexts), shared by all channels
_THRESH = np.array([0, 1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224], np.int64)
U_CTX = 8  # contexts per bucket for the unary bins of the high magnitude part
UMAX = 20  # unary bins before the Exp-Golomb escape
N_CTX = N_BUCKETS * (1 + U_CTX)
DIRECT_MAX = 16  # equiprobable bits coded in one step (the range stays >= 2^8)
DEC_CHUNK = 4096  # binary decisions buffered before the coder runs over them
STATS_EVERY = 4  # the encoder's fitting statistics use every 4th sample (cheaper, same fit)
RMAX = 1 << 31  # reconstruction clamp (only reachable with corrupt payloads)
DECAY = 0.99  # per-frame decay of the encoder's fitting statistics (~100 frames)
RIDGE = 1e-3  # relative ridge term of the least-squares fit
# Jitted kernels never raise (a raise in nopython code leaks their arrays; see _bitio): the side-info
# reader returns an error position, the residual decoder an error input position ``ip`` (two bands:
# ``ip`` keeps counting after the error, by far less than 2^40 on any frame), raised in Python.
ERR_MEAN = error_code(17, "channel mean field wider than 32 bits")
IP_ESCAPE, IP_RESIDUAL = BAD, BAD + (1 << 40)


@njit(cache=True, inline="always")
def _clamp(v: int) -> int:
    if v > RMAX:
        return RMAX
    if v < -RMAX:
        return -RMAX
    return v


@njit(cache=True, inline="always")
def _predict(c, mu, w, hist, cur_prev):
    acc = w[c, 0] * (hist[c, 0] - mu[c]) + w[c, 1] * (hist[c, 1] - mu[c])
    if c > 0:
        acc += w[c, 2] * (cur_prev - mu[c - 1])
    return mu[c] + ((acc + (1 << (W_SHIFT - 1))) >> W_SHIFT)


def _context_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket and split s for activities 0..n-1 (a table lookup: the loops cost 18 ns per sample)."""
    act = np.arange(n)
    bucket = np.searchsorted(_THRESH, act, side="right") - 1
    a4 = (act >> 2) + 1
    split = np.maximum(np.floor(np.log2(a4)).astype(np.int64) - 1, 0)
    return bucket.astype(np.int8), split.astype(np.int8)  # int8: the tables stay in L1


ACT_TAB = 4096
_BUCKET, _SPLIT = _context_tables(ACT_TAB)


@njit(cache=True)
def _context_slow(act):
    a4 = (act >> 2) + 1
    s = 0
    while (a4 >> (s + 1)) > 0:
        s += 1
    return s - 1


# Activity A = 2|q[t-1]| + |q[t-2]| + |q of the previous channel now| (for channel 0: 3|q[t-1]| + |q[t-2]|)
# -> (bucket, Rice-like split s), written out in both loops: numba's inline="always" of a function
# returning a tuple from two branches cost ~20 ns per sample.


@njit(cache=True, inline="always")
def _direct(dctx, dbit, nd, value, nbits):
    """Append nbits equiprobable bits of value as chunks of <= DIRECT_MAX bits (context = -chunk size)."""
    while nbits > 0:
        take = min(nbits, DIRECT_MAX)
        nbits -= take
        dctx[nd] = -take
        dbit[nd] = (value >> nbits) & ((1 << take) - 1)
        nd += 1
    return nd


@njit(cache=True)
def _binarise(q, b, s, dctx, dbit, nd):
    """Append the binary decisions of residual q: (context, bit), or (-n, n-bit value) for direct bits.

    zero flag (context: activity bucket); then the high part (m - 1) >> s in unary with adaptive bins
    per bucket (Exp-Golomb escape after UMAX); then sign and the s low bits as one direct chunk.
    """
    m = abs(q)
    dctx[nd] = b
    dbit[nd] = 1 if m > 0 else 0
    nd += 1
    if m == 0:
        return nd
    v = m - 1
    hi = v >> s
    base = N_BUCKETS + b * U_CTX
    for j in range(min(hi, UMAX)):
        dctx[nd] = base + min(j, U_CTX - 1)
        dbit[nd] = 1
        nd += 1
    if hi < UMAX:
        dctx[nd] = base + min(hi, U_CTX - 1)
        dbit[nd] = 0
        nd += 1
    else:  # escape: e = hi - UMAX + 1 as its bit length (6 bits) and its bits below the leading 1
        e = hi - UMAX + 1
        nb = 0
        while (e >> nb) > 1:
            nb += 1
        nd = _direct(dctx, dbit, nd, nb, 6)
        nd = _direct(dctx, dbit, nd, e, nb)
    return _direct(dctx, dbit, nd, ((1 if q < 0 else 0) << s) | (v & ((1 << s) - 1)), s + 1)


@njit(cache=True, inline="always")
def _get_direct(code, rng, ip, src, v, nbits):
    """Read nbits equiprobable bits in chunks of <= DIRECT_MAX (as ``_direct`` wrote them) below v."""
    while nbits > 0:
        take = min(nbits, DIRECT_MAX)
        code, rng, ip, part = dec_direct(code, rng, ip, src, take)
        v = (v << take) | part
        nbits -= take
    return code, rng, ip, v


@njit(cache=True, inline="always")
def _get_residual(code, rng, ip, src, prob, cnt, b, s):
    code, rng, ip, nz = dec_bit(code, rng, ip, src, prob, cnt, b)
    if nz == 0:
        return code, rng, ip, 0
    base = N_BUCKETS + b * U_CTX
    hi = 0
    while hi < UMAX:
        code, rng, ip, more = dec_bit(code, rng, ip, src, prob, cnt, base + min(hi, U_CTX - 1))
        if more == 0:
            break
        hi += 1
    if hi == UMAX:
        code, rng, ip, nb = dec_direct(code, rng, ip, src, 6)
        if nb > 32:  # corrupt: flag it in ip (only the first error is kept) and go on with bounded values
            ip = ip if ip >= BAD else IP_ESCAPE
            nb = 0
        code, rng, ip, e = _get_direct(code, rng, ip, src, 1, nb)
        hi = UMAX + e - 1
        if hi > QMAX:
            ip = ip if ip >= BAD else IP_RESIDUAL
            hi = QMAX
    code, rng, ip, lo = _get_direct(code, rng, ip, src, 0, s + 1)
    neg = lo >> s
    m = min(((hi << s) | (lo & ((1 << s) - 1))) + 1, QMAX)
    return code, rng, ip, (-m if neg else m)


@njit(cache=True)
def _append(buf, pos, out, nbytes):
    """Append out[1:nbytes] (the range coder's bytes) at bit pos; trailing zero bits are dropped."""
    last = pos
    for j in range(1, nbytes):
        pos = put_bits(buf, pos, out[j], 8)
        if out[j]:
            tz = 0
            while ((out[j] >> tz) & 1) == 0:
                tz += 1
            last = pos - tz
    return last


@njit(cache=True, inline="always")
def _accumulate(S, B, c, z0, z1, z2, t):
    """Add one sample to channel c's least-squares statistics: S = upper triangle of z z^T, B = z t."""
    S[c, 0] += z0 * z0
    S[c, 1] += z0 * z1
    S[c, 2] += z0 * z2
    S[c, 3] += z1 * z1
    S[c, 4] += z1 * z2
    S[c, 5] += z2 * z2
    B[c, 0] += z0 * t
    B[c, 1] += z1 * t
    B[c, 2] += z2 * t


@njit(cache=True, inline="always")
def _push(hist, lq, c, r, q):
    """Shift reconstruction r and residual magnitude |q| into channel c's history; returns |q|."""
    hist[c, 1] = hist[c, 0]
    hist[c, 0] = r
    aq = abs(q)
    lq[c, 1] = lq[c, 0]
    lq[c, 0] = aq
    return aq


@njit(cache=True)
def _encode(x, buf, pos, step, shape, mu, w, hist, lq, efb, prob, cnt, S, B, out, stats_every):
    n_s, n_ch = x.shape
    rec = np.empty((n_s, n_ch))
    low, rng, cache, csize, opos = enc_init()
    dctx = np.empty(DEC_CHUNK + 128, np.int64)
    dbit = np.empty(DEC_CHUNK + 128, np.int64)
    nd = 0
    for i in range(n_s):
        cur_prev = 0
        qn = lq[0, 0]
        fit = (i % stats_every) == 0
        for c in range(n_ch):
            p = _predict(c, mu, w, hist, cur_prev)
            v = x[i, c] - shape * efb[c]
            fq = np.rint((v - p) / step)
            q = int(min(max(fq, -QMAX), QMAX))  # step is an odd integer: r stays an integer
            r = _clamp(p + q * step)
            efb[c] = r - v
            act = 2 * lq[c, 0] + lq[c, 1] + qn
            if act < ACT_TAB:
                b = np.int64(_BUCKET[act])
                s = np.int64(_SPLIT[act])
            else:
                b = N_BUCKETS - 1
                s = _context_slow(act)
            nd = _binarise(q, b, s, dctx, dbit, nd)
            if nd > DEC_CHUNK:  # code the decisions in a tight loop (a per-sample coder call was 3x slower)
                low, rng, cache, csize, opos = enc_decisions(low, rng, cache, csize, opos, out, prob, cnt, dctx, dbit, nd)
                nd = 0
            if fit:  # closed-loop fitting statistics: target x - mu from the reconstructed regressors
                z2 = float(cur_prev - mu[c - 1]) if c > 0 else 0.0
                _accumulate(S, B, c, float(hist[c, 0] - mu[c]), float(hist[c, 1] - mu[c]), z2, x[i, c] - mu[c])
            qn = _push(hist, lq, c, r, q)
            cur_prev = r
            rec[i, c] = r
    low, rng, cache, csize, opos = enc_decisions(low, rng, cache, csize, opos, out, prob, cnt, dctx, dbit, nd)
    nbytes = enc_finish(low, rng, cache, csize, opos, out)
    return rec, _append(buf, pos, out, nbytes)


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, step, mu, w, hist, lq, prob, cnt):
    nbytes = (buf.size * 8 - pos + 7) >> 3
    src = np.zeros(max(nbytes, 1), np.uint8)
    for j in range(nbytes):
        take = min(8, buf.size * 8 - pos)
        v, pos = get_bits(buf, pos, take)
        src[j] = v << (8 - take)
    code, rng, ip = dec_init(src)
    y = np.empty((n_s, n_ch))
    for i in range(n_s):
        cur_prev = 0
        qn = lq[0, 0]
        for c in range(n_ch):
            p = _predict(c, mu, w, hist, cur_prev)
            act = 2 * lq[c, 0] + lq[c, 1] + qn
            if act < ACT_TAB:
                b = np.int64(_BUCKET[act])
                s = np.int64(_SPLIT[act])
            else:
                b = N_BUCKETS - 1
                s = _context_slow(act)
            code, rng, ip, q = _get_residual(code, rng, ip, src, prob, cnt, b, s)
            r = _clamp(p + q * step)
            qn = _push(hist, lq, c, r, q)
            cur_prev = r
            y[i, c] = r
    return y, ip  # ip >= BAD: corrupt residual (IP_ESCAPE / IP_RESIDUAL band)


@njit(cache=True)
def _fit(S, B, w):
    """Ridge least squares per channel (3x3, Cramer), weights to Q8 clamped to the field."""
    n_ch = S.shape[0]
    lim = (1 << (W_BITS - 1)) - 1
    for c in range(n_ch):
        m = np.empty((3, 3))
        idx = 0
        for r in range(3):
            for k in range(r, 3):
                m[r, k] = S[c, idx]
                m[k, r] = S[c, idx]
                idx += 1
        tr = m[0, 0] + m[1, 1] + m[2, 2]
        if tr <= 0.0:
            for k in range(N_W):
                w[c, k] = 0
            continue
        for r in range(3):
            m[r, r] += RIDGE * tr / 3.0 + 1e-9
        det = (m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
               + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))
        b = B[c]
        for k in range(3):
            mk = m.copy()
            for r in range(3):
                mk[r, k] = b[r]
            dk = (mk[0, 0] * (mk[1, 1] * mk[2, 2] - mk[1, 2] * mk[2, 1]) - mk[0, 1] * (mk[1, 0] * mk[2, 2] - mk[1, 2] * mk[2, 0])
                  + mk[0, 2] * (mk[1, 0] * mk[2, 1] - mk[1, 1] * mk[2, 0]))
            v = np.rint(dk / det * (1 << W_SHIFT))
            w[c, k] = int(min(max(v, -lim - 1), lim))


@njit(cache=True)
def _put_side(buf, pos, mu, w):
    for c in range(mu.size):
        m = mu[c]
        u = (m << 1) if m >= 0 else ((-m << 1) - 1)
        nb = 0
        while (u >> nb) > 0:
            nb += 1
        pos = put_bits(buf, pos, nb, 6)
        pos = put_bits(buf, pos, u, nb)
        for k in range(N_W):
            pos = put_bits(buf, pos, w[c, k] & ((1 << W_BITS) - 1), W_BITS)
    return pos


@njit(cache=True)
def _get_side(buf, pos, mu, w):
    for c in range(mu.size):
        nb, pos = get_bits(buf, pos, 6)
        if nb > 32:
            return fail(pos, ERR_MEAN)
        u, pos = get_bits(buf, pos, nb)
        mu[c] = (u >> 1) if (u & 1) == 0 else -((u + 1) >> 1)
        for k in range(N_W):
            v, pos = get_bits(buf, pos, W_BITS)
            w[c, k] = v - (1 << W_BITS) if v >= (1 << (W_BITS - 1)) else v
    return pos


@njit(cache=True)
def _stats_open(x, mu, S, B):
    """Open-loop fitting statistics of one frame (regressors from x itself): the first keyframe has no
    reconstruction history yet, and in archive use (1 s frames) it is the only keyframe."""
    n_s, n_ch = x.shape
    for i in range(2, n_s):
        for c in range(n_ch):
            z2 = x[i, c - 1] - mu[c - 1] if c > 0 else 0.0
            _accumulate(S, B, c, x[i - 1, c] - mu[c], x[i - 2, c] - mu[c], z2, x[i, c] - mu[c])


class _LPCCoder(LossyStreamCodec):
    """Shared coder; subclasses define the quantiser step in internal units (input x ``_scale``)."""

    _shape = 0.0  # error-feedback gain (0: none)
    _scale = 1  # internal fixed-point units per input unit (reconstructions are integers in these)

    def __init__(self, keyframe_interval: int = 100) -> None:
        super().__init__(keyframe_interval)
        self._S: np.ndarray | None = None
        self._xmean: np.ndarray | None = None
        self._out = np.zeros(0, np.uint8)

    def _istep(self) -> int:
        raise NotImplementedError

    def _max_bytes(self, n_s: int, n_ch: int) -> int:
        # worst case per residual: 12-bit zero flag, 20 unary bins of <= 7 bits, escape, split bits
        return 64 + n_ch * 16 + n_s * n_ch * 48

    def reset(self) -> None:
        super().reset()
        self._S = None

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._mu = np.zeros(n_channels, np.int64)
        self._w = np.zeros((n_channels, N_W), np.int64)
        self._hist = np.zeros((n_channels, 2), np.int64)
        self._lq = np.zeros((n_channels, 2), np.int64)
        self._efb = np.zeros(n_channels)
        self._prob, self._cnt = new_model(N_CTX)
        if encoder:
            need = self._max_bytes(n_samples, n_channels)
            if self._out.size < need:
                self._out = np.zeros(need, np.uint8)
            if self._S is None or self._S.shape[0] != n_channels:
                # encoder-only fitting statistics: they survive keyframes (never sent, only their result)
                self._S = np.zeros((n_channels, 6))
                self._B = np.zeros((n_channels, 3))
                self._xmean = None

    def _encode_payload(self, x, buf, pos, key):
        xs = x * self._scale if self._scale != 1 else x
        if key:
            fm = xs.mean(axis=0)
            self._xmean = fm if self._xmean is None else 0.9 * self._xmean + 0.1 * fm
            self._mu[:] = np.clip(np.rint(self._xmean), -(1 << 30), 1 << 30).astype(np.int64)
            if self._S[:, 0].sum() == 0:
                _stats_open(xs, self._mu.astype(np.float64), self._S, self._B)
            if self._S[:, 0].sum() > 0 or self._S[:, 5].sum() > 0:
                _fit(self._S, self._B, self._w)
            self._hist[:] = self._mu[:, None]
            pos = _put_side(buf, pos, self._mu, self._w)
        else:
            self._xmean += 0.01 * (xs.mean(axis=0) - self._xmean)
        self._S *= DECAY
        self._B *= DECAY
        rec, pos = _encode(xs, buf, pos, self._istep(), self._shape, self._mu, self._w, self._hist, self._lq,
                           self._efb, self._prob, self._cnt, self._S, self._B, self._out, STATS_EVERY)
        return (rec / self._scale if self._scale != 1 else rec), pos

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        if key:
            pos = check_pos(buf, _get_side(buf, pos, self._mu, self._w))
            self._hist[:] = self._mu[:, None]
        y, ip = _decode(buf, pos, n_s, n_ch, self._istep(), self._mu, self._w, self._hist, self._lq,
                        self._prob, self._cnt)
        if ip >= BAD:
            raise ValueError("escape code longer than 32 bits" if ip < IP_RESIDUAL else "residual out of range")
        return y / self._scale if self._scale != 1 else y


class NearLosslessLPC(_LPCCoder):
    """Every sample within k of the original (int16; k + 0.5 for float32): step 2k + 1, integer units."""

    codec_id = "nl-nearlossless-lpc"

    def __init__(self, k: int = 4, keyframe_interval: int = 100) -> None:
        self.k = check_number("k", k, 0, 4096, self.codec_id, integer=True)
        super().__init__(keyframe_interval)

    def _params(self) -> dict[str, Any]:
        return {"k": self.k}

    def _istep(self) -> int:
        return 2 * self.k + 1


class DPCM(_LPCCoder):
    """Same coder with a continuous knob: quantiser ``step`` in input units (1/16 resolution).

    Error bound step/2 (+0.5 from rounding to int16); no odd-integer constraint, so the rate can be
    set anywhere (nl-nearlossless-lpc jumps from 2.45:1 at k=1 to 2.78:1 at k=2 on the tetrode).
    Internally the reconstruction is fixed point (1/16 input unit), so it stays integer and exact.
    """

    codec_id = "nl-dpcm"
    _scale = 16

    def __init__(self, step: float = 8.0, keyframe_interval: int = 100) -> None:
        self.step = check_number("step", step, 0.0625, 65536, self.codec_id)
        super().__init__(keyframe_interval)

    def _params(self) -> dict[str, Any]:
        return {"step": self.step}

    def _istep(self) -> int:
        return max(1, int(round(self.step * self._scale)))
