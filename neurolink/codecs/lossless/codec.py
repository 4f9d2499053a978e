"""``nl-lossless``: neurolink's lossless codec (streaming 1 ms frames with keyframes, or archive blocks).

Payload (all modes) starts with one byte: bit7 = self-contained (keyframe or archive), bit6 =
archive, bits0-5 = frame counter mod 64 (streaming). Self-contained payloads continue with a
version/dtype byte, varint n_channels and the channel alphabets; every payload then has varint
n_samples and an MSB-first Rice bitstream (see docs/codecs-lossless.md).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from neurolink.codecs.base import CODE_DTYPES, DTYPE_CODES, MAX_CHANNELS, MAX_DECODED_BYTES, Codec, as_2d
from neurolink.codecs.lossless import alphabet as alph
from neurolink.codecs.lossless.bitio import bytes_consumed, flush_bits
from neurolink.codecs.lossless.predict import decode_block, encode_block, init_state
from neurolink.codecs.lossless.tracker import AlphabetTracker
from neurolink.codecs.lossless.varint import Reader, put_uvarint
from neurolink.errors import CodecError, MissingReferenceError

log = logging.getLogger(__name__)

VERSION = 1
KEY_BIT = 0x80
ARCHIVE_BIT = 0x40
COUNTER_MOD = 64
ESC_BITS = {"int16": 22, "int32": 38}
#: worst-case bits per sample (escape) -> output buffer bound
_WORST_BYTES = {"int16": 6, "int32": 8}


class _State:
    """Predictor + entropy-coder state of one direction of a stream (all int64 numpy arrays)."""

    def __init__(self, n_ch: int, dtype: np.dtype, alpha: alph.Alphabet) -> None:
        self.n_ch = n_ch
        self.dtype = dtype
        self.alpha = alpha
        self.hist, self.cost, self.rice = init_state(n_ch)

    def copy(self) -> _State:
        s = _State.__new__(_State)
        s.n_ch, s.dtype, s.alpha = self.n_ch, self.dtype, self.alpha
        s.hist, s.cost, s.rice = self.hist.copy(), self.cost.copy(), self.rice.copy()
        return s


class NlLossless(Codec):
    """Lossless codec for int16/int32 (samples, channels) arrays.

    Parameters
    ----------
    mode : "stream" (default) carries predictor and coder state across ``encode`` calls and emits a
        keyframe every ``keyframe_interval`` frames; "archive" makes every payload self-contained.
    keyframe_interval : frames between keyframes in stream mode (default 100 = 100 ms at 1 ms frames).
    """

    codec_id: ClassVar[str] = "nl-lossless"
    lossless: ClassVar[bool] = True
    dtypes: ClassVar[tuple[str, ...]] = ("int16", "int32")

    def __init__(self, mode: str = "stream", keyframe_interval: int = 100) -> None:
        if mode not in ("stream", "archive"):
            raise CodecError(f"nl-lossless: 'mode' must be 'stream' or 'archive', got {mode!r}")
        if not isinstance(keyframe_interval, int) or isinstance(keyframe_interval, bool) or not 1 <= keyframe_interval <= 100000:
            raise CodecError(f"nl-lossless: 'keyframe_interval' must be an int in [1, 100000], got {keyframe_interval!r}")
        self.mode = mode
        self.keyframe_interval = keyframe_interval
        self.reset()

    # numcodecs-style behaviour flags --------------------------------------------------------
    @property
    def streaming(self) -> bool:  # type: ignore[override]
        return self.mode == "stream"

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "mode": self.mode, "keyframe_interval": self.keyframe_interval}

    def reset(self) -> None:
        self._enc: _State | None = None
        self._tracker: AlphabetTracker | None = None
        self._counter = 0
        self._since_key = 0
        self._dec: _State | None = None
        self._dec_expected = -1

    @staticmethod
    def is_keyframe(blob: bytes | memoryview) -> bool:
        """True if the payload decodes on its own (stream keyframe or archive block)."""
        return len(blob) > 0 and bool(blob[0] & KEY_BIT)

    # encoding ---------------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> bytes:
        x = as_2d(x, self.codec_id, self.dtypes)
        n_s, n_ch = x.shape
        dt = x.dtype
        if self.mode == "archive":
            alpha = alph.detect_block(x)
            codes, _ = alph.to_codes(x, alpha)
            state = _State(n_ch, dt, alpha)
            return self._emit(KEY_BIT | ARCHIVE_BIT, True, codes, state)

        if self._enc is None or self._enc.n_ch != n_ch or self._enc.dtype != dt:
            self._tracker = AlphabetTracker(n_ch, dt, stable_frames=self.keyframe_interval)
            self._enc = None
        assert self._tracker is not None
        self._tracker.update(x)
        key = self._enc is None or self._since_key >= self.keyframe_interval
        codes = None
        if not key:
            codes, miss = alph.to_codes(x, self._enc.alpha)  # type: ignore[union-attr]
            key = bool(miss.any())  # escape: a value outside the alphabet forces a keyframe
        if key:
            self._enc = _State(n_ch, dt, self._tracker.alphabet())
            codes, miss = alph.to_codes(x, self._enc.alpha)
            if miss.any():  # cannot happen: the tracker has seen x
                raise CodecError("nl-lossless: internal error, alphabet misses keyframe values")
            self._since_key = 0
        self._since_key += 1
        b0 = (KEY_BIT if key else 0) | (self._counter % COUNTER_MOD)
        self._counter = (self._counter + 1) % COUNTER_MOD
        assert self._enc is not None and codes is not None
        return self._emit(b0, key, codes, self._enc)

    def _emit(self, b0: int, key: bool, codes: np.ndarray, st: _State) -> bytes:
        n_s, n_ch = codes.shape
        head = bytearray([b0])
        if key:
            head.append((VERSION << 4) | DTYPE_CODES[st.dtype.name])
            put_uvarint(head, n_ch)
            alph.pack(st.alpha, head)
        put_uvarint(head, n_s)
        out = np.empty(n_s * n_ch * _WORST_BYTES[st.dtype.name] + 16, np.uint8)
        ws = np.zeros(3, np.int64)
        if n_ch and n_s:
            encode_block(codes, st.hist, st.cost, st.rice, key, ESC_BITS[st.dtype.name], out, ws)
        nbytes = flush_bits(out, ws)
        return bytes(head) + out[:nbytes].tobytes()

    # decoding ---------------------------------------------------------------------------------
    def decode(self, blob: bytes) -> np.ndarray:
        blob = bytes(blob)
        cid = self.codec_id
        rd = Reader(blob, cid)
        b0 = rd.byte("flags")
        key = bool(b0 & KEY_BIT)
        archive = bool(b0 & ARCHIVE_BIT)
        if archive != (self.mode == "archive") or (archive and not key):
            raise CodecError(f"{cid}: payload flags 0x{b0:02x} at offset 0 do not match mode {self.mode!r}")
        counter = b0 & (COUNTER_MOD - 1)
        if key:
            vd = rd.byte("version/dtype")
            if vd >> 4 != VERSION or (vd & 15) not in (DTYPE_CODES["int16"], DTYPE_CODES["int32"]):
                raise CodecError(f"{cid}: unsupported version/dtype byte 0x{vd:02x} at offset 1")
            dt = CODE_DTYPES[vd & 15]
            n_ch = rd.uvarint("n_channels", MAX_CHANNELS)
            alpha = alph.unpack(rd, n_ch, dt)
            st = _State(n_ch, dt, alpha)
        else:
            if self._dec is None:
                raise MissingReferenceError(f"{cid}: predicted frame {counter} without a keyframe (waiting for one)")
            if counter != self._dec_expected:
                self._dec = None
                raise MissingReferenceError(
                    f"{cid}: frame counter {counter}, expected {self._dec_expected}: frame lost, waiting for a keyframe")
            st = self._dec.copy()
        n_s = rd.uvarint("n_samples", MAX_DECODED_BYTES // max(1, st.n_ch * st.dtype.itemsize))
        try:
            y = self._decode_body(blob, rd.pos, n_s, st, key)
        except CodecError:
            if not archive:
                self._dec = None  # state may be inconsistent: wait for the next keyframe
            raise
        if not archive:
            self._dec = st
            self._dec_expected = (counter + 1) % COUNTER_MOD
        return y

    def _decode_body(self, blob: bytes, pos: int, n_s: int, st: _State, key: bool) -> np.ndarray:
        buf = np.frombuffer(blob, np.uint8)[pos:]
        rs = np.zeros(4, np.int64)
        trivial = st.alpha.trivial
        codes = np.zeros((n_s, st.n_ch), st.dtype if trivial else np.int64)
        if n_s and st.n_ch:
            decode_block(buf, rs, codes, st.hist, st.cost, st.rice, key, ESC_BITS[st.dtype.name])
        used = bytes_consumed(rs)
        if used > buf.size:
            raise CodecError(f"{self.codec_id}: payload truncated: bitstream ends before {n_s}x{st.n_ch} samples")
        if used != buf.size:
            raise CodecError(f"{self.codec_id}: {buf.size - used} unexpected trailing bytes at offset {pos + used}")
        if trivial:
            return codes
        return alph.from_codes(codes, st.alpha, st.dtype, self.codec_id)
