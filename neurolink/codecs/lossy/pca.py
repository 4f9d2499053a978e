"""Spatial decorrelation: PCA over channels, learned per keyframe window and sent in keyframes.

Why: neighbouring electrodes (tetrode wires, ECoG grid contacts) see the same sources, so a few
principal components carry most of the power. Channels are split into groups of up to 32
neighbours (a tetrode is one group; 256 channels are 8), each with its own PCA: the statistics and
eigendecompositions stay small (32x32, ~50 us), so no frame pays for a 256x256 one and no BLAS
threads or worker threads are needed. The encoder accumulates each group's covariance and lag-1
covariance from <= 4 sample pairs per frame, forgetting 10 % per keyframe window. At each keyframe
it sends the mean (float32 per channel), per group the basis of the components whose variance
exceeds step^2/12 (reverse water-filling; int8 entries, both ends orthonormalise the same
dequantised matrix) and a 7-bit lag-1 predictor per component. Components are coded sample by sample
with closed-loop DPCM and adaptive Rice codes; dropped components are the thresholding. The first
window uses the identity basis. A single group is fitted at the keyframe itself; with several, one
group is fitted per frame after a keyframe and the new bases go out at the next keyframe.
One rate knob: ``step`` (input units).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import (
    check_pos,
    get_bits,
    get_signed,
    new_rice_state,
    put_bits,
    put_signed,
)
from neurolink.codecs.lossy._common import clampq, get_f32, get_words, need_bits, put_f32, put_words
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number

GROUP = 32
RHO_BITS = 7
STATS_DECAY = 0.9  # per keyframe window
STAT_ROWS = 4  # sample pairs per frame entering the statistics (an unbiased subsample)


def _groups(n_ch: int) -> list[slice]:
    return [slice(g, min(g + GROUP, n_ch)) for g in range(0, n_ch, GROUP)]


def _orthonormal(bq: np.ndarray) -> np.ndarray:
    """(g, r) int8 basis -> orthonormal float basis spanning the same columns (identical at both ends)."""
    q, _ = np.linalg.qr(bq.astype(np.float64) / 127.0)
    return q


def fit_group(s: np.ndarray, s1: np.ndarray, total: np.ndarray, count: float, step: float) -> tuple[np.ndarray, ...]:
    """One group's window statistics -> (mean, int8 basis (g, r), rho index per component, orthonormal basis)."""
    mu = total / count
    cov = s / count - np.outer(mu, mu)
    lam, vec = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    lam, vec = lam[order], vec[:, order]
    r = max(1, int(np.sum(lam > step**2 / 12)))  # reverse water-filling: drop what costs less than quantising
    vec = vec[:, :r]
    vec = vec / np.maximum(np.abs(vec).max(axis=0), 1e-12)  # int8 uses the full range per column
    bq = np.clip(np.rint(vec * 127), -127, 127).astype(np.int8)
    basis = _orthonormal(bq)
    c1 = s1 / count - np.outer(mu, mu)
    rho = np.einsum("ik,ij,jk->k", basis, c1, basis) / np.maximum(np.einsum("ik,ij,jk->k", basis, cov, basis), 1e-12)
    ridx = np.clip(np.rint(rho * (2**RHO_BITS - 1)), 0, 2**RHO_BITS - 1).astype(np.int64)
    return np.asarray(mu, np.float32).astype(np.float64), bq, ridx, basis


@njit(cache=True)
def _encode_coefs(y, buf, pos, step, rho, prev, a, n):
    n_s, r = y.shape
    for i in range(n_s):
        for k in range(r):
            p = rho[k] * prev[k]
            q = clampq(np.rint((y[i, k] - p) / step))
            prev[k] = p + q * step
            pos = put_signed(buf, pos, q, a, n, k)
    return pos


@njit(cache=True)
def _decode_coefs(buf, pos, n_s, r, step, rho, prev, a, n):
    y = np.empty((n_s, r))
    for i in range(n_s):
        for k in range(r):
            q, pos = get_signed(buf, pos, a, n, k)
            prev[k] = rho[k] * prev[k] + q * step
            y[i, k] = prev[k]
    return y, pos


class PCA(LossyStreamCodec):
    codec_id = "nl-pca"

    def __init__(self, step: float = 32.0, keyframe_interval: int = 100) -> None:
        self.step = check_number("step", step, 0.01, 1e6, "nl-pca")
        super().__init__(keyframe_interval)
        self.reset()

    def _params(self) -> dict[str, Any]:
        return {"step": self.step}

    def reset(self) -> None:
        super().reset()
        self._stats: list[list[Any]] | None = None  # per group [S, S1, sum, count]
        self._last: np.ndarray | None = None
        self._todo: list[int] = []  # groups still to fit from the snapshot
        self._snap: list[list[Any]] | None = None
        self._fitted: dict[int, tuple] = {}
        self._model: list[tuple] | None = None  # per group (mu, bq, ridx, basis); None = identity

    def _max_bytes(self, n_s: int, n_ch: int) -> int:
        return super()._max_bytes(n_s, n_ch) + GROUP * n_ch + 8 * n_ch + 8

    # ---- encoder side ---------------------------------------------------------------------------
    def _accumulate(self, x: np.ndarray) -> None:
        n_s, n_ch = x.shape
        if self._stats is None or sum(st[2].size for st in self._stats) != n_ch:
            self._stats = [[np.zeros((g.stop - g.start,) * 2), np.zeros((g.stop - g.start,) * 2), np.zeros(g.stop - g.start), 0.0]
                           for g in _groups(n_ch)]
            self._last = None
        cur: np.ndarray | None = None
        lag: np.ndarray | None = None
        if n_s >= 2:
            idx = np.arange(1, n_s, max(1, (n_s - 1) // STAT_ROWS))[:STAT_ROWS]
            cur, lag = x[idx], x[idx - 1]
        elif self._last is not None and self._last.shape[1] == n_ch:
            cur, lag = x, self._last
        self._last = x[-1:].copy()
        if cur is None or lag is None:
            return
        for st, g in zip(self._stats, _groups(n_ch), strict=True):
            c, lg = cur[:, g], lag[:, g]
            st[0] += np.einsum("ri,rj->ij", c, c)
            st[1] += np.einsum("ri,rj->ij", lg, c)
            st[2] += c.sum(axis=0)
            st[3] += c.shape[0]

    def _fit_one(self) -> None:
        """Fit one pending group (a few tens of microseconds)."""
        if self._todo and self._snap is not None:
            gi = self._todo.pop(0)
            st = self._snap[gi]
            self._fitted[gi] = fit_group(st[0], st[1], st[2], st[3], self.step)

    def _next_model(self, n_ch: int) -> None:
        """At a keyframe: adopt fully fitted bases, snapshot the statistics for the next fit."""
        n_g = len(_groups(n_ch))
        if self._snap is not None and not self._todo and len(self._fitted) == n_g:
            self._model = [self._fitted[i] for i in range(n_g)]
        st = self._stats
        if st is not None and len(st) == n_g and st[0][3] >= 4 * GROUP and (not self._todo):
            self._snap = [[a.copy() if isinstance(a, np.ndarray) else a for a in s] for s in st]
            self._todo, self._fitted = list(range(n_g)), {}
            if n_g == 1:
                self._fit_one()
                self._model = [self._fitted[0]]
            for s in st:
                for i in range(4):
                    s[i] = s[i] * STATS_DECAY
        if self._model is not None and sum(m[1].shape[0] for m in self._model) != n_ch:
            self._model = None

    def _encode_payload(self, x, buf, pos, key):
        n_s, n_ch = x.shape
        if key:
            self._next_model(n_ch)
            if self._model is None:
                mu = np.asarray(x.mean(axis=0), np.float32).astype(np.float64)
                model = None
            else:
                mu = np.concatenate([m[0] for m in self._model])
                model = [(m[1], m[2], m[3]) for m in self._model]
            pos = self._write_key(buf, pos, mu, model, n_ch)
        else:
            self._fit_one()
        self._accumulate(x)
        y = self._project(x)
        return x, _encode_coefs(y, buf, pos, self.step, self._rho, self._prev, self._a, self._n)

    def _write_key(self, buf, pos, mu, model, n_ch):
        pos = put_bits(buf, pos, 0 if model is None else 1, 1)
        pos = put_f32(buf, pos, mu)
        if model is None:
            ridx = np.zeros(n_ch, np.int64)
        else:
            for bq, _r, _b in model:
                pos = put_bits(buf, pos, bq.shape[1] - 1, 5)
            ridx = np.concatenate([m[1] for m in model])
            pos = put_words(buf, pos, np.concatenate([bq.view(np.uint8).ravel() for bq, _r, _b in model]).astype(np.int64), 8)
        pos = put_words(buf, pos, ridx, RHO_BITS)
        self._set_frame_model(mu, model, ridx)
        return pos

    # ---- both sides -----------------------------------------------------------------------------
    def _set_frame_model(self, mu: np.ndarray, model: list[tuple] | None, ridx: np.ndarray) -> None:
        self._mu = mu
        self._bases = None if model is None else [b if b is not None else _orthonormal(bq) for bq, _r, b in model]
        self._rho = ridx.astype(np.float64) / (2**RHO_BITS - 1)
        self._prev = np.zeros(ridx.size)
        self._a, self._n = new_rice_state(ridx.size)

    def _project(self, x: np.ndarray) -> np.ndarray:
        xc = x - self._mu
        if self._bases is None:
            return np.ascontiguousarray(xc)
        return np.ascontiguousarray(np.hstack([xc[:, g] @ b for g, b in zip(_groups(x.shape[1]), self._bases, strict=True)]))

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        if key:
            has_basis, pos = get_bits(buf, pos, 1)
            check_pos(buf, pos)
            mu, pos = get_f32(buf, pos, n_ch, "channel mean")
            model = None
            if has_basis:
                groups = _groups(n_ch)
                rs = []
                for g in groups:
                    r, pos = get_bits(buf, pos, 5)
                    check_pos(buf, pos)
                    if r + 1 > g.stop - g.start:
                        raise ValueError(f"{r + 1} components for a group of {g.stop - g.start} channels")
                    rs.append(r + 1)
                model = []
                for g, r in zip(groups, rs, strict=True):
                    raw, pos = get_words(buf, pos, r * (g.stop - g.start), 8)
                    check_pos(buf, pos)
                    model.append((raw.astype(np.uint8).view(np.int8).reshape(g.stop - g.start, r), None, None))
            ridx, pos = get_words(buf, pos, n_ch if model is None else sum(m[0].shape[1] for m in model), RHO_BITS)
            check_pos(buf, pos)
            self._set_frame_model(mu, model, ridx)
        if not hasattr(self, "_mu") or self._mu.size != n_ch:
            raise ValueError("no keyframe model")
        r = self._prev.size
        need_bits(buf, pos, n_s * r)
        y, pos = _decode_coefs(buf, pos, n_s, r, self.step, self._rho, self._prev, self._a, self._n)
        check_pos(buf, pos)
        if self._bases is not None:
            parts, k = [], 0
            for b in self._bases:
                parts.append(y[:, k : k + b.shape[1]] @ b.T)
                k += b.shape[1]
            y = np.hstack(parts)
        return y + self._mu
