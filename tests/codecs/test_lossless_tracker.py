"""nl-lossless stream mode: the alphabet tracker's numba kernel learns exactly what the plain numpy
reference learns (dense flags, value sets, growth), frame by frame, so payloads are unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.codecs import get_codec
from neurolink.codecs.lossless import alphabet as alph
from neurolink.codecs.lossless.tracker import AlphabetTracker


def _reference_detect(uniques: list[np.ndarray], dtype: np.dtype, n_samples: int) -> alph.Alphabet:
    """alphabet.detect as it was (pure numpy, per channel): the decisions the numba pass must keep."""
    n_ch = len(uniques)
    alpha = alph.Alphabet.identity(n_ch)
    tabs: list[np.ndarray] = []
    start = 0
    for c, u in enumerate(uniques):
        if u.size < 2:
            if u.size == 1:
                alpha.mode[c] = alph.AFFINE
                alpha.offset[c] = int(u[0])
            continue
        d = np.diff(u.astype(np.int64))
        dmin = int(d.min())
        if dmin < 2:
            continue
        g = int(np.gcd.reduce(d))
        if g > 1:
            alpha.mode[c], alpha.offset[c], alpha.scale[c] = alph.AFFINE, int(u[0]), g
        elif dtype == np.int16 and u.size <= alph.MAX_TABLE and n_samples * np.log2(dmin) > 16 * u.size:
            alpha.mode[c], alpha.tab_start[c], alpha.tab_len[c] = alph.TABLE, start, u.size
            tabs.append(u.astype(np.int64))
            start += u.size
    if tabs:
        alpha.tables = np.concatenate(tabs)
    return alpha


class _Reference:
    """The tracker as it was (a sorted set per channel, merged with np.union1d every frame)."""

    def __init__(self, n_ch: int) -> None:
        self.frames = 0
        self.grew = np.zeros(n_ch, np.int64)
        self.dense = np.zeros(n_ch, np.bool_)
        self.seen: dict[int, np.ndarray] = {}

    def update(self, x: np.ndarray) -> None:
        self.frames += 1
        if self.dense.all() or x.shape[0] == 0:
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

    def alphabet(self, dtype: type, n_samples: int, stable: int = 100) -> alph.Alphabet:
        n_ch = self.dense.size
        uniques = [self.seen.get(c, np.zeros(0, dtype)) for c in range(n_ch)]
        alpha = _reference_detect(uniques, np.dtype(dtype), max(n_samples, 1 << 16))
        young = (alpha.mode == alph.TABLE) & (self.frames - self.grew < stable)
        if young.any():
            for c in np.flatnonzero(young):
                uniques[c] = np.zeros(0, dtype)
            alpha = _reference_detect(uniques, np.dtype(dtype), max(n_samples, 1 << 16))
        return alpha


def _stream(seed: int, n_ch: int, dtype: type, kinds: list[str], frames: int, rows: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    out = []
    for i in range(frames):
        n = rows[i % len(rows)]
        x = np.empty((n, n_ch), np.int64)
        for c in range(n_ch):
            k = kinds[c % len(kinds)]
            if k == "dense":
                x[:, c] = rng.integers(-300, 300, n)
            elif k == "grid4":  # an ADC with two unused low bits
                x[:, c] = 4 * rng.integers(-200, 200, n) + 2
            elif k == "wide_grid":  # more distinct grid values than a table may hold
                x[:, c] = 8 * rng.integers(-3000, 3000, n)
            elif k == "dead":
                x[:, c] = 0
            elif k == "rail":  # a grid that hits the rails now and then
                x[:, c] = np.where(rng.random(n) < 0.1, info.max, 16 * rng.integers(-50, 50, n))
            elif k == "late_step":  # a grid until a value one step off shows up
                x[:, c] = 2 * rng.integers(0, 40, n) + (1 if i > frames // 2 and rng.random() < 0.2 else 0)
            elif k == "small_table":  # a few irregular levels: stops growing early, becomes a TABLE
                x[:, c] = np.array([-900, -317, -40, 0, 77, 301, 1200, 5003])[rng.integers(0, 8, n)]
            else:  # "table": a rescaled 10-bit ADC (no common step)
                x[:, c] = np.round(rng.integers(0, 1024, n) * 65535 / 1023).astype(np.int64) - 32768
        out.append(np.clip(x, info.min, info.max).astype(dtype))
    return out


KINDS = ["dense", "grid4", "wide_grid", "dead", "rail", "late_step", "table", "small_table"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n_ch=st.integers(1, 9), wide=st.booleans(),
       kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=5),
       rows=st.lists(st.integers(0, 40), min_size=1, max_size=4))
def test_tracker_matches_the_reference_frame_by_frame(seed, n_ch, wide, kinds, rows) -> None:
    dtype = np.int32 if wide else np.int16
    frames = _stream(seed, n_ch, dtype, kinds, 60, rows)
    ref, new = _Reference(n_ch), AlphabetTracker(n_ch, np.dtype(dtype), stable_frames=20)
    n_samples = 0
    for i, x in enumerate(frames):
        ref.update(x)
        new.update(x)
        n_samples += x.shape[0]
        if i % 7 == 0 or i == len(frames) - 1:  # the alphabet a keyframe would carry
            want, got = ref.alphabet(dtype, n_samples, 20), new.alphabet()
            for f in ("mode", "offset", "scale", "tab_start", "tab_len", "tables"):
                assert np.array_equal(getattr(want, f), getattr(got, f)), f

        assert np.array_equal(ref.dense, new.dense)
        assert np.array_equal(ref.grew, new.grew)
        for c in range(n_ch):
            want = ref.seen.get(c, np.zeros(0, dtype))
            got = new.values(c)
            assert got.dtype == dtype and np.array_equal(want, got), c


def test_grid_streams_round_trip_and_learn_their_grid() -> None:
    frames = _stream(3, 12, np.int16, ["grid4", "dead", "table", "rail", "dense"], 400, [30])
    enc, dec = get_codec({"id": "nl-lossless", "mode": "stream"}), get_codec({"id": "nl-lossless", "mode": "stream"})
    sizes = []
    for x in frames:
        blob = enc.encode(x)
        sizes.append(len(blob))
        assert np.array_equal(dec.decode(blob), x)
    alpha = enc._tracker.alphabet()  # the grid channel is coded on its grid, not in raw counts
    assert alpha.mode[0] != alph.IDENTITY and alpha.scale[0] == 4


def test_a_table_holds_at_most_max_table_values() -> None:
    full = (np.arange(alph.MAX_TABLE, dtype=np.int64) * 2).astype(np.int32)[:, None]  # on a grid of 2
    t, ref = AlphabetTracker(1, np.dtype(np.int32)), _Reference(1)
    for x in (full, full[::-1].copy()):
        t.update(x)
        ref.update(x)
    assert not t.dense[0] and t.values(0).size == alph.MAX_TABLE  # exactly full: still tracked
    one_more = np.array([[2 * alph.MAX_TABLE]], np.int32)
    t.update(one_more)
    ref.update(one_more)
    assert t.dense[0] and ref.dense[0] and t.values(0).size == 0


def test_a_settled_table_channel_gets_the_same_table() -> None:
    frames = _stream(5, 6, np.int16, ["small_table", "grid4", "table", "dense"], 200, [30])
    ref, new = _Reference(6), AlphabetTracker(6, np.dtype(np.int16), stable_frames=20)
    for x in frames:
        ref.update(x)
        new.update(x)
    want, got = ref.alphabet(np.int16, 200 * 30, 20), new.alphabet()
    assert want.mode[0] == alph.TABLE and want.mode[4] == alph.TABLE and want.mode[1] == alph.AFFINE
    for f in ("mode", "offset", "scale", "tab_start", "tab_len", "tables"):
        assert np.array_equal(getattr(want, f), getattr(got, f)), f


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), wide=st.booleans(), n_samples=st.integers(1, 1 << 20),
       kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
def test_archive_detection_keeps_its_decisions(seed, wide, n_samples, kinds) -> None:
    # alphabet.detect (archive blocks, bench) now runs the same numba pass as the tracker
    dtype = np.int32 if wide else np.int16
    (x,) = _stream(seed, len(kinds), dtype, kinds, 1, [300])
    uniques = [np.unique(x[:, c]) if kinds[c] != "dense" else np.zeros(0, dtype) for c in range(len(kinds))]
    want, got = _reference_detect(uniques, np.dtype(dtype), n_samples), alph.detect(uniques, np.dtype(dtype), n_samples)
    for f in ("mode", "offset", "scale", "tab_start", "tab_len", "tables"):
        assert np.array_equal(getattr(want, f), getattr(got, f)), f
