"""Encoder-side choice of the v2 predictor weights (least squares on recent codes).

The weights travel in the payload, so this runs only in the encoder and need not be bit-exact
across machines (float64 is fine). Statistics are sums of outer products of the feature vector
``[x[t-1], x[t-2], x[t-3], x_left[t], x_left[t-1], x_left[t-2], 1, x[t]]`` per channel; a ridge term keeps the
6x6 solve (centred) well-posed (channel 0 has no left neighbour, constant channels have no variance).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurolink.codecs.lossless.lpc import MAX_BIAS, MAX_W, N_COEF, N_W, SHIFT

N_FEAT = N_COEF + 1  # features + target
MIN_ROWS = 24  # below this many rows a fit is noise: fall back to the previous-sample predictor
#: a stream that switches its prefilter on refits the core on this many samples of the planning rows
FIT_WARM_SAMPLES = 1 << 18
FIT_STEP = 3  # archive fits use every 3rd row: 1/3 of the cost, ~0.0005 bit/sample worse (measured)


@njit(cache=True, nogil=True)
def solve(stats, count, c_start, c_stop, coefs, drop=0) -> None:
    """Quantised least-squares weights for channels ``c_start..c_stop`` into ``coefs`` (n_ch, 7),
    multiples of ``2^drop`` (v3 streams send them in those units).

    Solved on *centred* features (covariances), the bias from the means afterwards: a ridge term on
    raw sums penalised the bias ~10^5 times harder than the weights, which forced the weights to sum
    to ~1 on DC-offset data (locust: ~2055 +- 67) and cost 0.07 bit/sample (archive 2.004 -> 2.021)."""
    m = N_W
    a = np.empty((m, m), np.float64)
    b = np.empty(m, np.float64)
    mu = np.empty(N_FEAT, np.float64)
    for c in range(c_start, c_stop):
        coefs[c, :] = 0
        coefs[c, 0] = 1 << SHIFT
        coefs[c, N_W] = 1 << (SHIFT - 1)
        nn = stats[N_W, N_W, c]  # sum of the constant feature = number of rows
        if count[c] < MIN_ROWS or nn <= 0:
            continue
        for i in range(N_FEAT):
            mu[i] = stats[min(i, N_W), max(i, N_W), c] / nn
        for i in range(m):
            for j in range(m):
                a[i, j] = stats[min(i, j), max(i, j), c] / nn - mu[i] * mu[j]
            b[i] = stats[i, N_FEAT - 1, c] / nn - mu[i] * mu[N_FEAT - 1]
        tr = 0.0
        for i in range(m):
            tr += a[i, i]
        lam = 1e-6 * tr / m + 1e-9
        for i in range(m):
            a[i, i] += lam
        ok = True
        for j in range(m):
            s = a[j, j]
            for k in range(j):
                s -= a[j, k] * a[j, k]
            if s <= 0:
                ok = False
                break
            a[j, j] = np.sqrt(s)
            for i in range(j + 1, m):
                s2 = a[i, j]
                for k in range(j):
                    s2 -= a[i, k] * a[j, k]
                a[i, j] = s2 / a[j, j]
        if not ok:
            continue
        for i in range(m):
            s = b[i]
            for k in range(i):
                s -= a[i, k] * b[k]
            b[i] = s / a[i, i]
        for i in range(m - 1, -1, -1):
            s = b[i]
            for k in range(i + 1, m):
                s -= a[k, i] * b[k]
            b[i] = s / a[i, i]
        bad = False
        for i in range(m):
            if not np.isfinite(b[i]):
                bad = True
        if bad:
            continue
        # the features are not centred in the predictor, so a weight's rounding error times the DC
        # offset shifts the prediction: the bias is computed from the rounded weights
        step = 1 << drop
        bias = mu[N_FEAT - 1]
        for i in range(N_W):
            q = np.round(b[i] * (1 << SHIFT) / step) * step
            q = min(max(q, -(MAX_W - step)), MAX_W - step)
            coefs[c, i] = np.int64(q)
            bias -= q / (1 << SHIFT) * mu[i]
        q = np.round((bias * (1 << SHIFT) + (1 << (SHIFT - 1))) / step) * step
        coefs[c, N_W] = np.int64(min(max(q, -(MAX_BIAS - step)), MAX_BIAS - step))


def fit_block(codes: np.ndarray, seg: int) -> np.ndarray:
    """Archive: one weight set per ``seg`` rows per channel -> (n_seg, n_ch, 7) int64.

    Every ``FIT_STEP``-th row of each segment through :func:`accumulate_frame` (channel-minor sums,
    vectorised over channels; the rows before a segment are its history, the first row stands in for the
    rows before the block). A per-channel loop over 8x8 sums cost ~40 ns a sample at 1024 channels (the
    sums of one channel are 8 kB apart): ~0.3 s per 1 s archive block, now a small part of the encode."""
    n_s, n_ch = codes.shape
    n_seg = max(1, -(-n_s // seg))
    hist = np.empty((n_ch, 3), np.int64)
    hist[:] = codes[:1].T if n_s else 0
    feat = np.empty((2, 5, n_ch + 1), np.float64)
    out = np.empty((n_seg, n_ch, N_COEF), np.int64)
    for s in range(n_seg):
        stats = np.zeros((N_FEAT, N_FEAT, n_ch), np.float64)
        count = np.zeros(n_ch, np.int64)
        accumulate_frame(codes[:min(n_s, (s + 1) * seg)], hist, s * seg, FIT_STEP, stats, count, feat)
        solve(stats, count, 0, n_ch, out[s])
    return out


@njit(cache=True, inline="always")
def _rows(codes, hist, t, z) -> None:
    """Rows t, t-1, t-2, t-3 (from ``hist`` before the frame) as float64 into ``z[k, 1:]``; ``z[k, 0]``
    stays 0, so ``z[k, :-1]`` is the same row one channel to the right (the left-neighbour features,
    0 for channel 0) without a copy."""
    n_ch = codes.shape[1]
    for k in range(4):
        tt = t - k
        zk = z[k]
        zk[0] = 0.0
        if tt >= 0:
            row = codes[tt]
            for c in range(n_ch):
                zk[c + 1] = row[c]
        else:
            for c in range(n_ch):
                zk[c + 1] = hist[c, -tt - 1]


@njit(cache=True, inline="always")
def _features(z, ones):
    """The N_FEAT feature vectors over all channels as views of :func:`_rows`' output."""
    return (z[1, 1:], z[2, 1:], z[3, 1:], z[0, :-1], z[1, :-1], z[2, :-1], ones, z[0, 1:])


@njit(cache=True, inline="always")
def _add2(s, a1, b1, a2, b2) -> None:
    for c in range(s.shape[0]):
        s[c] = (s[c] + a1[c] * b1[c]) + a2[c] * b2[c]


@njit(cache=True, inline="always")
def _add1(s, a1, b1) -> None:
    for c in range(s.shape[0]):
        s[c] += a1[c] * b1[c]


#: below this many channels the per-channel loop is faster (36 array views a row cost more than the sums)
_WIDE = 64


@njit(cache=True)
def _accumulate_narrow(codes, hist, t_start, step, stats, count) -> None:
    """:func:`accumulate_frame` one channel and row at a time (few channels: 4-channel tetrodes)."""
    n_s, n_ch = codes.shape
    f = np.empty(N_FEAT, np.float64)
    for t in range(t_start, n_s, step):
        for c in range(n_ch):
            for lag in range(1, 4):
                tt = t - lag
                f[lag - 1] = codes[tt, c] if tt >= 0 else hist[c, -tt - 1]
            if c > 0:
                f[3] = codes[t, c - 1]
                f[4] = codes[t - 1, c - 1] if t >= 1 else hist[c - 1, 0]
                f[5] = codes[t - 2, c - 1] if t >= 2 else hist[c - 1, 1 - t]
            else:
                f[3] = 0.0
                f[4] = 0.0
                f[5] = 0.0
            f[6] = 1.0
            f[7] = codes[t, c]
            for i in range(N_FEAT):
                fi = f[i]
                for j in range(i, N_FEAT):
                    stats[i, j, c] += fi * f[j]
            count[c] += 1


@njit(cache=True, nogil=True)
def accumulate_frame(codes, hist, t_start, step, stats, count, feat) -> None:
    """Streaming: add every ``step``-th row of ``codes`` from ``t_start``; rows before the frame come
    from ``hist`` (the encoder state before this frame, most recent first). ``feat`` is scratch of
    (2, 5, n_ch + 1).

    Channel-minor statistics (N_FEAT, N_FEAT, n_ch), rows taken two at a time: the rows they use are
    converted once for all channels, then each of the 36 sums is updated over all channels at once
    (vectorised, one load and store per sum for both rows; blocking the channels to stay in L1 was
    slower). Row-major over 8x8 blocks per channel this cost ~40-60 us per 1024-channel frame; each
    element still adds its rows in the same order with a separate multiply and add (no FMA), so the
    sums are bit-identical."""
    n_s, n_ch = codes.shape
    if n_ch < _WIDE:
        _accumulate_narrow(codes, hist, t_start, step, stats, count)
        return
    z1 = feat[0]
    z2 = feat[1]
    ones = feat[0, 4, 1:]
    ones[:] = 1.0
    t = t_start
    while t < n_s:
        _rows(codes, hist, t, z1)
        f1 = _features(z1, ones)
        two = t + step < n_s
        if two:
            _rows(codes, hist, t + step, z2)
            f2 = _features(z2, ones)
            for i in range(N_FEAT):
                for j in range(i, N_FEAT):
                    _add2(stats[i, j], f1[i], f1[j], f2[i], f2[j])
        else:
            for i in range(N_FEAT):
                for j in range(i, N_FEAT):
                    _add1(stats[i, j], f1[i], f1[j])
        rows = 2 if two else 1
        for c in range(n_ch):
            count[c] += rows
        t += rows * step


@njit(cache=True, nogil=True)
def observe_frame(codes, hist, t_start, step, stats, count, feat, c_start, c_stop, coefs, drop, decay) -> None:
    """One streaming frame for the fitter in one call: :func:`accumulate_frame`, then :func:`solve` the
    channels ``c_start..c_stop`` and fade their statistics by ``decay`` (exponential memory)."""
    accumulate_frame(codes, hist, t_start, step, stats, count, feat)
    solve(stats, count, c_start, c_stop, coefs, drop)
    for i in range(N_FEAT):
        for j in range(N_FEAT):
            for c in range(c_start, c_stop):
                stats[i, j, c] = stats[i, j, c] * decay
    for c in range(c_start, c_stop):
        count[c] = np.int64(count[c] * decay)
