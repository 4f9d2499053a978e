"""Streaming alphabet learning: which channels' values sit on a sparse grid, learned from frames seen.

Channels whose values ever differ by 1 are *dense* and stop being tracked (real broadband data
becomes dense within a frame or two, so the fast path pays nothing). For the others the union of
values seen so far is kept; at each keyframe :meth:`alphabet` turns it into an alphabet, and a later
value outside it makes the encoder emit a keyframe (the escape). A value *table* is only offered once
the channel's set of values has stopped growing for ``stable_frames`` frames, so a channel still
exploring its range does not turn every frame into a keyframe.
"""

from __future__ import annotations

import numpy as np

from neurolink.codecs.lossless import alphabet as alph


class AlphabetTracker:
    def __init__(self, n_ch: int, dtype: np.dtype, stable_frames: int = 100) -> None:
        self.dtype = dtype
        self.stable_frames = stable_frames
        self.frames = 0
        self.grew = np.zeros(n_ch, np.int64)  # frame index of the last new value per channel
        self.dense = np.zeros(n_ch, np.bool_)
        self.seen: dict[int, np.ndarray] = {}
        self.n_samples = 0
        self._identity: alph.Alphabet | None = None  # shared, never mutated
        self.all_dense = bool(self.dense.all())  # cached: checked on every frame, and dense only grows

    def update(self, x: np.ndarray) -> None:
        self.n_samples += x.shape[0]
        self.frames += 1
        if self.all_dense or x.shape[0] == 0:
            return
        s = np.sort(x, axis=0)
        if x.shape[0] > 1:
            d = np.diff(s.astype(np.int64), axis=0)
            d[d == 0] = np.iinfo(np.int64).max
            self.dense |= d.min(axis=0) == 1
        for c in np.flatnonzero(~self.dense):
            prev = self.seen.get(int(c))
            u = np.unique(s[:, c]) if prev is None else np.union1d(prev, s[:, c])
            if u.size > alph.MAX_TABLE or (u.size > 1 and np.diff(u.astype(np.int64)).min() == 1):
                self.dense[c] = True
                self.seen.pop(int(c), None)
            else:
                if prev is None or u.size != prev.size:
                    self.grew[c] = self.frames
                self.seen[int(c)] = u
        for c in np.flatnonzero(self.dense):
            self.seen.pop(int(c), None)
        self.all_dense = bool(self.dense.all())

    def alphabet(self) -> alph.Alphabet:
        n_ch = self.dense.size
        if self.all_dense:  # the common case on real data: nothing to learn, keep keyframes cheap
            if self._identity is None:
                self._identity = alph.Alphabet.identity(n_ch)
            return self._identity
        uniques = [self.seen.get(c, np.zeros(0, self.dtype)) for c in range(n_ch)]
        # dense channels: empty unique list -> IDENTITY
        alpha = alph.detect(uniques, self.dtype, max(self.n_samples, 1 << 16))
        young = (alpha.mode == alph.TABLE) & (self.frames - self.grew < self.stable_frames)
        if young.any():
            for c in np.flatnonzero(young):
                uniques[c] = np.zeros(0, self.dtype)
            alpha = alph.detect(uniques, self.dtype, max(self.n_samples, 1 << 16))
        return alpha
