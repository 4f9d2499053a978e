"""Compressed sensing: random projections at the sender, sparse recovery (OMP) at the receiver.

Why: the encoder is a matrix product and a quantiser, the cheapest possible sender (the case for
CS on implants); all the work is at the receiver. Per channel and frame: the frame mean
(closed-loop DPCM across frames, step qstep/4) and M = round(m * n / 16) measurements
``Phi @ (x - mean)`` of the frame's n samples, quantised with ``qstep`` and Rice-coded. Phi is a
seeded +-1/sqrt(M) Bernoulli matrix derived from (seed, n, M): never transmitted. The receiver runs
orthogonal matching pursuit over a dictionary of spikes (identity) and DCT atoms, stopping at the
quantisation noise level. One rate knob: ``m`` (measurements per 16 samples); ``qstep`` is a fixed
scale parameter (input units), not a rate knob.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
from numba import njit

from neurolink.codecs.lossy._bitio import BAD, check_pos, get_signed, new_rice_state, put_signed
from neurolink.codecs.lossy._common import get_means, need_bits, put_means, quantise
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number
from neurolink.errors import CodecError

MEAN_FRACTION = 0.25
MEAS_PER_ATOM = 4  # OMP stops after M/4 atoms: the background noise is not sparse, more atoms overfit it
MAX_N = 256  # longest frame (samples): bounds the receiver's dictionary and OMP work on hostile input
#: OMP stops when the best atom's squared distance to the span of the selected ones is below this fraction
#: of its squared norm (an atom selected again, or linearly dependent: the Cholesky update would be singular)
DEPENDENT = 1e-10
#: Correlations within this relative distance of the largest are a tie, broken to the lowest atom index: with
#: quantised measurements and a +-1 Phi exact ties are common (~0.1% of real frames), and the rounding of the
#: machine's BLAS must not pick among them (receivers would decode differently)
TIE = 1e-9


@lru_cache(maxsize=64)
def matrices(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Phi (M, n), DCT table (4n,), column-normalised A = Phi Psi (M, 2n-1), column norms) for frame length n.

    The dictionary Psi (n, 2n-1) is [identity | orthonormal DCT-II atoms 1..n-1] (no DC atom: the frame mean
    is sent separately). It is never built: DCT atom k at sample i is ``table[(2i+1)k mod 4n]``, and
    Phi's DCT part is a DCT of Phi's rows (FFT), so a receiver handed a new frame length (hostile input can
    name one per keyframe, past this cache) pays O(M n log n), not a dense (M, n) x (n, 2n-1) product.
    """
    rng = np.random.default_rng([seed, n, m])
    phi = (rng.integers(0, 2, (m, n)) * 2 - 1) / np.sqrt(m)
    a = np.empty((m, 2 * n - 1))
    a[:, :n] = phi
    a[:, n:] = scipy.fft.dct(phi, type=2, norm="ortho", axis=1)[:, 1:]  # == phi @ dct_atoms[:, 1:]
    norms = np.linalg.norm(a, axis=0)
    dead = norms < 1e-9  # atoms Phi cannot see (zero columns but for rounding, short frames): never selected
    a[:, dead] = 0.0
    norms[dead] = 1.0
    table = np.cos(np.arange(4 * n) * (np.pi / (2 * n))) * np.sqrt(2.0 / n)
    return phi, table, a / norms, norms


def n_measurements(m: int, n: int) -> int:
    return 0 if n < 2 else min(n, max(1, round(m * n / 16)))


@njit(cache=True)
def _omp(a, y, tol2, max_atoms):
    """Orthogonal matching pursuit: sparse s with a @ s ~ y (a column-normalised).

    The standard fast form: per atom one product ``a.T @ r`` for the correlations, and the least-squares
    coefficients from a Cholesky factor L of the selected atoms' Gram matrix, grown by one row per atom
    (O(M k) per atom instead of a least-squares solve of the whole selection). Stops at the noise level
    (``tol2``), after ``max_atoms``, or when the best atom lies in the span of those selected (selected
    already, or linearly dependent): the residual is then already the least-squares one, orthogonal to it.
    """
    mm, na = a.shape
    kmax = min(max_atoms, mm)
    s = np.zeros(na)
    sel = np.empty(kmax, np.int64)
    atoms = np.empty((kmax, mm))  # the selected atoms, one per row
    chol = np.zeros((kmax, kmax))  # lower triangular: chol @ chol.T = atoms @ atoms.T
    z = np.empty(kmax)  # chol @ z = atoms @ y
    coef = np.empty(kmax)  # chol.T @ coef = z: the least-squares coefficients
    w = np.empty(kmax)
    r = y.copy()
    k = 0
    while k < kmax and np.dot(r, r) > tol2:
        c = np.abs(np.dot(r, a))  # all correlations a.T @ r at once
        bv = -1.0
        for j in range(na):
            if c[j] > bv:
                bv = c[j]
        best = -1  # the first atom within rounding of the largest (see TIE)
        for j in range(na):
            if c[j] >= bv * (1.0 - TIE):
                best = j
                break
        if best < 0:  # no finite correlation
            break
        atom = atoms[k]
        for i in range(mm):
            atom[i] = a[i, best]
        g = np.dot(atom, atom)
        d = g
        for i in range(k):  # forward substitution: chol[:k, :k] @ w = atoms[:k] @ atom
            acc = np.dot(atoms[i], atom)
            for j in range(i):
                acc -= chol[i, j] * w[j]
            w[i] = acc / chol[i, i]
            d -= w[i] * w[i]
        if not d > DEPENDENT * g:  # in the span of the selection (or a zero column): no new direction
            break
        acc = np.dot(atom, y)
        for j in range(k):
            chol[k, j] = w[j]
            acc -= w[j] * z[j]
        chol[k, k] = np.sqrt(d)
        z[k] = acc / chol[k, k]
        sel[k] = best
        k += 1
        for i in range(k - 1, -1, -1):  # back substitution: chol[:k, :k].T @ coef = z
            acc = z[i]
            for j in range(i + 1, k):
                acc -= chol[j, i] * coef[j]
            coef[i] = acc / chol[i, i]
        r = y - np.dot(coef[:k], atoms[:k])
    for i in range(k):
        s[sel[i]] = coef[i]
    return s


@njit(cache=True)
def _put_meas(q, buf, pos, a, n):
    for c in range(q.shape[1]):
        for i in range(q.shape[0]):
            pos = put_signed(buf, pos, q[i, c], a, n, c)
    return pos


@njit(cache=True)
def _recover(buf, pos, mm, n_ch, step, a, norms, table, a_st, n_st, m_rec):
    n_s = table.size // 4
    y = np.empty((n_s, n_ch))
    meas = np.empty(mm)
    d = np.empty(n_s)
    tol2 = mm * step * step / 12.0
    for c in range(n_ch):
        for i in range(mm):
            q, pos = get_signed(buf, pos, a_st, n_st, c)
            meas[i] = q * step
        if pos >= BAD:  # truncated: skip the recovery work (the caller raises; see _bitio)
            return y, pos
        s = _omp(a, meas, tol2, max(1, mm // MEAS_PER_ATOM))
        d[:] = 0.0
        for j in range(s.size):  # Psi @ (s / norms) over the few selected atoms (see matrices)
            if s[j] != 0.0:
                v = s[j] / norms[j]
                if j < n_s:
                    d[j] += v
                else:
                    k = j - n_s + 1
                    for i in range(n_s):
                        d[i] += v * table[(2 * i + 1) * k % (4 * n_s)]
        for i in range(n_s):
            y[i, c] = m_rec[c] + d[i]
    return y, pos


class CompressedSensing(LossyStreamCodec):
    codec_id = "nl-cs"

    def __init__(self, m: int = 6, qstep: float = 8.0, seed: int = 0, keyframe_interval: int = 100) -> None:
        self.m = check_number("m", m, 1, 16, "nl-cs", integer=True)
        self.qstep = check_number("qstep", qstep, 0.01, 1e6, "nl-cs")
        self.seed = check_number("seed", seed, 0, 2**31 - 1, "nl-cs", integer=True)
        super().__init__(keyframe_interval)

    def _params(self) -> dict[str, Any]:
        return {"m": self.m, "qstep": self.qstep, "seed": self.seed}

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._msteps = np.full(n_channels, self.qstep * MEAN_FRACTION)
        self._a, self._n = new_rice_state(2 * n_channels)

    def _encode_payload(self, x, buf, pos, key):
        n_s, n_ch = x.shape
        if n_s > MAX_N:
            raise CodecError(f"nl-cs: frames of {n_s} samples exceed the limit of {MAX_N} (use 1 ms frames)")
        m_rec, pos = put_means(x, buf, pos, self._msteps, self._prev, self._a, self._n, n_ch)
        mm = n_measurements(self.m, n_s)
        if mm:
            phi = matrices(n_s, mm, self.seed)[0]
            q = quantise(phi @ (x - m_rec), self.qstep)
            pos = _put_meas(q, buf, pos, self._a, self._n)
        return x, pos

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        if n_s > MAX_N:
            raise ValueError(f"frame of {n_s} samples above the limit of {MAX_N}")
        need_bits(buf, pos, n_ch * (1 + n_measurements(self.m, n_s)))
        m_rec, pos = get_means(buf, pos, n_ch, self._msteps, self._prev, self._a, self._n, n_ch)
        check_pos(buf, pos)
        mm = n_measurements(self.m, n_s)
        if not mm:
            return np.repeat(m_rec[None, :], n_s, axis=0)
        _phi, table, a, norms = matrices(n_s, mm, self.seed)
        y, pos = _recover(buf, pos, mm, n_ch, self.qstep, a, norms, table, self._a, self._n, m_rec)
        check_pos(buf, pos)
        return y
