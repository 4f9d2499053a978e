"""Learned autoencoder coding: a small MLP trained on real recordings, run with onnxruntime at both ends.

Per channel and frame: the frame mean (closed-loop DPCM across frames, step ``step/2 * scale``) and
the detail, cut into 16-sample segments (the last edge-padded), divided by the channel scale (RMS of
first differences, encoder-side running estimate sent as float32 in keyframes), mapped by the ONNX
encoder to 8 bounded latents that are quantised with ``step`` and Rice-coded (one context per latent).
The receiver runs the ONNX decoder. Models: ``neurolink/codecs/models/ae_{encoder,decoder}.onnx``,
trained by ``scripts/train_autoencoder.py`` on locust trial 01 + ECoG (trial 02 held out). Frames of
one sample (1 kHz at 1 ms) carry no detail and code only the mean. One rate knob: ``step``
(latent units).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numba import njit

from neurolink.codecs.lossy._bitio import check_pos, get_signed, new_rice_state, put_signed
from neurolink.codecs.lossy._common import (
    MODELS_DIR,
    get_f32,
    get_means,
    need_bits,
    put_f32,
    put_means,
    quantise,
)
from neurolink.codecs.lossy._stream import LossyStreamCodec, check_number

SEG, LATENT = 16, 8
MEAN_FRACTION = 0.5
SCALE_ALPHA = 0.01  # EMA weight per frame of the encoder's scale estimate
_SESSIONS: dict[str, Any] = {}
_LOCK = threading.Lock()


def session(name: str) -> Any:
    """One shared single-threaded onnxruntime session per model file (loading costs ~10 ms)."""
    with _LOCK:
        if name not in _SESSIONS:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            _SESSIONS[name] = ort.InferenceSession(str(MODELS_DIR / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])
        return _SESSIONS[name]


def _segments(d: np.ndarray) -> np.ndarray:
    """(n_s, n_ch) detail -> (n_ch * n_seg, SEG) rows, the last segment edge-padded."""
    n_s, n_ch = d.shape
    n_seg = -(-n_s // SEG)
    pad = n_seg * SEG - n_s
    if pad:
        d = np.vstack([d, np.repeat(d[-1:], pad, axis=0)])
    return np.ascontiguousarray(d.T.reshape(n_ch * n_seg, SEG), dtype=np.float32)


def _unsegment(rows: np.ndarray, n_s: int, n_ch: int) -> np.ndarray:
    return rows.reshape(n_ch, -1)[:, :n_s].T.astype(np.float64)


@njit(cache=True)
def _put_latents(q, buf, pos, a, n):
    for r in range(q.shape[0]):
        for k in range(q.shape[1]):
            pos = put_signed(buf, pos, q[r, k], a, n, k)
    return pos


@njit(cache=True)
def _get_latents(buf, pos, rows, a, n):
    q = np.empty((rows, LATENT), np.int64)
    for r in range(rows):
        for k in range(LATENT):
            q[r, k], pos = get_signed(buf, pos, a, n, k)
    return q, pos


class Autoencoder(LossyStreamCodec):
    codec_id = "nl-ae"

    def __init__(self, step: float = 0.2, keyframe_interval: int = 100) -> None:
        self.step = check_number("step", step, 0.001, 100.0, "nl-ae")
        super().__init__(keyframe_interval)
        self._ms2: np.ndarray | None = None  # encoder: running mean square of first differences
        self._last: np.ndarray | None = None

    def _params(self) -> dict[str, Any]:
        return {"step": self.step}

    def reset(self) -> None:
        super().reset()
        self._ms2 = self._last = None

    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        self._prev = np.zeros(n_channels)
        self._a, self._n = new_rice_state(LATENT + n_channels)

    def _set_scale(self, scale: np.ndarray) -> None:
        self._scale = scale
        self._msteps = scale * self.step * MEAN_FRACTION

    def _update_scale(self, x: np.ndarray) -> None:
        """Encoder-only running estimate (it reaches the decoder only through keyframes)."""
        xx = x if self._last is None or self._last.shape[1] != x.shape[1] else np.vstack([self._last, x])
        self._last = x[-1:].copy()
        if xx.shape[0] < 2:
            return
        ms2 = np.mean(np.diff(xx, axis=0) ** 2, axis=0)
        if self._ms2 is None or self._ms2.size != ms2.size:
            self._ms2 = ms2
        else:
            self._ms2 += SCALE_ALPHA * (ms2 - self._ms2)

    def _encode_payload(self, x, buf, pos, key):
        n_s, n_ch = x.shape
        if key:
            if self._ms2 is None or self._ms2.size != n_ch:
                self._ms2 = None
                self._update_scale(x)
            est = self._ms2 if self._ms2 is not None else np.abs(x - x.mean(axis=0)).max(axis=0) ** 2
            scale = np.maximum(np.sqrt(est), np.maximum(np.abs(x).max(axis=0), 1e-30) * 1e-6)
            scale = np.asarray(scale, np.float32).astype(np.float64)
            pos = put_f32(buf, pos, scale)
            self._set_scale(scale)
        self._update_scale(x)
        m_rec, pos = put_means(x, buf, pos, self._msteps, self._prev, self._a, self._n, LATENT)
        if n_s > 1:
            z = session("ae_encoder").run(None, {"x": _segments((x - m_rec) / self._scale)})[0]
            pos = _put_latents(quantise(z.astype(np.float64), self.step), buf, pos, self._a, self._n)
        return x, pos

    def _decode_payload(self, buf, pos, n_s, n_ch, key):
        if key:
            scale, pos = get_f32(buf, pos, n_ch, "channel scale", positive=True)
            self._set_scale(scale)
        if not hasattr(self, "_scale"):
            raise ValueError("no keyframe scale")
        need_bits(buf, pos, n_ch * (1 + (LATENT * -(-n_s // SEG) if n_s > 1 else 0)))
        m_rec, pos = get_means(buf, pos, n_ch, self._msteps, self._prev, self._a, self._n, LATENT)
        check_pos(buf, pos)
        if n_s == 1:
            return m_rec[None, :].copy()
        rows = n_ch * -(-n_s // SEG)
        q, pos = _get_latents(buf, pos, rows, self._a, self._n)
        check_pos(buf, pos)
        zq = (q * self.step).astype(np.float32)
        d = session("ae_decoder").run(None, {"z": zq})[0]
        return _unsegment(d, n_s, n_ch) * self._scale + m_rec
