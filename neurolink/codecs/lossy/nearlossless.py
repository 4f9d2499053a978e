"""Error-bounded near-lossless predictive coding: every sample within k LSB of the original.

Closed-loop DPCM (as JPEG-LS's near-lossless mode): the prediction is made from the *reconstruction*,
so quantisation errors never accumulate and the bound holds sample by sample. The residual is
quantised with step 2k+1 and Rice-coded with per-channel adaptive parameters. The only rate knob is
``k``: k = 0 is lossless for int16; for float32 input the bound is k + 0.5 input units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import check_pos, get_signed, new_rice_state, put_signed
from neurolink.codecs.lossy._common import need_bits
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number


@njit(cache=True)
def _encode(x, buf, pos, step, prev, a, n):
    rec = np.empty_like(x)
    for c in range(x.shape[1]):
        p = prev[c]
        for i in range(x.shape[0]):
            q = int(np.rint((x[i, c] - p) / step))
            p = p + q * step
            rec[i, c] = p
            pos = put_signed(buf, pos, q, a, n, c)
        prev[c] = p
    return rec, pos


@njit(cache=True)
def _decode(buf, pos, n_s, n_ch, step, prev, a, n):
    y = np.empty((n_s, n_ch))
    for c in range(n_ch):
        p = prev[c]
        for i in range(n_s):
            q, pos = get_signed(buf, pos, a, n, c)
            p = p + q * step
            y[i, c] = p
        prev[c] = p
    return y, pos  # pos >= BAD: truncated (the readers never raise; see _bitio)


class NearLossless(LossyStreamCodec):
    codec_id = "nl-nearlossless"

    def __init__(self, k: int = 4, keyframe_interval: int = 100) -> None:
        self.k = check_number("k", k, 0, 4096, "nl-nearlossless", integer=True)
        super().__init__(keyframe_interval)

    def _params(self) -> dict[str, Any]:
        return {"k": self.k}

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._a, self._n = new_rice_state(n_channels, 16 * (2 * self.k + 1) if self.k == 0 else 16)

    def _encode_payload(self, x, buf, pos, key):
        return _encode(x, buf, pos, float(2 * self.k + 1), self._prev, self._a, self._n)

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        need_bits(buf, pos, n_s * n_ch)  # the kernel does not stop at the end: bound its work by the payload
        y, pos = _decode(buf, pos, n_s, n_ch, float(2 * self.k + 1), self._prev, self._a, self._n)
        check_pos(buf, pos)
        return y
