"""``nl-float``: lossless coding of float32/float64 streams (most EEG amplifiers publish float32 in µV).

Why not a float transform alone: acquisition software nearly always computes ``x = q * scale + offset``
from an integer ADC count ``q`` (per channel), so a float stream holds only a few integers' worth of
information. Per channel, the encoder fits ``scale`` and ``offset`` from recent values (:func:`fit_affine`)
and keeps the channel on the *integer path* when ``float(q * scale + offset)`` reproduces at least 95 %
of them bit for bit: the counts ``q`` then go through ``nl-lossless`` (prediction + adaptive Rice, stream
state and keyframes), and the samples the formula misses (rounding ties, NaN) are sent verbatim as
escapes. Channels that fit no such
formula (true floats, NaN-heavy channels) take the *raw path*: XOR with the previous sample, byte planes,
zstd (Gorilla/blosc-style), every frame on its own. Either way the output is bit-exact, NaN payloads and
-0.0 included.

Payload: ``flags u8`` (bit0 parameters follow, bit1 integer part, bit2 raw part, bit3 escapes, bit4 raw
part zstd-compressed, bit5 with bit1: a keyframe naming its parameter set instead of carrying it, bits 6-7
the parameter epoch, +1 at every parameter change, so a frame that follows a lost change is detected; 0x20
alone: an empty frame, then ``dtype u8`` and ``n_channels``); with bit0, ``dtype u8`` (``DTYPE_CODES``) and
``n_channels`` (a frame without parameters takes both from its keyframe); ``n_samples``; with bit0, the
number of integer channels, the channel mask (one bit per channel, LSB first) and per integer channel
``scale, offset`` (float64 LE; a negative scale means float32 arithmetic); with bit5, the parameter set's
signature (``u32`` LE: CRC-32 of the bytes a parameter-carrying frame holds from ``dtype`` to
``n_channels`` and from the number of integer channels to the last offset, :func:`param_signature`);
then the integer part (``nl-lossless`` payload), the raw part and the escapes, each part length-prefixed
unless it ends the payload. Escapes: ``count``, then (lossless) ``count`` LEB128 position deltas in the
integer block and ``count`` zigzag LEB128 distances from the formula's value in float order (a miss is
mostly an ulp or two: one byte), or (lossy inner codec) uint32 positions and verbatim values.

Parameter sets (as H.264 sends its parameter sets): parameters travel only with keyframes of the inner
codec. A keyframe carries them when they changed (a change always takes effect on a keyframe), after
:meth:`NlFloat.reset` or :meth:`NlFloat.request_keyframe` (a receiver that lost its reference asks for
one, and may have lost the parameters too), when the inner codec has no stream state (archive mode:
every payload decodes alone), and at least every ``param_interval``-th keyframe (a late joiner without a
feedback channel waits at most that many keyframes: 1 s at the defaults, 1 ms frames). The other
keyframes name the set by its 32-bit signature (4 bytes instead of 16 a channel). A decoder decodes such a
keyframe only with the set of that signature, else it raises MissingReferenceError (the receiver conceals
and asks for a keyframe); it keeps its set across :meth:`NlFloat.reset` for such keyframes. Why a signature and not the 2-bit epoch: the epoch tells a predicted frame from
a different parameter period only while the decoder cannot have missed four changes, and nothing bounds
how long a decoder was away (a level's decoder idles while the sender is at another level, a receiver
resets its decoders only after 16 lost frames, changes can come every frame with large frames and
``keyframe_interval=1``, a restarted encoder counts from 0 again). A signature depends on the parameters
alone: a decoder holding any other set (an earlier one, another encoder's) does not match, except by a
2^-32 chance once per stale set (a mismatch drops the set). Predicted frames still check the epoch; their
inner codec's frame chain ties them to the keyframe they follow. Payloads that carry parameters in every
keyframe (``param_interval=1``, and all earlier encoders) are unchanged, and decode as before.
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any, ClassVar

import numpy as np
import zstandard
from numba import njit

from neurolink.codecs._zstd import inflate_exact
from neurolink.codecs.base import (
    CODE_DTYPES,
    DTYPE_CODES,
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    Codec,
    as_2d,
    check_decoded_size,
)
from neurolink.codecs.lossless import NlLossless
from neurolink.codecs.lossless.varint import Reader, put_uvarint
from neurolink.errors import CodecError, MissingReferenceError

F_PARAMS, F_INT, F_RAW, F_ESC, F_ZSTD, F_EMPTY = 1, 2, 4, 8, 16, 32
F_PREF = F_EMPTY  # with F_INT (never alone, never with F_PARAMS): a keyframe naming its parameter set
_F_KNOWN = F_PARAMS | F_INT | F_RAW | F_ESC | F_ZSTD | F_PREF
PARAM_INTERVAL = 10  # default: every 10th keyframe carries the parameters (1 s at 1 ms frames, interval 100)
EPOCH_SHIFT = 6  # flags bits 6-7: the parameter epoch (counts parameter changes), checked on every frame
_UINT = {4: np.uint32, 8: np.uint64}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT_CODES = (DTYPE_CODES["float32"], DTYPE_CODES["float64"])
LOSSY_MIN_DISTINCT = 16  # a lossy level leaves channels with fewer distinct values in its window exact
REFIT_ESCAPE_FRACTION = 0.002  # an integer channel escaping more than this is refit (kept if the fit is better)
FIT_ROWS = 256  # recent rows per channel a fit looks at
REFIT_ROWS = 1024  # rows between fits (at least one keyframe interval): fits cost ~ms at 1024 channels
FIT_MIN_ROWS = 64  # the first fit waits for this many rows (two points always fit a line)
# more escapes than this over an interval: the channel goes raw (an escape costs 8 bytes, the integer
# path ~1 byte a sample, the raw path 2-3: escapes pay up to ~20 %)
MAX_ESCAPE_FRACTION = 0.05
_MAX_STEP_DIVISOR = 8  # the smallest gap seen may be this many quantisation steps


def fit_affine(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``w`` (rows, channels): ``scale, offset`` such that the values are
    ``q * scale + offset`` with integer ``q``, and the fraction of values that formula reproduces bit for
    bit (:func:`reconstruct`); 0 where no step fits.

    The step starts as the smallest gap between distinct sorted values, divided by the smallest integer
    that makes the small gaps whole, and is refined over all of them (their float rounding averages out);
    scale and offset then come from least squares over the (count, value) pairs, the offset reduced modulo
    the scale (counts stay near zero). Acquisition software computes in float32 or float64, so the
    float32-rounded scale and offset are tried too and the candidate reproducing most values wins."""
    with np.errstate(all="ignore"):  # garbage windows (huge, subnormal values) just fail to fit
        return _fit_affine(w)


def _fit_affine(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, n_ch = w.shape
    scale = np.zeros(n_ch)
    offset = np.zeros(n_ch)
    frac = np.zeros(n_ch)
    if rows < 2 or n_ch == 0:
        return scale, offset, frac
    v = w.astype(np.float64)
    nonfinite = ~np.isfinite(v)
    if nonfinite.any():  # a NaN (dropout) or inf does not stop a fit: its slot takes a finite value
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmedian(np.where(nonfinite, np.nan, v), axis=0)
        v = np.where(nonfinite, fill, v)
    v = np.sort(v, axis=0)
    d = np.diff(v, axis=0)
    with np.errstate(invalid="ignore"):
        step = np.where(d > 0, d, np.inf).min(axis=0)
    good = np.isfinite(v).all(axis=0) & np.isfinite(step)
    if not good.any():
        return scale, offset, frac
    v, d, step, wg = v[:, good], d[:, good], step[good], w[:, good]
    # each value is off its exact q * scale + offset by up to half its float spacing: a gap by up to ulp
    ulp = np.spacing(np.abs(v).max(axis=0).astype(w.dtype)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        best = np.full(step.shape, np.nan)
        for k in range(_MAX_STEP_DIVISOR, 0, -1):  # the largest step that makes the small gaps whole wins
            sk = step / k
            r = d / sk
            # gaps of few steps (the step's own error, up to 2 ulp, grows n-fold over n steps): whole
            small = r <= np.maximum(1.0, 0.05 * sk / ulp)
            # (a few outliers, e.g. a dropout sample, may break the grid: the exact check decides later)
            whole = (~small | (np.abs(r - np.round(r)) <= 2 * ulp / sk * (1 + r) + 1e-3)).mean(axis=0) >= 0.95
            best = np.where(whole, sk, best)
        use = np.isfinite(best) & (ulp / np.where(np.isfinite(best), best, 1.0) < 0.1)
        s0 = np.where(use, best, 1.0)
        # widen the fit step by step: counts are unambiguous within 0.2 / (relative error of the step) steps
        # of the first value; a fit over a span of n steps is good to ~1 ulp over n steps, so doubling the
        # span each pass keeps the count error at the new edge near 2 ulp / step (< 0.2 step, checked)
        # values near zero (finer spacing) pin the offset down: weights 1/spacing^2, at most 2^16 apart
        # (wider spreads make the normal equations cancel catastrophically)
        sp = np.maximum(np.spacing(np.abs(v).astype(w.dtype)).astype(np.float64), ulp / 256)
        wt0 = (sp.min(axis=0) / sp) ** 2
        mid = v[v.shape[0] // 2]  # anchored at the median: the densest part of the distribution
        a, b, rel = s0.copy(), mid.copy(), 2 * ulp / s0
        span = np.ones_like(a)
        for _ in range(40):
            q = np.round((v - mid) / a)
            inside = np.abs(q) <= np.maximum(2 * span, 0.2 / np.maximum(rel, 1e-300))
            wt = np.where(inside, wt0, 0.0)
            cnt, sq, sv = wt.sum(axis=0), (wt * q).sum(axis=0), (wt * v).sum(axis=0)
            sqq, sqv = (wt * q * q).sum(axis=0), (wt * q * v).sum(axis=0)
            den = cnt * sqq - sq * sq
            a = np.where(den > 0, (cnt * sqv - sq * sv) / den, a)
            b = np.where(cnt > 0, (sv - a * sq) / cnt, b)
            # (no values farther out yet: widen anyway, the estimate holds over twice its span)
            span = np.maximum(np.where(inside, np.abs(q), 0.0).max(axis=0), 2 * span)
            rel = np.minimum(rel, 2 * ulp / (a * span))
            if inside.all():
                break
        q = np.round((v - b) / a)
        use &= (np.abs((v - b) / a - q) <= 2 * ulp / a + 1e-3).mean(axis=0) >= 0.95  # the values on the grid
        b = b - a * np.round(b / a)
    use &= np.isfinite(a) & np.isfinite(b) & (a > 0)
    a, b = np.where(use, a, 1.0), np.where(use, b, 0.0)
    best_f = np.full(a.shape, -1.0)
    best_a, best_b = a.copy(), b.copy()
    a32, b32 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    zero = np.zeros_like(b)
    ai = _scale_within(v, a, b)
    a0 = _scale_given_offset(wg, a, zero)  # no offset: the common case, solved exactly
    b1 = _offset_within(wg, ai, b)  # else alternate: offset given scale, scale given offset, offset again
    a1 = _scale_given_offset(wg, ai, b1)
    cands = [(a, b), (a0, zero), (a1, _offset_within(wg, a1, b1)), (ai, b1), (a, _offset_within(wg, a, b)),
             (a, zero), (a32, b32), (a32, _offset_within(wg, a32, b32)), (a32, zero)]
    for digits in (3, 4, 5, 6, 7, 10, 13):  # scales written as short decimals (0.195, 0.1, 1e-6) in the source
        ad = np.array([float(f"{x:.{digits}g}") for x in a])
        cands += [(ad, zero), (ad, np.array([float(f"{x:.{digits}g}") for x in b]))]
    if w.dtype == np.float32:  # computed in float32 arithmetic: a negative scale says so (see reconstruct)
        # float32 arithmetic is not shift-invariant: the offset reduced by a step is another formula
        for b0 in (b32, (b + a).astype(np.float32).astype(np.float64), (b - a).astype(np.float32).astype(np.float64)):
            cands += [(-a32, _offset_within(wg, -a32, b0)), (-a32, b0)]
        cands.append((-a32, zero))
    if w.dtype == np.float32:
        # a narrow band of values far from zero pins the scale down to a few float32 ulps only: try the
        # neighbours, each with the offset all values agree on
        up, dn = a.astype(np.float32), a.astype(np.float32)
        for _k in range(3):
            up, dn = np.nextafter(up, np.float32(np.inf)), np.nextafter(dn, np.float32(0))
            for n32 in (up.astype(np.float64), dn.astype(np.float64)):
                cands += [(-n32, _offset_within(wg, -n32, b32)), (n32, _offset_within(wg, n32, b))]
    for ca, cb in cands:  # in order of likelihood; a channel reproduced exactly is not tried further
        todo = np.flatnonzero(use & (best_f < 1.0))
        if not todo.size:
            break
        f = exact_fraction(wg[:, todo], ca[todo], cb[todo])
        better = f > best_f[todo]
        sel = todo[better]
        best_f[sel], best_a[sel], best_b[sel] = f[better], ca[sel], cb[sel]
    scale[good] = np.where(use, best_a, 0.0)
    offset[good] = np.where(use, best_b, 0.0)
    frac[good] = np.where(use, best_f, 0.0)
    return scale, offset, frac


def _scale_within(v: np.ndarray, scale: np.ndarray, offset: np.ndarray, k: int = 8) -> np.ndarray:
    """The scale every pair of extreme values agrees on: for values ``x_i, x_j`` (sorted ``v``, counts
    ``q_i > q_j``) within half their float spacing of the line, the scale lies within
    ``(x_i - x_j -+ (h_i + h_j)) / (q_i - q_j)``; the middle of the intersection over the ``k`` lowest and
    ``k`` highest values (the widest spans constrain most). Least squares is only as good as the values'
    average rounding; this is as good as the spread allows. ``scale`` where the bounds do not meet."""
    n = v.shape[0]
    if n < 2:
        return scale
    k = min(k, n // 2)
    with np.errstate(all="ignore"):
        q = np.round((v - offset) / scale)
        h = np.spacing(np.abs(v).astype(np.float32)).astype(np.float64) / 2  # float32 data: the coarser case
        lo_q, hi_q, lo_v, hi_v, lo_h, hi_h = q[:k], q[-k:], v[:k], v[-k:], h[:k], h[-k:]
        dq = hi_q[:, None, :] - lo_q[None, :, :]
        dv = hi_v[:, None, :] - lo_v[None, :, :]
        dh = hi_h[:, None, :] + lo_h[None, :, :]
        ok = dq > 0
        lo = np.where(ok, (dv - dh) / np.where(ok, dq, 1.0), -np.inf).max(axis=(0, 1))
        hi = np.where(ok, (dv + dh) / np.where(ok, dq, 1.0), np.inf).min(axis=(0, 1))
        mid = (lo + hi) / 2
    return np.where(np.isfinite(mid) & (lo <= hi), mid, scale)


def _scale_given_offset(w: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The scale every value agrees on for this offset: a value ``x`` with count ``q != 0`` that rounds
    from ``q * scale + offset`` bounds the scale to ``(x -+ h - offset) / q`` (``h``: half its float
    spacing); the middle of the intersection over all values (``scale`` where the bounds do not meet).
    The truth always lies inside, so with the right offset (often 0) this finds a reproducing scale where
    least squares is off by an ulp's worth of rounding."""
    with np.errstate(all="ignore"):
        q = counts(w, scale, offset)
        x = w.astype(np.float64)
        h = np.spacing(np.abs(w)).astype(np.float64) / 2
        ok = (q != 0) & np.isfinite(x)
        qs = np.where(ok, q, 1.0)
        a1, a2 = (x - h - offset) / qs, (x + h - offset) / qs
        lo = np.where(ok, np.minimum(a1, a2), -np.inf).max(axis=0)
        hi = np.where(ok, np.maximum(a1, a2), np.inf).min(axis=0)
        mid = (lo + hi) / 2
    return np.where(np.isfinite(mid) & (lo <= hi) & (mid > 0), mid, np.abs(scale))


def _offset_within(w: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The offset every value agrees on, given the scale: each value ``x`` with product ``p`` (its count
    times the scale, in the formula's arithmetic) allows offsets within half its float spacing of
    ``x - p``; the middle of the intersection of those intervals (``offset`` where they do not meet).
    A least-squares offset is only as good as the values' average rounding; this one is as good as the
    finest-spaced value's."""
    with np.errstate(all="ignore"):
        q = counts(w, scale, offset)
        f32 = scale < 0
        p = q * np.abs(scale)
        if f32.any():
            p[:, f32] = (q[:, f32].astype(np.float32) * (-scale[f32]).astype(np.float32)).astype(np.float64)
        x = w.astype(np.float64)
        half = np.spacing(np.abs(w)).astype(np.float64) / 2
        lo, hi = (x - p - half).max(axis=0), (x - p + half).min(axis=0)
        mid = np.where(np.isfinite(lo) & np.isfinite(hi) & (lo <= hi), (lo + hi) / 2, offset)
        if f32.any():
            mid[f32] = mid[f32].astype(np.float32).astype(np.float64)
    return mid


def counts(w: np.ndarray, scale: np.ndarray, offset: np.ndarray, lo: float = -(2.0**31 - 1),
           hi: float = 2.0**31 - 1) -> np.ndarray:
    """The integer counts ``q`` (float64, within ``[lo, hi]``, 0 for NaN) the encoder sends for ``w`` under
    ``scale, offset``; values the formula cannot reach come back as escapes."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.round((w - offset) / np.abs(scale))
        np.nan_to_num(q, copy=False, nan=0.0, posinf=hi, neginf=lo)
        return np.clip(q, lo, hi, out=q)


def exact_fraction(w: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Per channel, the fraction of ``w`` that :func:`reconstruct` of its counts reproduces bit for bit."""
    q = counts(w, scale, offset)
    u = _UINT[w.dtype.itemsize]
    return (reconstruct(q, scale, offset, w.dtype).view(u) == np.ascontiguousarray(w).view(u)).mean(axis=0)


def reconstruct(q: np.ndarray, scale: np.ndarray, offset: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The decoder's formula per channel: float64 ``q * scale + offset`` rounded to the stream's dtype, or,
    where ``scale`` is negative, the same in float32 arithmetic with ``-scale`` (rounded after the product
    and after the sum, as float32 code does)."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = (q * np.abs(scale) + offset).astype(dtype)  # q: int16/int32/float64, the product is float64
        f32 = scale < 0
        if f32.any():
            y[:, f32] = (q[:, f32].astype(np.float32) * (-scale[f32]).astype(np.float32)
                         + offset[f32].astype(np.float32)).astype(dtype)
    return y


@njit(cache=True, nogil=True)
def _quantise(x, ich, scale, offset, lo, hi, is32, q, bad) -> int:  # pragma: no cover - numba
    """Counts ``q`` of the integer channels ``ich`` of ``x`` and where :func:`reconstruct` misses the
    value bit for bit (``bad``; NaN always, -0.0 vs 0.0 too); returns the number of misses."""
    n_bad = 0
    for t in range(x.shape[0]):
        for j in range(ich.shape[0]):
            v = np.float64(x[t, ich[j]])
            s = scale[j]
            o = offset[j]
            c = 0.0
            if np.isfinite(v):
                c = np.round((v - o) / abs(s))
                c = min(max(c, lo), hi)
            q[t, j] = c
            if s < 0:
                r = np.float64(np.float32(np.float32(c) * np.float32(-s)) + np.float32(o))
            elif is32:
                r = np.float64(np.float32(c * s + o))
            else:
                r = c * s + o
            miss = not (r == v and (r != 0.0 or math.copysign(1.0, r) == math.copysign(1.0, v)))
            bad[t, j] = miss
            n_bad += miss
    return n_bad


@njit(cache=True, nogil=True)
def _reconstruct_into(q, ich, scale, offset, is32, y) -> None:  # pragma: no cover - numba
    """:func:`reconstruct` of counts ``q`` written into the columns ``ich`` of ``y`` (the decoder's hot path)."""
    for t in range(q.shape[0]):
        for j in range(ich.shape[0]):
            c = np.float64(q[t, j])
            s = scale[j]
            if s < 0:
                y[t, ich[j]] = np.float32(np.float32(c) * np.float32(-s)) + np.float32(offset[j])
            elif is32:
                y[t, ich[j]] = np.float32(c * s + offset[j])
            else:
                y[t, ich[j]] = c * s + offset[j]


@njit(cache=True, nogil=True)
def _put_uv64(vals, out, pos) -> int:  # pragma: no cover - numba
    """LEB128 of a uint64 array into ``out`` (room for 10 bytes a value) from ``pos``; returns the new pos."""
    for i in range(vals.size):
        u = vals[i]
        while u >= 0x80:
            out[pos] = np.uint8((u & np.uint64(0x7F)) | np.uint64(0x80))
            pos += 1
            u >>= np.uint64(7)
        out[pos] = np.uint8(u)
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _get_uv64(buf, pos, vals) -> int:  # pragma: no cover - numba
    """Inverse of :func:`_put_uv64`; the new pos, or -1 if truncated or beyond 64 bits (never raises)."""
    n = buf.shape[0]
    for i in range(vals.size):
        u = np.uint64(0)
        shift = 0
        while True:
            if pos >= n or shift > 63:
                return -1
            b = np.uint64(buf[pos])
            pos += 1
            if shift == 63 and b > 1:
                return -1
            u |= (b & np.uint64(0x7F)) << np.uint64(shift)
            if b < 0x80:
                break
            shift += 7
        vals[i] = u
    return pos


def _ordered(bits: np.ndarray) -> np.ndarray:
    """Float bit patterns -> unsigned integers in the floats' order (a bijection on all patterns, NaNs
    included), so nearby floats have nearby integers."""
    w = bits.dtype.itemsize * 8
    sign = bits >> np.array(w - 1, bits.dtype)
    return bits ^ np.where(sign.astype(bool), np.array(-1, bits.dtype.str.replace("u", "i")).view(bits.dtype),
                           np.array(1, bits.dtype) << np.array(w - 1, bits.dtype))


def _unordered(keys: np.ndarray) -> np.ndarray:
    w = keys.dtype.itemsize * 8
    top = (keys >> np.array(w - 1, keys.dtype)).astype(bool)  # set: it was a positive float
    return keys ^ np.where(top, np.array(1, keys.dtype) << np.array(w - 1, keys.dtype),
                           np.array(-1, keys.dtype.str.replace("u", "i")).view(keys.dtype))


def _zigzag(d: np.ndarray) -> np.ndarray:
    """Wrapped differences (unsigned, two's complement) -> zigzag uint64 (small either way -> small)."""
    w = d.dtype.itemsize * 8
    sd = d.view(d.dtype.str.replace("u", "i")).astype(np.int64)
    if w == 32:
        return ((sd << 1) ^ (sd >> 63)).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    return ((sd << 1) ^ (sd >> 63)).view(np.uint64)


def _unzigzag(z: np.ndarray, udt: type) -> np.ndarray:
    s = (z >> np.uint64(1)).view(np.int64) ^ -(z & np.uint64(1)).view(np.int64)
    return s.astype(udt) if udt is np.uint32 else s.view(np.uint64)


def _xor_planes(x: np.ndarray) -> bytes:
    """Channel-major, each sample XOR the previous one, then byte planes (most alike bytes adjacent)."""
    u = np.ascontiguousarray(x.T).view(_UINT[x.dtype.itemsize])
    d = u.copy()
    d[:, 1:] ^= u[:, :-1]
    return np.ascontiguousarray(d.reshape(-1).view(np.uint8).reshape(-1, x.dtype.itemsize).T).tobytes()


def _unxor_planes(b: bytes, n_s: int, n_ch: int, dtype: np.dtype) -> np.ndarray:
    size = dtype.itemsize
    planes = np.frombuffer(b, np.uint8).reshape(size, n_s * n_ch)
    d = np.ascontiguousarray(planes.T).view(_UINT[size]).reshape(n_ch, n_s)
    u = np.bitwise_xor.accumulate(d, axis=1) if n_s > 1 else d
    return np.ascontiguousarray(u.T).view(dtype)


def param_signature(head: bytes | memoryview, params: bytes | memoryview) -> int:
    """The 32-bit signature a keyframe without parameters names its parameter set by: CRC-32 of the bytes
    a parameter-carrying frame holds for it (``head``: ``dtype`` and ``n_channels``; ``params``: the number
    of integer channels, the mask, the scales and offsets)."""
    return zlib.crc32(params, zlib.crc32(head))


class NlFloat(Codec):
    """Lossless float32/float64 codec: integer path through ``nl-lossless`` where the data allow it,
    XOR + byte planes + zstd elsewhere (see the module docstring)."""

    codec_id: ClassVar[str] = "nl-float"
    streaming: ClassVar[bool] = True
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")

    def __init__(self, keyframe_interval: int = 100, level: int = 3, inner: dict[str, Any] | None = None,
                 param_interval: int = PARAM_INTERVAL) -> None:
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 22:
            raise CodecError(f"nl-float: 'level' must be an int in [1, 22], got {level!r}")
        if not isinstance(param_interval, int) or isinstance(param_interval, bool) or not 1 <= param_interval <= 10000:
            raise CodecError(f"nl-float: 'param_interval' must be an int in [1, 10000] (keyframes), got {param_interval!r}")
        self.keyframe_interval = keyframe_interval
        self.level = level
        #: every this many keyframes carries the parameters (1: all of them, as before parameter sets)
        self.param_interval = param_interval
        NlLossless(keyframe_interval=keyframe_interval)  # validates keyframe_interval, same message
        self.inner: dict[str, Any] | None = None
        self._lossy = False
        if inner is not None:  # the counts' codec, e.g. a lossy ladder level (its error bound in ADC counts)
            from neurolink.codecs.registry import get_codec

            if not isinstance(inner, dict) or inner.get("id") == self.codec_id:
                raise CodecError(f"nl-float: 'inner' must be the config of an int16 codec, got {inner!r}")
            c = get_codec(inner)
            if "int16" not in c.dtypes:
                raise CodecError(f"nl-float: inner codec {inner.get('id')!r} does not code int16 counts")
            self.inner = c.get_config()
            self._lossy = not c.lossless
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._dctx = zstandard.ZstdDecompressor()
        self.reset()

    @property
    def lossless(self) -> bool:  # type: ignore[override]
        """Lossless unless the counts go through a lossy inner codec (raw-path channels stay exact)."""
        return not self._lossy

    def get_config(self) -> dict[str, Any]:
        cfg = {"id": self.codec_id, "keyframe_interval": self.keyframe_interval, "level": self.level,
               "param_interval": self.param_interval}
        if self.inner is not None:
            cfg["inner"] = dict(self.inner)
        return cfg

    def _make_inner(self) -> Codec:
        if self.inner is None:
            return NlLossless(keyframe_interval=self.keyframe_interval)
        from neurolink.codecs.registry import get_codec

        return get_codec(self.inner)

    def reset(self) -> None:
        """Restart the coders (the next frame is a keyframe); what was learned about the data (the fit, the
        recent rows) is kept: the sender resets a level's codec at every switch to it, and a refit from
        scratch would send the first 64 rows after each switch raw.

        The decoder keeps its parameter set for the keyframes that name it (the receiver resets its
        decoders after a long gap): only a matching signature uses it, however old it is; frames that
        depend on earlier ones wait for a keyframe (the set's epoch becomes -1, which no frame has)."""
        held = getattr(self, "_dparams", None)
        if getattr(self, "_shape", None) is None:
            self._reset_all()
        else:
            self._inner = self._make_inner()
            self._inner_i32 = "int32" in self._inner.dtypes
            self._params_due = True  # a fresh decoder may read the next keyframe: it carries the parameters
            self._since_key = 0
            self._dinner = self._make_inner()
        #: decoder: (n_channels, dtype, mask, scales, offsets, epoch, signature) of the parameters in use
        self._dparams: tuple[int, np.dtype, np.ndarray, np.ndarray, np.ndarray, int, int] | None = (
            None if held is None else held[:5] + (-1, held[6]))

    def _reset_all(self) -> None:
        # encoder
        self._inner = self._make_inner()
        self._inner_i32 = "int32" in self._inner.dtypes  # else int32 counts go in as float32 (exact < 2^24)
        self._shape: tuple[int, np.dtype] | None = None  # (n_channels, dtype) the state is for
        self._mask = np.zeros(0, bool)  # integer-path channels
        self._scale = np.zeros(0)  # per channel (negative: float32 arithmetic, see reconstruct)
        self._offset = np.zeros(0)
        self._ring: np.ndarray | None = None  # recent rows, for fits
        self._ring_n = 0  # rows written into the ring in total
        self._rows_since_fit = 0
        self._esc_count: np.ndarray = np.zeros(0, np.int64)
        self._rows_since_check = 0
        self._pending: tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None = None  # params for the next keyframe
        self._q16 = True  # integer path counts as int16 (else int32)
        self._epoch = 0  # parameter changes so far, mod 4 (in every frame's flags)
        self._phead = self._pbytes = b""  # the parameters as sent (dtype and channels; the set itself)
        self._psig = 0  # their signature (param_signature), named by keyframes that leave them out
        self._params_due = True  # the next keyframe carries the parameters (changed, reset, requested)
        self._keys_since_params = 0  # inner keyframes since the last one that carried the parameters
        self._since_key = 0  # integer-part frames since the inner codec's last keyframe (it included)
        self._fits = 0  # fits so far: the first after FIT_MIN_ROWS rows, the second once the window is full
        self._code = 0
        self._ich = self._raw = np.zeros(0, np.int64)
        self._s_i = self._o_i = np.zeros(0)
        self._u: type = np.uint32
        # decoder
        self._dinner = self._make_inner()
        self._dparams = None

    @staticmethod
    def is_keyframe(blob: bytes | memoryview) -> bool:
        """Decodes on its own: carries its parameters (an inner keyframe, or no integer part)."""
        return len(blob) > 0 and bool(blob[0] & F_PARAMS)

    def request_keyframe(self) -> None:
        """Next frame: a keyframe with the parameters (the receiver lost its reference, and may have lost
        the parameters with it); what was learned about the data is kept."""
        self._inner.request_keyframe()
        self._params_due = True

    # -- encoder ---------------------------------------------------------------------------------
    def _remember(self, x: np.ndarray, due: int) -> None:
        """Count the rows; keep the ones the next fit (``due`` rows after the last) will look at."""
        ring = self._ring
        assert ring is not None
        if self._rows_since_fit + x.shape[0] > due - FIT_ROWS:
            n = min(x.shape[0], FIT_ROWS)
            idx = (self._ring_n + np.arange(x.shape[0] - n, x.shape[0])) % FIT_ROWS
            ring[idx] = x[-n:]
        self._ring_n += x.shape[0]
        self._rows_since_fit += x.shape[0]
        self._rows_since_check += x.shape[0]

    def _refit(self) -> None:
        """Propose parameters for the raw channels (fit over the recent rows) and drop integer channels
        that escaped too often; applied at the next keyframe."""
        assert self._ring is not None
        rows = min(self._ring_n, FIT_ROWS)
        mask, scale, offset = self._mask.copy(), self._scale.copy(), self._offset.copy()
        seen = max(self._rows_since_check, 1)
        mask[mask & (self._esc_count > MAX_ESCAPE_FRACTION * seen)] = False
        # integer channels that escape now and then get a new fit too; it replaces theirs only if better
        cand = np.flatnonzero(~mask | (self._esc_count > REFIT_ESCAPE_FRACTION * seen))
        self._esc_count[:] = 0
        self._rows_since_check = 0
        if cand.size and rows >= 2:
            w = self._ring[:rows][:, cand]
            s, o, frac = fit_affine(w)
            held = mask[cand]
            cur = np.where(held, exact_fraction(w, np.where(held, scale[cand], 1.0), offset[cand]), -1.0)
            ok = ((frac >= 1 - MAX_ESCAPE_FRACTION) & (frac > cur + REFIT_ESCAPE_FRACTION)
                  & (np.abs(counts(w, np.where(s != 0, s, 1.0), o)) < 2**30).all(axis=0))
            ch = cand[ok]
            mask[ch], scale[ch], offset[ch] = True, s[ok], o[ok]
        self._rows_since_fit = 0
        q16 = self._q16
        if mask.any():  # int16 counts (the inner codec's best path) when the window's counts fit
            ich = np.flatnonzero(mask)
            w = self._ring[:rows][:, ich]
            q = counts(w, scale[ich], offset[ich])
            fits16 = (np.abs(np.where(np.isfinite(w), q, 0.0)) < 2**15 - 1).all(axis=0)  # (inf/NaN: escapes)
            if self._lossy:
                # lossy levels code int16 counts only (their codecs' range), and only fine grids: a channel
                # with few distinct values (trigger, status word) would lose whole steps, so it stays exact
                v = np.sort(w, axis=0)
                distinct = 1 + (np.diff(v, axis=0) > 0).sum(axis=0)
                keep = fits16 & (distinct >= LOSSY_MIN_DISTINCT)
                mask[ich[~keep]] = False
                q16 = True
            else:
                q16 = bool(fits16.all())
        if (not np.array_equal(mask, self._mask) or not np.array_equal(scale[mask], self._scale[mask])
                or q16 != self._q16):
            self._pending = (mask, scale, offset, q16)
            self._inner.request_keyframe()

    def encode(self, x: np.ndarray) -> bytes:
        if not (type(x) is np.ndarray and x.ndim == 2 and x.dtype in _FLOATS and x.flags.c_contiguous
                and x.shape[1] <= MAX_CHANNELS and x.nbytes <= MAX_DECODED_BYTES):
            x = as_2d(x, self.codec_id, self.dtypes)
            if not x.dtype.isnative:
                x = x.astype(x.dtype.newbyteorder("="))
        n_s, n_ch = x.shape
        dt = x.dtype
        if self._shape != (n_ch, dt):
            self._reset_all()
            self._shape = (n_ch, dt)
            self._code = DTYPE_CODES[dt.name]
            self._ring = np.zeros((FIT_ROWS, n_ch), dt)
            self._esc_count = np.zeros(n_ch, np.int64)
            self._apply(np.zeros(n_ch, bool), np.zeros(n_ch), np.zeros(n_ch), True)
        if not n_s:  # an empty frame: no state, no parameters (decodes without a reference)
            out = bytearray((F_EMPTY, self._code))
            put_uvarint(out, n_ch)
            return bytes(out)
        # fits: once a few rows are in, again when the window is full, then every REFIT_ROWS (or interval)
        if self._fits < 2:
            due = FIT_MIN_ROWS if self._fits == 0 else FIT_ROWS - FIT_MIN_ROWS
        else:
            due = max(REFIT_ROWS, n_s * self.keyframe_interval)
        self._remember(x, due)
        if self._rows_since_fit >= due:
            self._fits += 1
            self._refit()
        flags = 0
        n_bad = 0
        params = bytearray()
        int_part = raw_part = esc_part = b""
        pend = self._pending
        if pend is not None:
            self._apply(*pend)  # takes effect on this frame, which is a keyframe (forced below)
            self._pending = None
            self._inner.request_keyframe()
            self._epoch = (self._epoch + 1) & 3
        ich = self._ich
        if ich.size:
            qi = np.empty((n_s, ich.size), np.int16 if self._q16 else np.int32)
            bad = np.empty((n_s, ich.size), np.bool_)
            lim = 2.0**15 if self._q16 else 2.0**31
            n_bad = _quantise(x, ich, self._s_i, self._o_i, -lim, lim - 1, dt.itemsize == 4, qi, bad)
            inner = self._inner
            if self._lossy:  # the counts are approximated anyway: escapes only for what no count can carry
                xi = x[:, ich]
                bad = ~np.isfinite(xi) | (qi == -lim) | (qi == lim - 1)
                n_bad = int(bad.sum())
            resend = self._keys_since_params + 1 >= self.param_interval or not inner.streaming
            if (resend and self.param_interval > 1 and inner.streaming and not self._params_due
                    and self._since_key >= getattr(inner, "keyframe_interval", 1 << 62)):
                # the inner codec's scheduled keyframe, which resends the parameters: make it one that decodes
                # alone (nl-lossless sends its weights in one keyframe of ten, else names them), so a late
                # joiner needs one keyframe, not a parameter keyframe and then a weight keyframe
                inner.request_keyframe()
            int_part = inner.encode(qi if self._q16 or self._inner_i32 else qi.astype(np.float32))
            is_key = getattr(inner, "is_keyframe", None)
            key = bool(is_key(int_part)) if is_key is not None else not inner.streaming
            if pend is not None and not key:
                raise CodecError("nl-float: internal error, parameter change without an inner keyframe")
            if key:
                self._since_key = 1
                if resend or self._params_due:
                    flags |= F_PARAMS
                    params += self._pbytes
                    self._params_due = False
                    self._keys_since_params = 0
                else:  # the decoder has them, or learns that it has not: their signature
                    flags |= F_PREF
                    params += self._psig.to_bytes(4, "little")
                    self._keys_since_params += 1
            else:
                self._since_key += 1
            flags |= F_INT
        else:
            flags |= F_PARAMS  # no integer channels: every frame stands alone
            params += self._pbytes
        if self._raw.size:
            raw_part = _xor_planes(x[:, self._raw])
            z = self._cctx.compress(raw_part) if len(raw_part) > 64 else raw_part
            if len(z) < len(raw_part):
                flags |= F_ZSTD
                raw_part = z
            flags |= F_RAW
        if n_bad:
            flags |= F_ESC
            flat = np.flatnonzero(bad)
            self._esc_count[ich] += bad.sum(axis=0)
            esc = bytearray()
            put_uvarint(esc, flat.size)
            xv = np.ascontiguousarray(x[:, ich]).reshape(-1)[flat]
            if self._lossy:  # the decoder's counts differ from these: the values go verbatim
                esc += flat.astype("<u4").tobytes()
                esc += xv.astype(dt.newbyteorder("<")).tobytes()
            else:  # a miss is mostly an ulp or two off the formula: its distance in float order, a varint
                cols = flat % ich.size
                r = reconstruct(qi.reshape(-1)[flat][None], self._s_i[cols], self._o_i[cols], dt)[0]
                u = self._u
                dist = _zigzag(_ordered(xv.view(u)) - _ordered(r.view(u)))
                vals = np.concatenate([np.diff(flat, prepend=0).astype(np.uint64), dist])
                buf = np.empty(10 * vals.size, np.uint8)
                esc += buf[:_put_uv64(vals, buf, 0)].tobytes()
            esc_part = bytes(esc)
        # predicted frames leave out what the keyframe said (dtype, channels); a part that ends the payload
        # carries no length (narrow streams: a few bytes a frame is a large share)
        out = bytearray((flags | self._epoch << EPOCH_SHIFT,))
        if flags & F_PARAMS:
            out += self._phead
        put_uvarint(out, n_s)
        out += params
        if int_part:
            if flags & (F_RAW | F_ESC):
                put_uvarint(out, len(int_part))
            out += int_part
        if raw_part:
            if flags & F_ESC:
                put_uvarint(out, len(raw_part))
            out += raw_part
        out += esc_part
        return bytes(out)

    def _apply(self, mask: np.ndarray, scale: np.ndarray, offset: np.ndarray, q16: bool) -> None:
        """Make these the encoder's parameters (and cache what every frame uses)."""
        self._mask, self._scale, self._offset, self._q16 = mask, scale, offset, q16
        self._ich = np.flatnonzero(mask)
        self._raw = np.flatnonzero(~mask)
        self._s_i, self._o_i = scale[self._ich], offset[self._ich]
        assert self._shape is not None
        self._u = _UINT[self._shape[1].itemsize]
        # the parameters as a keyframe carries them, and the signature the others name them by
        head = bytearray((self._code,))
        put_uvarint(head, self._shape[0])
        ich = self._ich
        out = bytearray()
        put_uvarint(out, ich.size)
        if ich.size:
            out += np.packbits(mask, bitorder="little").tobytes()
            out += np.stack([self._s_i, self._o_i], axis=1).astype("<f8").tobytes()
        self._phead, self._pbytes = bytes(head), bytes(out)
        self._psig = param_signature(self._phead, self._pbytes)
        self._params_due = True

    # -- decoder ---------------------------------------------------------------------------------
    def _layout_error(self, flags: int, msg: str) -> CodecError:
        """A frame whose parts do not match its channel layout: corrupt if it carries the layout itself;
        without parameters, its keyframe (a parameter change) was lost: wait for the next one."""
        if flags & F_PARAMS:
            return CodecError(msg)
        self._dparams = None
        return MissingReferenceError(f"{msg}: its keyframe was lost, waiting for the next one")

    def decode(self, blob: bytes) -> np.ndarray:
        cid = self.codec_id
        rd = Reader(blob, cid)
        flags = rd.byte("flags")
        epoch = flags >> EPOCH_SHIFT
        flags &= (1 << EPOCH_SHIFT) - 1
        # F_PREF (the F_EMPTY bit) goes with an integer part and without parameters, else it is alone
        if flags & ~_F_KNOWN or (flags & F_PREF and flags != F_EMPTY and flags & (F_PARAMS | F_INT) != F_INT):
            raise CodecError(f"{cid}: unknown flags 0x{flags:02x} at offset 0")
        if flags & F_PARAMS or flags == F_EMPTY:
            head = rd.pos
            code = rd.byte("dtype")
            if code not in _FLOAT_CODES:
                raise CodecError(f"{cid}: dtype code {code} at offset 1 is not float32/float64")
            dt = CODE_DTYPES[code]
            n_ch = rd.uvarint("n_channels", MAX_CHANNELS)
            if flags == F_EMPTY:
                if rd.pos != len(blob):
                    raise CodecError(f"{cid}: {len(blob) - rd.pos} unexpected trailing bytes at offset {rd.pos}")
                return np.empty((0, n_ch), dt)
            head_bytes = blob[head:rd.pos]
        elif self._dparams is None:
            raise MissingReferenceError(f"{cid}: frame without parameters before a keyframe (waiting for one)")
        elif self._dparams[5] != epoch and not flags & F_PREF:  # the parameters changed in a keyframe this decoder did not see
            if self._dparams[5] < 0:  # reset: the set stays for keyframes naming it
                raise MissingReferenceError(f"{cid}: predicted frame after a reset (waiting for a keyframe)")
            self._dparams = None
            raise MissingReferenceError(f"{cid}: frame of parameter epoch {epoch}, the decoder holds "
                                        "another: a keyframe was lost, waiting for the next one")
        else:
            n_ch, dt = self._dparams[0], self._dparams[1]
        n_s = rd.uvarint("n_samples", MAX_DECODED_BYTES // max(1, n_ch * dt.itemsize))
        check_decoded_size(cid, n_s, n_ch, dt.itemsize, f"frame at offset {rd.pos}")  # before any allocation
        if not n_s:
            raise CodecError(f"{cid}: zero samples in a non-empty frame (flags 0x{flags:02x})")
        if flags & F_PARAMS:
            start = rd.pos
            n_int = rd.uvarint("n_integer_channels", n_ch)
            if n_int:
                mask = np.unpackbits(np.frombuffer(rd.take((n_ch + 7) // 8, "channel mask"), np.uint8),
                                     count=n_ch, bitorder="little").astype(bool)
                if int(mask.sum()) != n_int:
                    raise CodecError(f"{cid}: channel mask has {int(mask.sum())} channels set, header says {n_int}")
                p = np.frombuffer(rd.take(16 * n_int, "scale/offset"), "<f8").reshape(n_int, 2)
                if not (np.isfinite(p).all() and (p[:, 0] != 0).all()):
                    raise CodecError(f"{cid}: non-finite or zero scale/offset in the parameters")
                params = (n_ch, dt, mask, p[:, 0].copy(), p[:, 1].copy(), epoch,
                          param_signature(head_bytes, blob[start:rd.pos]))
            else:
                params = (n_ch, dt, np.zeros(n_ch, bool), np.zeros(0), np.zeros(0), epoch,
                          param_signature(head_bytes, blob[start:rd.pos]))
            self._dparams = None  # until this frame decodes
        elif flags & F_PREF:  # a keyframe naming its parameters: only that set decodes it
            assert self._dparams is not None
            sig = int.from_bytes(rd.take(4, "parameter set signature"), "little")
            held = self._dparams[6]
            if sig != held:
                self._dparams = None
                raise MissingReferenceError(f"{cid}: keyframe of parameter set {sig:08x}, the decoder holds "
                                            f"{held:08x}: waiting for a keyframe with the parameters")
            params = self._dparams = self._dparams[:5] + (epoch, sig)  # (the epoch may have moved: A, B, A)
        else:
            assert self._dparams is not None
            params = self._dparams
        _, _, mask, scale, offset, _, _ = params
        n_int = int(mask.sum())
        y = np.empty((n_s, n_ch), dt)
        if n_int and n_s:
            if not flags & F_INT:
                raise self._layout_error(flags, f"{cid}: {n_int} integer channels but no integer part (flags 0x{flags:02x})")
            size = rd.uvarint("integer part length", len(blob)) if flags & (F_RAW | F_ESC) else len(blob) - rd.pos
            try:
                q = self._dinner.decode(rd.take(size, "integer part"))
            except MissingReferenceError:
                if flags & F_PARAMS:  # (e.g. nl-lossless weights named, not sent) they stand alone: keep them
                    self._dparams = params  # for the keyframes that name them
                raise
            if q.shape != (n_s, n_int):
                self._dparams = None
                raise MissingReferenceError(f"{cid}: integer part decodes to {q.shape}, expected {(n_s, n_int)}")
            _reconstruct_into(q, np.flatnonzero(mask), scale, offset, dt.itemsize == 4, y)
        elif flags & F_INT:
            raise self._layout_error(flags, f"{cid}: integer part present without integer channels")
        n_raw = n_ch - n_int
        if n_raw and n_s:
            if not flags & F_RAW:
                raise self._layout_error(flags, f"{cid}: {n_raw} raw channels but no raw part (flags 0x{flags:02x})")
            size = rd.uvarint("raw part length", len(blob)) if flags & F_ESC else len(blob) - rd.pos
            body = rd.take(size, "raw part")
            expected = n_s * n_raw * dt.itemsize
            if flags & F_ZSTD:
                body = inflate_exact(self._dctx, body, expected, f"{cid}: raw part")
            if len(body) != expected:
                raise CodecError(f"{cid}: raw part holds {len(body)} bytes, expected {expected}")
            y[:, ~mask] = _unxor_planes(body, n_s, n_raw, dt)
        elif flags & (F_RAW | F_ZSTD):
            raise self._layout_error(flags, f"{cid}: raw part present without raw channels")
        if flags & F_ESC:
            if not n_int:
                raise self._layout_error(flags, f"{cid}: escapes without integer channels")
            count = rd.uvarint("escape count", n_s * n_int)
            block = np.ascontiguousarray(y[:, mask])
            if self._lossy:
                flat = np.frombuffer(rd.take(4 * count, "escape indices"), "<u4").astype(np.int64)
                if count and flat.max() >= n_s * n_int:  # indices as sent, in any order
                    raise CodecError(f"{cid}: escape index beyond the {n_s}x{n_int} integer block")
                vals = np.frombuffer(rd.take(count * dt.itemsize, "escape values"), dt.newbyteorder("<")).astype(dt)
            else:
                coded = np.zeros(2 * count, np.uint64)
                end = _get_uv64(np.frombuffer(blob, np.uint8), rd.pos, coded)
                if end < 0:
                    raise CodecError(f"{cid}: escapes truncated or malformed at offset {rd.pos}")
                rd.pos = end
                if count and coded[:count].max() >= n_s * n_int:
                    raise CodecError(f"{cid}: escape position beyond the {n_s}x{n_int} integer block")
                flat = np.cumsum(coded[:count]).astype(np.int64)  # each delta < the block: no overflow
                if count and flat[-1] >= n_s * n_int:  # the sum of the deltas (its largest), before it indexes
                    raise CodecError(f"{cid}: escape index beyond the {n_s}x{n_int} integer block")
                u = _UINT[dt.itemsize]
                r = block.reshape(-1)[flat] if count else np.zeros(0, dt)
                vals = _unordered(_ordered(r.view(u)) + _unzigzag(coded[count:], u)).view(dt)
            block.reshape(-1)[flat] = vals
            y[:, mask] = block
        if rd.pos != len(blob):
            raise CodecError(f"{cid}: {len(blob) - rd.pos} unexpected trailing bytes at offset {rd.pos}")
        self._dparams = params
        return y
