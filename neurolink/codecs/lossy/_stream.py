"""Shared frame layer of the lossy codecs: tiny headers, bounded keyframes, loss detection.

Every lossy payload is one bitstream. It starts with 1 keyframe bit and a 4-bit frame counter; a
keyframe adds dtype (3 bits), channels (16) and samples (16). Predicted frames reuse the shape of the
last keyframe, so a 1 ms frame pays 5 bits of framing instead of an 8-byte array header (at 20:1 a
60-sample frame has only ~6 bytes in total). Codecs that carry state across frames (DPCM, adaptive
Rice statistics) reset it at every keyframe, sent at least every ``keyframe_interval`` frames
(default 100 = 100 ms at 1 ms framing); after a lost frame the decoder raises
MissingReferenceError until the next keyframe, so loss costs at most one keyframe interval.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numba import njit

from neurolink.codecs.base import MAX_CHANNELS, Codec, as_2d, current_decode_limit
from neurolink.codecs.lossy._bitio import BAD, get_bits, put_bits
from neurolink.errors import CodecError, MissingReferenceError

_DTYPES = {"int16": 1, "float32": 2}
_CODES = {v: np.dtype(k) for k, v in _DTYPES.items()}
#: Largest magnitude a float input may have (quantiser indices must stay far inside 32 bits).
MAX_FLOAT = 1e7
MAX_FRAME_VALUES = 1 << 21  # samples x channels per frame (16 MB as float64): frames are short by design


@njit(cache=True)
def _finish(y, to_int16):
    """The decoded frame in its dtype, in one pass (numpy's isfinite + rint + clip + astype made three
    frame-sized float64 temporaries): (out32, out16, ok); ok False if y holds a non-finite value. y may be
    a transposed view (codecs that decode channel by channel): blocks of 16 channels keep both layouts'
    reads in L1."""
    n_s, n_ch = y.shape
    out16 = np.empty((n_s, n_ch) if to_int16 else (0, 0), np.int16)
    out32 = np.empty((0, 0) if to_int16 else (n_s, n_ch), np.float32)
    for c0 in range(0, n_ch, 16):
        c1 = min(c0 + 16, n_ch)
        for i in range(n_s):
            for c in range(c0, c1):
                v = y[i, c]
                if not np.isfinite(v):
                    return out32, out16, False
                if to_int16:
                    out16[i, c] = np.int16(min(max(np.rint(v), -32768.0), 32767.0))
                else:
                    out32[i, c] = np.float32(min(max(v, -3.0e38), 3.0e38))
    return out32, out16, True


def check_number(name: str, value: Any, lo: float, hi: float, codec_id: str, integer: bool = False) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise CodecError(f"{codec_id}: {name!r} must be {kind} in [{lo}, {hi}], got {value!r}")
    return int(value) if integer else float(value)


def check_flag(name: str, value: Any, codec_id: str) -> bool:
    if not isinstance(value, bool):
        raise CodecError(f"{codec_id}: {name!r} must be true or false, got {value!r}")
    return value


class LossyStreamCodec(Codec):
    """Base class: subclasses implement ``_encode_payload`` / ``_decode_payload`` on float64 (samples, channels)."""

    lossless = False
    streaming = True
    dtypes: ClassVar[tuple[str, ...]] = ("int16", "float32")
    #: keep the frame-sized work arrays (payload buffer, float64 copy of the input) across frames: 1 ms
    #: frames of 1024 channels at 30 kHz allocated ~1 MB of them per frame, which glibc gave back to the
    #: kernel and faulted in again (~350 page faults, hundreds of us, per frame). Only for subclasses
    #: whose kernels keep no reference to the input and write the payload buffer below the end position.
    _reuse_buffers: ClassVar[bool] = False

    def __init__(self, keyframe_interval: int = 100) -> None:
        self.keyframe_interval = check_number("keyframe_interval", keyframe_interval, 1, 100, self.codec_id, True)
        self._enc_shape: tuple[int, int, str] | None = None
        self._enc_count = 0  # frames since the keyframe (the keyframe interval)
        # the header's 4-bit frame counter runs on across keyframes: a lost keyframe (a forced one mid-interval
        # included) leaves the next frame's counter off by one, so the decoder can never take it for its successor
        self._enc_seq = 0
        self._dec_shape: tuple[int, int, np.dtype] | None = None
        self._dec_next = -1
        self._wbuf = np.zeros(0, np.uint8)  # _reuse_buffers: zero beyond the last payload's bytes
        self._xf = np.zeros((0, 0))

    # ---- subclass hooks -------------------------------------------------------------------------
    def _reset_state(self, n_samples: int, n_channels: int, encoder: bool) -> None:
        """Forget cross-frame state (called at every keyframe)."""

    def _encode_payload(self, x: np.ndarray, buf: np.ndarray, pos: int, key: bool) -> tuple[np.ndarray, int]:
        """Write the frame after the header at bit pos; return (reconstruction, end bit position)."""
        raise NotImplementedError

    def _decode_payload(self, buf: np.ndarray, pos: int, n_s: int, n_ch: int, key: bool) -> np.ndarray:
        """Decode the frame after the header; ValueError/IndexError -> CodecError.

        Jitted kernels must not raise (a raise in nopython code leaks its arrays): they return the
        ``_bitio`` error position and this method calls ``check_pos`` on it before using the result.
        """
        raise NotImplementedError

    def _max_bytes(self, n_s: int, n_ch: int) -> int:
        """Upper bound of the payload size (escape codes included)."""
        return 16 + n_s * n_ch * 8 + n_ch * 16

    # ---- public API -----------------------------------------------------------------------------
    @staticmethod
    def is_keyframe(blob: bytes | memoryview) -> bool:
        """True if the payload decodes on its own (the first header bit, MSB-first)."""
        return len(blob) > 0 and bool(blob[0] & 0x80)

    def reset(self) -> None:
        self._enc_shape = None
        self._dec_shape = None
        self._dec_next = -1

    def encode(self, x: np.ndarray) -> bytes:
        x = as_2d(x, self.codec_id, self.dtypes)
        if self._reuse_buffers:
            if self._xf.shape != x.shape:
                self._xf = np.empty(x.shape)
            xf = self._xf
            np.copyto(xf, x)
        else:
            xf = x.astype(np.float64)
        if x.dtype.kind == "f" and x.size and not (np.all(np.isfinite(xf)) and np.abs(xf).max() <= MAX_FLOAT):
            raise CodecError(f"{self.codec_id}: float input must be finite and within +-{MAX_FLOAT:g}")
        n_s, n_ch = x.shape
        if n_s > 0xFFFF or n_s * n_ch > MAX_FRAME_VALUES:
            raise CodecError(f"{self.codec_id}: frame of {n_s}x{n_ch} exceeds the frame limits "
                             f"(<= 65535 samples, <= {MAX_FRAME_VALUES} values): use shorter frames")
        shape = (n_s, n_ch, x.dtype.name)
        key = self._enc_shape != shape or self._enc_count % self.keyframe_interval == 0
        if key:
            self._enc_shape = shape
            self._enc_count = 0
            self._reset_state(n_s, n_ch, True)
        need = self._max_bytes(n_s, n_ch) + 8
        if not self._reuse_buffers:
            buf = np.zeros(need, np.uint8)
        else:
            if self._wbuf.size < need:
                self._wbuf = np.zeros(need, np.uint8)
            buf = self._wbuf
        pos = put_bits(buf, 0, (int(key) << 4) | (self._enc_seq & 15), 5)
        if key:
            pos = put_bits(buf, pos, _DTYPES[x.dtype.name], 3)
            pos = put_bits(buf, pos, n_ch, 16)
            pos = put_bits(buf, pos, n_s, 16)
        self._enc_count += 1
        self._enc_seq += 1
        if n_s > 0 and n_ch > 0:
            try:
                _rec, pos = self._encode_payload(xf, buf, pos, key)
            except BaseException:
                buf[:] = 0
                raise
        out = buf[: (pos + 7) >> 3].tobytes()
        if self._reuse_buffers:  # back to zeros for the next frame (the kernels write below the end position)
            buf[: min(buf.size, ((pos + 7) >> 3) + 8)] = 0
        return out

    def decode(self, blob: bytes) -> np.ndarray:
        buf = np.frombuffer(bytes(blob), np.uint8)
        head, pos = get_bits(buf, 0, 5)  # past the end: pos >= BAD (the readers never raise)
        key, count = bool(head >> 4), head & 15
        if key:
            code, pos = get_bits(buf, pos, 3)
            n_ch, pos = get_bits(buf, pos, 16)
            n_s, pos = get_bits(buf, pos, 16)
        if pos >= BAD:
            raise CodecError(f"{self.codec_id}: payload of {len(blob)} bytes is shorter than its header")
        if key:
            if code not in _CODES:
                raise CodecError(f"{self.codec_id}: unknown dtype code {code} in keyframe header at bit 5")
            # bounded allocation on hostile input: every channel costs at least one bit of payload (a frame of
            # 0 samples has none: the encoder sends its header alone, as for any channel count)
            if n_ch > MAX_CHANNELS or n_s * n_ch > MAX_FRAME_VALUES or (n_s > 0 and n_ch > 8 * len(blob)):
                raise CodecError(f"{self.codec_id}: keyframe claims {n_s}x{n_ch} samples, above the size limit")
            self._dec_shape = (n_s, n_ch, _CODES[code])
        elif self._dec_shape is None or count != self._dec_next:
            self._dec_shape = None  # a gap: everything until the next keyframe depends on the lost frame
            raise MissingReferenceError(f"{self.codec_id}: predicted frame {count} without its reference; waiting for a keyframe")
        n_s, n_ch, dtype = self._dec_shape
        limit = current_decode_limit()  # this call's frame size (decode_limit), before the state or output is allocated
        if n_s * n_ch * dtype.itemsize > limit:
            self._dec_shape = None
            raise CodecError(f"{self.codec_id}: {'keyframe' if key else 'frame'} of {n_s}x{n_ch} {dtype.name}, "
                             f"above the decode limit of {limit} bytes")
        if key:
            self._reset_state(n_s, n_ch, False)
        self._dec_next = (count + 1) & 15
        if n_s == 0 or n_ch == 0:
            y = np.zeros((n_s, n_ch))
        else:
            try:
                y = self._decode_payload(buf, pos, n_s, n_ch, key)
            except (ValueError, IndexError) as exc:
                self._dec_shape = None
                raise CodecError(f"{self.codec_id}: corrupt payload: {exc}") from None
        out32, out16, ok = _finish(np.asarray(y, np.float64), dtype == np.int16)  # any strides
        if not ok:
            self._dec_shape = None
            raise CodecError(f"{self.codec_id}: corrupt payload decodes to non-finite values")
        return out16 if dtype == np.int16 else out32

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, **self._params(), "keyframe_interval": self.keyframe_interval}

    def _params(self) -> dict[str, Any]:
        return {}
