"""Helpers shared by the transform-family lossy codecs: float32 side info, frame-mean DPCM, model files.

Several codecs send a per-channel frame mean (closed-loop DPCM across frames, so its error never
accumulates and the state resets at keyframes) and a few float32 parameters in keyframes (scales,
means); these are the one implementation of both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import (
    ERR_TABLE,
    check_pos,
    fail,
    get_bits,
    get_signed,
    put_bits,
    put_signed,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@njit(cache=True)
def put_words(buf: np.ndarray, pos: int, words: np.ndarray, nbits: int) -> int:
    """Write each of ``words`` (int64, non-negative) in ``nbits`` raw bits."""
    for w in words:
        pos = put_bits(buf, pos, w, nbits)
    return pos


@njit(cache=True)
def get_words(buf: np.ndarray, pos: int, count: int, nbits: int) -> tuple[np.ndarray, int]:
    """``count`` raw ``nbits`` words; past the end: (empty array, error position) - see ``_bitio``."""
    if pos + count * nbits > buf.size * 8:  # before allocating: count comes from the payload
        return np.zeros(0, np.int64), fail(pos, ERR_TABLE)
    out = np.empty(count, np.int64)
    for i in range(count):
        out[i], pos = get_bits(buf, pos, nbits)
    return out, pos


def put_f32(buf: np.ndarray, pos: int, values: np.ndarray) -> int:
    """Write float32 values as raw 32-bit words (keyframe side info)."""
    return put_words(buf, pos, np.asarray(values, np.float32).ravel().view(np.uint32).astype(np.int64), 32)


def get_f32(buf: np.ndarray, pos: int, count: int, what: str, positive: bool = False) -> tuple[np.ndarray, int]:
    """Read float32 words; ValueError (-> CodecError) when non-finite or, if asked, not positive."""
    words, pos = get_words(buf, pos, count, 32)
    check_pos(buf, pos)
    with np.errstate(invalid="ignore"):  # a signalling NaN from the wire: rejected just below, not warned
        vals = words.astype(np.uint32).view(np.float32).astype(np.float64)
    if not np.all(np.isfinite(vals)) or np.any(np.abs(vals) > 1e30) or (positive and np.any(vals <= 0)):
        raise ValueError(f"{what} out of range at bit {pos - 32 * count}")
    return vals, pos


QMAX = 1 << 30  # quantiser indices stay inside the Rice escape's 32 bits


@njit(cache=True)
def clampq(v: float) -> int:
    """Quantiser index clamped to +-QMAX (only reachable with absurd knob/input scales)."""
    if v > QMAX:
        return QMAX
    if v < -QMAX:
        return -QMAX
    return int(v)


@njit(cache=True)
def quantise(z, step):
    """Quantiser indices of a 2-D array: clampq(rint(z / step)) element by element (int64)."""
    q = np.empty(z.shape, np.int64)
    for r in range(z.shape[0]):
        for k in range(z.shape[1]):
            q[r, k] = clampq(np.rint(z[r, k] / step))
    return q


@njit(cache=True)
def put_means(x, buf, pos, steps, prev, a, n, ctx0):
    """Closed-loop DPCM of each channel's frame mean (step per channel); returns (reconstructed means, pos)."""
    n_s, n_ch = x.shape
    m_rec = np.empty(n_ch)
    for c in range(n_ch):
        m = 0.0
        for i in range(n_s):
            m += x[i, c]
        m /= n_s
        q = clampq(np.rint((m - prev[c]) / steps[c]))
        prev[c] = prev[c] + q * steps[c]
        m_rec[c] = prev[c]
        pos = put_signed(buf, pos, q, a, n, ctx0 + c)
    return m_rec, pos


@njit(cache=True)
def get_means(buf, pos, n_ch, steps, prev, a, n, ctx0):
    """Frame means (closed-loop DPCM); a truncated stream returns an error position (``check_pos``)."""
    m_rec = np.empty(n_ch)
    for c in range(n_ch):
        q, pos = get_signed(buf, pos, a, n, ctx0 + c)
        prev[c] = prev[c] + q * steps[c]
        m_rec[c] = prev[c]
    return m_rec, pos


def need_bits(buf: np.ndarray, pos: int, n: int) -> None:
    """Every coded value takes >= 1 bit: refuse (ValueError -> CodecError) before allocating for a hostile header."""
    if buf.size * 8 - pos < n:
        raise ValueError(f"payload too short for {n} coded values at bit {pos}")


def load_model_array(name: str) -> np.ndarray:
    """Load a shipped .npy model file (never pickle)."""
    return np.load(MODELS_DIR / name, allow_pickle=False)
