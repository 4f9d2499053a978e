"""Archive weight fit: the channel-minor accumulator gives exactly the sums of the plain per-channel loop."""

from __future__ import annotations

import numpy as np
import pytest

from neurolink.codecs.lossless import fit


def _reference(codes: np.ndarray, seg: int) -> np.ndarray:
    """The straightforward fit: per segment, every FIT_STEP-th row, per channel, features in order."""
    n_s, n_ch = codes.shape
    ext = np.concatenate([np.repeat(codes[:1], 3, axis=0), codes]).astype(np.float64)
    n_seg = max(1, -(-n_s // seg))
    out = np.empty((n_seg, n_ch, fit.N_COEF), np.int64)
    for s in range(n_seg):
        stats = np.zeros((fit.N_FEAT, fit.N_FEAT, n_ch))
        count = np.zeros(n_ch, np.int64)
        for t in range(s * seg, min(n_s, (s + 1) * seg), fit.FIT_STEP):
            r = t + 3
            for c in range(n_ch):
                left = (ext[r, c - 1], ext[r - 1, c - 1], ext[r - 2, c - 1]) if c else (0.0, 0.0, 0.0)
                f = (ext[r - 1, c], ext[r - 2, c], ext[r - 3, c], *left, 1.0, ext[r, c])
                for i in range(fit.N_FEAT):
                    for j in range(i, fit.N_FEAT):
                        stats[i, j, c] += f[i] * f[j]
                count[c] += 1
        fit.solve(stats, count, 0, n_ch, out[s])
    return out


@pytest.mark.parametrize("n_ch", [1, 4, 70])  # narrow (per-channel) and wide (vectorised) paths
@pytest.mark.parametrize("n_s,seg", [(5, 4096), (100, 4096), (230, 64)])
def test_fit_block_equals_the_per_channel_loop(n_ch, n_s, seg):
    rng = np.random.default_rng(n_ch * 1000 + n_s)
    codes = np.cumsum(rng.integers(-300, 300, (n_s, n_ch)), axis=0).astype(np.int64) + 2000
    assert np.array_equal(fit.fit_block(codes, seg), _reference(codes, seg))
