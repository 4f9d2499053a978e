"""Streaming alphabet learning: which channels' values sit on a sparse grid, learned from frames seen.

Channels whose values ever differ by 1 are *dense* and stop being tracked (real broadband data
becomes dense within a frame or two, so the fast path pays nothing). For the others the sorted set of
values seen so far is kept; at each keyframe :meth:`alphabet` turns it into an alphabet, and a later
value outside it makes the encoder emit a keyframe (the escape). A value *table* is only offered once
the channel's set of values has stopped growing for ``stable_frames`` frames, so a channel still
exploring its range does not turn every frame into a keyframe.

The sets live in one preallocated array (a row of ``MAX_TABLE + 1`` per tracked channel) updated by a
numba kernel: a binary search per sample, an insertion only for a value never seen. Why: channels on a
grid (an ADC with unused low bits, a dead channel) stay tracked for the whole stream, and merging a
Python-level set per channel per frame (``np.union1d``) cost 2-19 ms per 1 ms frame on 78-128 channels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurolink.codecs.lossless import alphabet as alph


@njit(cache=True, nogil=True)
def _track(x, dense, row, vals, count, grew, frame, max_table, bits):  # pragma: no cover - numba
    """Add the frame's values to each tracked channel's sorted set; mark a channel dense on a step of 1
    between two of its values or on more than ``max_table`` of them (then its set is dropped).

    ``bits`` (int16 streams: one 65536-bit map per row, else shape (0, 0)) answers "seen before?" in
    one load for the values a grid channel repeats every frame; only a new value is searched for."""
    n_s, n_ch = x.shape
    use_bits = bits.shape[0] > 0
    for c in range(n_ch):
        if dense[c]:
            continue
        r = row[c]
        n = count[r]
        new = False
        for t in range(n_s):
            v = x[t, c]
            if use_bits:
                i = np.int64(v) + 32768
                if (bits[r, i >> 6] >> np.uint64(i & 63)) & np.uint64(1):
                    continue
            lo = 0
            hi = n
            while lo < hi:
                mid = (lo + hi) >> 1
                if vals[r, mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < n and vals[r, lo] == v:
                continue
            vv = np.int64(v)
            if (n >= max_table or (lo > 0 and vv - np.int64(vals[r, lo - 1]) == 1)
                    or (lo < n and np.int64(vals[r, lo]) - vv == 1)):
                dense[c] = True
                n = 0
                new = False
                break
            for k in range(n, lo, -1):
                vals[r, k] = vals[r, k - 1]
            vals[r, lo] = v
            n += 1
            new = True
            if use_bits:
                i = np.int64(v) + 32768
                bits[r, i >> 6] |= np.uint64(1) << np.uint64(i & 63)
        count[r] = n
        if new:
            grew[c] = frame


class AlphabetTracker:
    def __init__(self, n_ch: int, dtype: np.dtype, stable_frames: int = 100) -> None:
        self.dtype = dtype
        self.stable_frames = stable_frames
        self.frames = 0
        self.grew = np.zeros(n_ch, np.int64)  # frame index of the last new value per channel
        self.dense = np.zeros(n_ch, np.bool_)
        self.n_samples = 0
        self._identity: alph.Alphabet | None = None  # shared, never mutated
        self.all_dense = bool(self.dense.all())  # cached: checked on every frame, and dense only grows
        self._row = np.full(n_ch, -1, np.int64)  # tracked channel -> its row in _vals
        self._vals: np.ndarray | None = None  # (tracked channels, MAX_TABLE + 1) sorted values, x's dtype
        self._count = np.zeros(0, np.int64)
        self._bits = np.zeros((0, 0), np.uint64)

    def update(self, x: np.ndarray) -> None:
        self.n_samples += x.shape[0]
        self.frames += 1
        if self.all_dense or x.shape[0] == 0:
            return
        if self._vals is None:  # first frame: channels already dense here never need a row
            if x.shape[0] > 1:
                d = np.diff(np.sort(x, axis=0).astype(np.int64), axis=0)
                d[d == 0] = np.iinfo(np.int64).max
                self.dense |= d.min(axis=0) == 1
            tracked = np.flatnonzero(~self.dense)
            self._row[tracked] = np.arange(tracked.size)
            self._vals = np.zeros((tracked.size, alph.MAX_TABLE + 1), x.dtype)
            self._count = np.zeros(tracked.size, np.int64)
            # int16: a bitmap of the values seen per row (8 kB), so known values cost one load
            self._bits = np.zeros((tracked.size if x.dtype == np.int16 else 0, 1024), np.uint64)
        _track(x, self.dense, self._row, self._vals, self._count, self.grew, self.frames, alph.MAX_TABLE, self._bits)
        self.all_dense = bool(self.dense.all())
        if self.all_dense:  # nothing tracked any more: free the rows
            self._vals = np.zeros((0, 0), self._vals.dtype)
            self._bits = np.zeros((0, 0), np.uint64)

    def values(self, c: int) -> np.ndarray:
        """The sorted values channel ``c`` has shown (empty once it is dense)."""
        r = int(self._row[c])
        if self.dense[c] or r < 0 or self._vals is None:  # (all dense: the rows are freed)
            return np.zeros(0, self.dtype)
        return self._vals[r, :self._count[r]].copy()

    def alphabet(self) -> alph.Alphabet:
        n_ch = self.dense.size
        if self.all_dense:  # the common case on real data: nothing to learn, keep keyframes cheap
            if self._identity is None:
                self._identity = alph.Alphabet.identity(n_ch)
            return self._identity
        if self._vals is None:
            return alph.Alphabet.identity(n_ch)
        width = self._vals.shape[1]
        tracked = (self._row >= 0) & ~self.dense  # dense channels: count 0 -> IDENTITY
        rows = np.where(tracked, self._row, 0)
        count = np.where(tracked, self._count[rows], 0) if self._count.size else np.zeros(n_ch, np.int64)
        # a table only once a channel's value set has stopped growing for stable_frames frames
        young = self.frames - self.grew < self.stable_frames
        return alph.from_sets(self._vals.reshape(-1), rows * width, count, self.dtype, max(self.n_samples, 1 << 16),
                              no_table=young)
