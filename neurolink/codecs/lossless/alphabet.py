"""Value alphabets of real acquisition data: unused low bits, offsets, and non-power-of-two grids.

Per channel one of:
- IDENTITY: code = value.
- AFFINE: value = offset + scale * code (covers unused low bits and any pure gcd grid).
- TABLE: value = table[code], a sorted value map. Needed for ADC codes rescaled onto int16 with
  rounding, e.g. round(code * 65535 / 1023) - 32768: steps of 64 or 65, so no gcd exists and
  FLAC's wasted-bits detection misses it. Only used for int16 channels whose smallest step is >= 2.

Prediction and coding then run on the dense codes. The alphabet is serialised into archive
payloads and streaming keyframes (``pack``/``unpack``); values outside the current alphabet are
reported by :func:`to_codes` so the streaming encoder can escape by emitting a keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from neurolink.codecs.lossless.varint import Reader, put_svarint, put_uvarint
from neurolink.errors import CodecError

IDENTITY, AFFINE, TABLE = 0, 1, 2
MAX_TABLE = 4096


@dataclass
class Alphabet:
    """Per-channel alphabet parameters (arrays of length n_channels, plus the concatenated tables)."""

    mode: np.ndarray  # int64
    offset: np.ndarray  # int64
    scale: np.ndarray  # int64
    tab_start: np.ndarray  # int64
    tab_len: np.ndarray  # int64
    tables: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def identity(cls, n_ch: int) -> Alphabet:
        z = np.zeros(n_ch, np.int64)
        return cls(z.copy(), z.copy(), np.ones(n_ch, np.int64), z.copy(), z.copy())

    @property
    def trivial(self) -> bool:
        return not np.any(self.mode)


@njit(cache=True, nogil=True)
def _to_codes(x, mode, offset, scale, tab_start, tab_len, tables, codes, miss) -> None:
    n_s, n_ch = x.shape
    for t in range(n_s):
        for c in range(n_ch):
            v = np.int64(x[t, c])
            m = mode[c]
            if m == 0:
                codes[t, c] = v
            elif m == 1:
                d = v - offset[c]
                q = d // scale[c]
                if q * scale[c] != d:
                    miss[c] = True
                    q = 0
                codes[t, c] = q
            else:
                lo = tab_start[c]
                hi = lo + tab_len[c]
                a = lo
                b = hi
                while a < b:
                    mid = (a + b) >> 1
                    if tables[mid] < v:
                        a = mid + 1
                    else:
                        b = mid
                if a >= hi or tables[a] != v:
                    miss[c] = True
                    codes[t, c] = 0
                else:
                    codes[t, c] = a - lo


@njit(cache=True, nogil=True)
def _from_codes(codes, mode, offset, scale, tab_start, tab_len, tables, lo_v, hi_v, y) -> int:
    """Inverse map into ``y``; returns the flat index of the first invalid code, or -1."""
    n_s, n_ch = codes.shape
    for t in range(n_s):
        for c in range(n_ch):
            k = codes[t, c]
            m = mode[c]
            if m == 0:
                v = k
            elif m == 1:
                v = offset[c] + scale[c] * k
            else:
                if k < 0 or k >= tab_len[c]:
                    return t * n_ch + c
                v = tables[tab_start[c] + k]
            if v < lo_v or v > hi_v:
                return t * n_ch + c
            y[t, c] = v
    return -1


def to_codes(x: np.ndarray, alpha: Alphabet) -> tuple[np.ndarray, np.ndarray]:
    """Values -> codes; also a bool per channel that is True where a value is outside the alphabet."""
    miss = np.zeros(x.shape[1], np.bool_)
    if alpha.trivial:
        return x, miss
    codes = np.empty(x.shape, np.int64)
    _to_codes(x, alpha.mode, alpha.offset, alpha.scale, alpha.tab_start, alpha.tab_len, alpha.tables, codes, miss)
    return codes, miss


def from_codes(codes: np.ndarray, alpha: Alphabet, dtype: np.dtype, codec_id: str) -> np.ndarray:
    info = np.iinfo(dtype)
    y = np.empty(codes.shape, dtype)
    bad = _from_codes(codes, alpha.mode, alpha.offset, alpha.scale, alpha.tab_start, alpha.tab_len,
                      alpha.tables, int(info.min), int(info.max), y)
    if bad >= 0:
        raise CodecError(f"{codec_id}: corrupt payload, decoded code out of range at sample {bad // max(codes.shape[1], 1)}")
    return y


@njit(cache=True, nogil=True)
def _gcd(a, b):  # pragma: no cover - numba
    while b:
        a, b = b, a % b
    return a


@njit(cache=True, nogil=True)
def _decide(flat, start, count, table_ok, n_samples, mode, offset, scale, tab_len):  # pragma: no cover - numba
    """Per channel, from its sorted unique values ``flat[start[c]:start[c] + count[c]]``: AFFINE for one
    value or a gcd grid, TABLE (int16, no gcd, smallest step >= 2) where the table pays for itself."""
    for c in range(count.size):
        n = count[c]
        b = start[c]
        if n < 2:
            if n == 1:
                mode[c] = AFFINE
                offset[c] = np.int64(flat[b])
            continue
        dmin = np.int64(flat[b + 1]) - np.int64(flat[b])
        g = dmin
        for k in range(b + 2, b + n):
            d = np.int64(flat[k]) - np.int64(flat[k - 1])
            if d < dmin:
                dmin = d
            g = _gcd(g, d)
        if dmin < 2:
            continue
        if g > 1:
            mode[c] = AFFINE
            offset[c] = np.int64(flat[b])
            scale[c] = g
        elif table_ok and n <= MAX_TABLE and n_samples * np.log2(dmin) > 16 * n:
            mode[c] = TABLE
            tab_len[c] = n


def from_sets(flat: np.ndarray, start: np.ndarray, count: np.ndarray, dtype: np.dtype, n_samples: int,
              no_table: np.ndarray | None = None) -> Alphabet:
    """Choose each channel's alphabet from its sorted unique values, ``flat[start[c]:start[c] + count[c]]``
    (count 0: IDENTITY). ``no_table`` channels get IDENTITY where they would get a TABLE (the streaming
    tracker's channels whose value set is still growing). One numba pass over all channels."""
    n_ch = count.size
    alpha = Alphabet.identity(n_ch)
    _decide(flat, start, count, dtype == np.int16, float(n_samples), alpha.mode, alpha.offset, alpha.scale,
            alpha.tab_len)
    if no_table is not None:
        drop = (alpha.mode == TABLE) & no_table
        alpha.mode[drop] = IDENTITY
        alpha.tab_len[drop] = 0
    tab = np.flatnonzero(alpha.mode == TABLE)
    if tab.size:
        alpha.tab_start[tab] = np.concatenate(([0], np.cumsum(alpha.tab_len[tab])[:-1]))
        alpha.tables = np.concatenate([flat[start[c]:start[c] + count[c]].astype(np.int64) for c in tab])
    return alpha


def detect(uniques: list[np.ndarray], dtype: np.dtype, n_samples: int) -> Alphabet:
    """Choose each channel's alphabet from its sorted unique values (:func:`from_sets` on a list)."""
    count = np.array([u.size for u in uniques], np.int64)
    start = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64) if count.size else count
    flat = np.concatenate(uniques) if count.sum() else np.zeros(1, dtype)
    return from_sets(flat, start, count, dtype, n_samples)


@njit(cache=True, nogil=True)
def _maybe_sparse(x) -> np.ndarray:
    """Per channel: False once two consecutive samples differ by exactly 1 (then the channel is
    dense); real broadband data stops after a few samples, so this is ~free."""
    n_s, n_ch = x.shape
    out = np.ones(n_ch, np.bool_)
    left = n_ch
    for t in range(1, n_s):
        for c in range(n_ch):
            if out[c]:
                d = np.int64(x[t, c]) - np.int64(x[t - 1, c])
                if d == 1 or d == -1:
                    out[c] = False
                    left -= 1
        if left == 0:
            break
    return out


def detect_block(x: np.ndarray) -> Alphabet:
    """Archive detection on a whole block: vectorised dense test first, unique values only where needed."""
    n_s, n_ch = x.shape
    if n_s == 0:
        return Alphabet.identity(n_ch)
    # O(n) pre-test: a channel with two consecutive samples 1 apart holds two values 1 apart, so it
    # is dense (IDENTITY) whatever the sort below would say; only the rest need sorting
    cand = np.ones(n_ch, np.bool_)
    if n_s > 1:
        cand = _maybe_sparse(x)
        if not cand.any():
            return Alphabet.identity(n_ch)
    idx = np.flatnonzero(cand)
    s = np.sort(x[:, idx], axis=0)
    sparse = np.ones(idx.size, np.bool_)
    if n_s > 1:
        d = np.diff(s.astype(np.int64), axis=0)
        d[d == 0] = np.iinfo(np.int64).max
        sparse = d.min(axis=0) != 1
        if not sparse.any():
            return Alphabet.identity(n_ch)
    empty = np.zeros(0, x.dtype)
    uniques = [empty] * n_ch
    for j, c in enumerate(idx):
        if sparse[j]:
            uniques[c] = np.unique(s[:, j])
    return detect(uniques, x.dtype, n_s)


def pack(alpha: Alphabet, out: bytearray) -> None:
    """Serialise: one zero byte when every channel is IDENTITY, else per-channel entries."""
    if alpha.trivial:
        out.append(0)
        return
    out.append(1)
    for c in range(alpha.mode.size):
        m = int(alpha.mode[c])
        out.append(m)
        if m == AFFINE:
            put_svarint(out, int(alpha.offset[c]))
            put_uvarint(out, int(alpha.scale[c]))
        elif m == TABLE:
            tab = alpha.tables[alpha.tab_start[c] : alpha.tab_start[c] + alpha.tab_len[c]]
            put_uvarint(out, tab.size)
            put_svarint(out, int(tab[0]))
            d = np.diff(tab)
            dmin = int(d.min()) if d.size else 1
            put_uvarint(out, dmin)
            rest = d - dmin
            width = 1 if (rest.max(initial=0) < 256) else 2
            out.append(width)
            out += rest.astype("<u1" if width == 1 else "<u2").tobytes()


def unpack(rd: Reader, n_ch: int, dtype: np.dtype) -> Alphabet:
    alpha = Alphabet.identity(n_ch)
    flag = rd.byte("alphabet")
    if flag == 0:
        return alpha
    if flag != 1:
        raise CodecError(f"{rd.codec_id}: bad alphabet flag {flag} at offset {rd.pos - 1}")
    info = np.iinfo(dtype)
    span = int(info.max) - int(info.min)
    tabs: list[np.ndarray] = []
    start = 0
    for c in range(n_ch):
        m = rd.byte("alphabet.mode")
        if m == AFFINE:
            alpha.offset[c] = rd.svarint("alphabet.offset", span)
            alpha.scale[c] = rd.uvarint("alphabet.scale", span)
            if alpha.scale[c] < 1:
                raise CodecError(f"{rd.codec_id}: alphabet scale 0 for channel {c} at offset {rd.pos}")
        elif m == TABLE:
            size = rd.uvarint("alphabet.table_size", MAX_TABLE)
            first = rd.svarint("alphabet.table_first", span)
            dmin = rd.uvarint("alphabet.table_step", span)
            width = rd.byte("alphabet.table_width")
            if width not in (1, 2) or size < 1:
                raise CodecError(f"{rd.codec_id}: bad table entry for channel {c} at offset {rd.pos}")
            raw = rd.take((size - 1) * width, "alphabet.table")
            rest = np.frombuffer(raw, "<u1" if width == 1 else "<u2").astype(np.int64)
            tab = first + np.concatenate([[0], np.cumsum(rest + dmin)])
            if tab[-1] > info.max or first < info.min:
                raise CodecError(f"{rd.codec_id}: alphabet table of channel {c} leaves the {dtype} range")
            alpha.tab_start[c], alpha.tab_len[c] = start, size
            tabs.append(tab)
            start += size
        elif m != IDENTITY:
            raise CodecError(f"{rd.codec_id}: unknown alphabet mode {m} for channel {c} at offset {rd.pos - 1}")
        alpha.mode[c] = m
    if tabs:
        alpha.tables = np.concatenate(tabs)
    return alpha
