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
from neurolink.codecs.lossless import fit, lpc
from neurolink.codecs.lossless.bitio import bytes_consumed, flush_bits
from neurolink.codecs.lossless.predict import decode_block, encode_block, init_state
from neurolink.codecs.lossless.tracker import AlphabetTracker
from neurolink.codecs.lossless.varint import Reader, put_uvarint
from neurolink.errors import CodecError, MissingReferenceError

log = logging.getLogger(__name__)

VERSION = 2  # written; version 1 payloads (fixed predictors, see predict.py) still decode
KEY_BIT = 0x80
ARCHIVE_BIT = 0x40
SAME_N_BIT = 0x40  # v2 predicted frames: n_samples equals the previous frame's (field omitted)
ARCHIVE_SEG = 4096  # rows per weight set in archive payloads
KIND_SELECT, KIND_LPC = 0, 1  # v2 predictor kinds (see docs/codecs-lossless.md)
#: stream keyframes send LPC weights only when a keyframe interval holds at least this many rows
#: per channel (the weights cost ~14 bytes per channel; 1 kHz ECoG in 1-sample frames does better
#: with the backward-adaptive fixed predictors of v1, which cost nothing)
LPC_MIN_ROWS = 1000
#: archive: the predictor kind is chosen by trial-encoding this many samples of the block both ways
ARCHIVE_TRIAL_SAMPLES = 32768
COUNTER_MOD = 64
ESC_BITS = {"int16": 22, "int32": 38}
#: worst-case bits per sample (escape) -> output buffer bound
_WORST_BYTES = {"int16": 6, "int32": 8}
#: per-dtype constants looked up once per frame (dtype.name and np.iinfo are slow on the hot path)
_DT = {np.dtype(n): (ESC_BITS[n], _WORST_BYTES[n], int(np.iinfo(n).min), int(np.iinfo(n).max), DTYPE_CODES[n])
       for n in ("int16", "int32")}


class _State:
    """Predictor + entropy-coder state of one direction of a stream (all int64 numpy arrays)."""

    def __init__(self, n_ch: int, dtype: np.dtype, alpha: alph.Alphabet) -> None:
        self.n_ch = n_ch
        self.dtype = dtype
        self.alpha = alpha
        self.hist, self.cost, self.rice = init_state(n_ch)
        self.framing = 1  # 2: inside a v2 stream (kind SELECT): short predicted-frame headers
        self.last_n = -1

    def copy(self) -> _State:
        s = _State.__new__(_State)
        s.n_ch, s.dtype, s.alpha = self.n_ch, self.dtype, self.alpha
        s.framing, s.last_n = self.framing, self.last_n
        s.hist, s.cost, s.rice = self.hist.copy(), self.cost.copy(), self.rice.copy()
        return s


def _check_bits(cid: str, n_s: int, n_ch: int, n_bytes: int, pos: int) -> None:
    """Every Rice code is at least one bit: a header claiming more samples than the bitstream has
    bits is rejected before anything is allocated (a 10-byte hostile payload cannot ask for 256 MB)."""
    if n_s * n_ch > 8 * n_bytes:
        raise CodecError(f"{cid}: payload truncated: {n_s}x{n_ch} samples need more than the {n_bytes} bytes at offset {pos}")


def _k_from(e: np.ndarray) -> np.ndarray:
    """Initial Rice parameter per channel from the mean |residual| of a keyframe's first rows."""
    rows = e[1:9]
    if rows.shape[0] == 0:
        return np.full(e.shape[1], 4, np.int64)
    m = np.abs(rows).mean(axis=0)
    return np.clip(np.ceil(np.log2(m + 1)), 0, lpc.MAX_K).astype(np.int64)


class _State2:
    """v2 state of one stream direction: history, Rice contexts, predictor weights."""

    version = 2

    def __init__(self, n_ch: int, dtype: np.dtype, alpha: alph.Alphabet, coefs: np.ndarray) -> None:
        self.n_ch = n_ch
        self.dtype = dtype
        self.alpha = alpha
        self.coefs = coefs  # (n_seg, n_ch, 6)
        self.hist = np.zeros((n_ch, 3), np.int64)
        self.rice = np.zeros((n_ch, 3), np.int64)
        self.last_n = -1
        self.seg = 1
        self.erow = np.empty(n_ch, np.int64)  # decoder scratch: one row of residuals

    def copy(self) -> _State2:
        s = _State2.__new__(_State2)
        s.n_ch, s.dtype, s.alpha, s.coefs, s.last_n = self.n_ch, self.dtype, self.alpha, self.coefs, self.last_n
        s.seg, s.erow = self.seg, self.erow
        s.hist, s.rice = self.hist.copy(), self.rice.copy()
        return s


class _Fitter:
    """Streaming encoder's running least-squares statistics; weights for the next keyframe are solved
    a slice of channels per frame so no single frame pays for all of them."""

    def __init__(self, n_ch: int, interval: int) -> None:
        self.stats = np.zeros((n_ch, fit.N_FEAT, fit.N_FEAT), np.float64)
        self.count = np.zeros(n_ch, np.int64)
        self.pending = np.zeros((n_ch, lpc.N_COEF), np.int64)
        fit.solve(self.stats, self.count, 0, n_ch, self.pending)  # defaults
        self.slice = -(-n_ch // max(1, interval // 2)) if n_ch else 0
        self.next_c = 0

    def observe(self, codes: np.ndarray, hist: np.ndarray, full: bool) -> None:
        n_s, n_ch = codes.shape
        if n_s == 0 or n_ch == 0:
            return
        rows = n_s if full else max(1, min(n_s, 2048 // n_ch))
        step = max(1, n_s // rows)
        fit.accumulate_frame(codes, hist, min(3, n_s) if full else n_s - 1 - step * (rows - 1), step, self.stats, self.count)
        if full:
            fit.solve(self.stats, self.count, 0, n_ch, self.pending)
            self.next_c = 0
        elif self.next_c < n_ch:
            stop = min(n_ch, self.next_c + self.slice)
            fit.solve(self.stats, self.count, self.next_c, stop, self.pending)
            # exponential memory: a channel's statistics count half once its weights are solved
            self.stats[self.next_c : stop] *= 0.5
            self.count[self.next_c : stop] //= 2
            self.next_c = stop

    def take(self) -> np.ndarray:
        """Weights for a keyframe (solving restarts with the first slice of channels)."""
        self.next_c = 0
        return self.pending.copy()


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
        self._enc: _State | _State2 | None = None
        self._fitter: _Fitter | None = None
        self._tracker: AlphabetTracker | None = None
        self._counter = 0
        self._since_key = 0
        self._dec: _State | _State2 | None = None
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
            return self._emit2(KEY_BIT | ARCHIVE_BIT, True, codes, self._archive_state(codes, alpha, dt), ARCHIVE_SEG)

        if self._enc is None or self._enc.n_ch != n_ch or self._enc.dtype != dt:
            self._tracker = AlphabetTracker(n_ch, dt, stable_frames=self.keyframe_interval)
            self._fitter = _Fitter(n_ch, self.keyframe_interval)
            self._enc = None
        assert self._tracker is not None and self._fitter is not None
        self._tracker.update(x)
        key = self._enc is None or self._since_key >= self.keyframe_interval
        codes = None  # type: ignore[assignment]
        if not key:
            codes, miss = alph.to_codes(x, self._enc.alpha)  # type: ignore[union-attr]
            key = bool(miss.any())  # escape: a value outside the alphabet forces a keyframe
        first = self._enc is None
        if key:
            alpha = self._tracker.alphabet()
            codes, miss = alph.to_codes(x, alpha)
            if miss.any():  # cannot happen: the tracker has seen x
                raise CodecError("nl-lossless: internal error, alphabet misses keyframe values")
            if first or (self._enc is not None and self._enc.alpha is not alpha and not alpha.trivial):
                self._fitter.observe(codes, np.zeros((n_ch, 3), np.int64), full=True)
            else:
                self._fitter.observe(codes, self._enc.hist, full=False)  # type: ignore[union-attr]
            kinit = self._enc.rice[:, 2].copy() if isinstance(self._enc, _State2) else None
            coefs = self._fitter.take()[None]
            if n_s * self.keyframe_interval >= LPC_MIN_ROWS:
                self._enc = _State2(n_ch, dt, alpha, coefs)
                if kinit is not None:
                    self._enc.rice[:, 2] = kinit
            else:
                self._enc = _State(n_ch, dt, alpha)
                self._enc.framing = 2
            self._since_key = 0
        else:
            self._fitter.observe(codes, self._enc.hist, full=False)  # type: ignore[union-attr, arg-type]
        self._since_key += 1
        b0 = (KEY_BIT if key else 0) | (self._counter % COUNTER_MOD)
        self._counter = (self._counter + 1) % COUNTER_MOD
        assert self._enc is not None and codes is not None
        return self._emit2(b0, key, codes, self._enc, 0)

    def _archive_state(self, codes: np.ndarray, alpha: alph.Alphabet, dt: np.dtype) -> _State | _State2:
        """LPC or SELECT for an archive block: whichever codes a prefix of the block smaller."""
        n_s, n_ch = codes.shape
        sel_st = _State(n_ch, dt, alpha)
        sel_st.framing = 2
        if n_ch == 0 or n_s < 64:
            return sel_st
        n_pre = min(n_s, max(256, ARCHIVE_TRIAL_SAMPLES // n_ch))
        pre = codes[:n_pre]
        pre_coefs = fit.fit_block(pre, ARCHIVE_SEG)
        trial_lpc = self._emit2(KEY_BIT | ARCHIVE_BIT, True, pre, _State2(n_ch, dt, alpha, pre_coefs), ARCHIVE_SEG)
        trial_sel = self._emit2(KEY_BIT | ARCHIVE_BIT, True, pre, sel_st.copy(), ARCHIVE_SEG)
        # the weight table is paid once per ARCHIVE_SEG rows, not once per (short) trial prefix
        tab = lpc.put_varints(pre_coefs[:1].reshape(-1), np.empty(pre_coefs[0].size * 10 + 16, np.uint8), 0)
        lpc_cost = len(trial_lpc) - tab + tab * n_pre / min(n_s, ARCHIVE_SEG)
        if lpc_cost > len(trial_sel):
            return sel_st
        return _State2(n_ch, dt, alpha, fit.fit_block(codes, ARCHIVE_SEG))

    def _emit_select(self, b0: int, key: bool, codes: np.ndarray, st: _State) -> bytes:
        n_s, n_ch = codes.shape
        head = self._head(b0, key, n_s, st, KIND_SELECT)
        out = self._out_buffer(n_s * n_ch * _WORST_BYTES[st.dtype.name] + 16)
        ws = np.zeros(3, np.int64)
        if n_ch and n_s:
            encode_block(codes, st.hist, st.cost, st.rice, key, ESC_BITS[st.dtype.name], out, ws)
        nbytes = flush_bits(out, ws)
        st.last_n = n_s
        return bytes(head) + out[:nbytes].tobytes()

    def _head(self, b0: int, key: bool, n_s: int, st: _State | _State2, kind: int) -> bytearray:
        """v2 header: full on self-contained payloads, 1 byte on predicted frames of unchanged length."""
        if key:
            head = bytearray([b0, (VERSION << 4) | _DT[st.dtype][4]])
            put_uvarint(head, st.n_ch)
            alph.pack(st.alpha, head)
            put_uvarint(head, n_s)
            head.append(kind)
        elif n_s == st.last_n:
            head = bytearray([b0 | SAME_N_BIT])
        else:
            head = bytearray([b0])
            put_uvarint(head, n_s)
        return head

    def _emit2(self, b0: int, key: bool, codes: np.ndarray, st: _State | _State2, seg: int) -> bytes:
        n_s, n_ch = codes.shape
        if isinstance(st, _State):
            return self._emit_select(b0, key, codes, st)
        esc, worst, lo, hi, _ = _DT[st.dtype]
        e = self._res_buffer(n_s, n_ch)
        seg_eff = seg if seg else max(n_s, 1)
        head = self._head(b0, key, n_s, st, KIND_LPC)
        if key:
            put_uvarint(head, seg)
            lpc.residuals(codes, st.hist, st.coefs, seg_eff, True, lo, hi, e)
            if not st.rice[:, 2].any():
                st.rice[:, 2] = _k_from(e)
            kinit = np.minimum(st.rice[:, 2], lpc.MAX_K)
            lpc.init_rice(st.rice, kinit)
            tab = self._tab_buffer(st.coefs.size * 10 + n_ch + 16)
            pos = lpc.put_varints(st.coefs.reshape(-1), tab, 0)
            tab[pos : pos + n_ch] = kinit
            head += tab[: pos + n_ch].tobytes()
        else:
            lpc.residuals(codes, st.hist, st.coefs, seg_eff, False, lo, hi, e)
        st.last_n = n_s
        out = self._out_buffer(n_s * n_ch * worst + 16)
        nbytes = lpc.rice_encode(e, st.rice, key, esc, out) if n_s and n_ch else 0
        return bytes(head) + out[:nbytes].tobytes()

    def _tab_buffer(self, size: int) -> np.ndarray:
        if self.mode == "archive":
            return np.empty(size, np.uint8)
        buf = getattr(self, "_tab", None)
        if buf is None or buf.size < size:
            buf = np.empty(size, np.uint8)
            self._tab = buf
        return buf

    def _res_buffer(self, n_s: int, n_ch: int) -> np.ndarray:
        """Residual scratch (stream mode reuses it: fresh pages cost more than the arithmetic)."""
        if self.mode == "archive":
            return np.empty((n_s, n_ch), np.int64)
        buf = getattr(self, "_res", None)
        if buf is None or buf.size < n_s * n_ch:
            buf = np.empty(max(n_s * n_ch, 1 << 15), np.int64)
            self._res = buf
        return buf[: n_s * n_ch].reshape(n_s, n_ch)

    def _out_buffer(self, size: int) -> np.ndarray:
        """Stream mode reuses one scratch buffer (no per-frame allocation of the worst-case size);
        archive mode allocates, because Zarr may call one codec instance from several threads."""
        if self.mode == "archive":
            return np.empty(size, np.uint8)
        buf = getattr(self, "_scratch", None)
        if buf is None or buf.size < size:
            buf = np.empty(max(size, 1 << 16), np.uint8)
            self._scratch = buf
        return buf

    # decoding ---------------------------------------------------------------------------------
    def decode(self, blob: bytes) -> np.ndarray:
        blob = bytes(blob)
        cid = self.codec_id
        rd = Reader(blob, cid)
        b0 = rd.byte("flags")
        key = bool(b0 & KEY_BIT)
        counter = b0 & (COUNTER_MOD - 1)
        if key:
            archive = bool(b0 & ARCHIVE_BIT)
            if archive != (self.mode == "archive"):
                raise CodecError(f"{cid}: payload flags 0x{b0:02x} at offset 0 do not match mode {self.mode!r}")
            vd = rd.byte("version/dtype")
            if vd >> 4 not in (1, 2) or (vd & 15) not in (DTYPE_CODES["int16"], DTYPE_CODES["int32"]):
                raise CodecError(f"{cid}: unsupported version/dtype byte 0x{vd:02x} at offset 1")
            dt = CODE_DTYPES[vd & 15]
            n_ch = rd.uvarint("n_channels", MAX_CHANNELS)
            alpha = alph.unpack(rd, n_ch, dt)
            st: _State | _State2 = _State(n_ch, dt, alpha) if vd >> 4 == 1 else _State2(n_ch, dt, alpha, np.zeros(0, np.int64))
        else:
            archive = False
            if self.mode == "archive":
                raise CodecError(f"{cid}: payload flags 0x{b0:02x} at offset 0 do not match mode 'archive'")
            if self._dec is None:
                raise MissingReferenceError(f"{cid}: predicted frame {counter} without a keyframe (waiting for one)")
            if counter != self._dec_expected:
                self._dec = None
                raise MissingReferenceError(
                    f"{cid}: frame counter {counter}, expected {self._dec_expected}: frame lost, waiting for a keyframe")
            st = self._dec.copy()
            if isinstance(st, _State) and st.framing == 1 and b0 & ARCHIVE_BIT:
                raise CodecError(f"{cid}: payload flags 0x{b0:02x} at offset 0 do not match mode {self.mode!r}")
        try:
            if isinstance(st, _State2) or st.framing == 2:
                y, st = self._decode_v2(blob, rd, b0, key, st)
            else:
                n_s = rd.uvarint("n_samples", MAX_DECODED_BYTES // max(1, st.n_ch * st.dtype.itemsize))
                y = self._decode_body(blob, rd.pos, n_s, st, key)
        except CodecError:
            if not archive:
                self._dec = None  # state may be inconsistent: wait for the next keyframe
            raise
        if not archive:
            self._dec = st
            self._dec_expected = (counter + 1) % COUNTER_MOD
        return y

    def _decode_v2(self, blob: bytes, rd: Reader, b0: int, key: bool,
                   st: _State | _State2) -> tuple[np.ndarray, _State | _State2]:
        cid = self.codec_id
        n_ch = st.n_ch
        limit = MAX_DECODED_BYTES // max(1, n_ch * st.dtype.itemsize)
        if not key and b0 & SAME_N_BIT:
            n_s = st.last_n
        else:
            n_s = rd.uvarint("n_samples", limit)
        buf = np.frombuffer(blob, np.uint8)
        if key:
            kind = rd.byte("kind")
            if kind not in (KIND_SELECT, KIND_LPC):
                raise CodecError(f"{cid}: unknown predictor kind {kind} at offset {rd.pos - 1}")
            if kind == KIND_SELECT:
                st = _State(n_ch, st.dtype, st.alpha)
                st.framing = 2
        if isinstance(st, _State):
            y = self._decode_body(blob, rd.pos, n_s, st, key)
            st.last_n = n_s
            return y, st
        if key:
            seg = rd.uvarint("segment", limit)
            n_seg = -(-n_s // seg) if seg else 1
            n_seg = max(n_seg, 1)
            n_vals = n_seg * n_ch * lpc.N_COEF
            if n_vals + n_ch > len(blob) - rd.pos:
                raise CodecError(f"{cid}: payload truncated in field 'weights' at offset {rd.pos}")
            vals = np.empty(n_vals, np.int64)
            pos = lpc.get_varints(buf, rd.pos, vals)
            if pos < 0 or pos + n_ch > len(blob):
                raise CodecError(f"{cid}: payload truncated or bad varint in field 'weights' at offset {rd.pos}")
            coefs = vals.reshape(n_seg, n_ch, lpc.N_COEF)
            if n_vals and (np.abs(coefs[..., : lpc.N_W]).max() >= lpc.MAX_W or np.abs(coefs[..., lpc.N_W]).max() >= lpc.MAX_BIAS):
                raise CodecError(f"{cid}: predictor weight out of range in field 'weights' at offset {rd.pos}")
            kinit = buf[pos : pos + n_ch].astype(np.int64)
            if n_ch and kinit.max() > lpc.MAX_K:
                raise CodecError(f"{cid}: Rice parameter {int(kinit.max())} > {lpc.MAX_K} at offset {pos}")
            lpc.init_rice(st.rice, kinit)
            st.coefs = coefs
            st.seg = seg if seg else max(n_s, 1)
            pos += n_ch
        else:
            pos = rd.pos
            st.seg = max(n_s, 1)
            if st.coefs.shape[0] != 1:
                raise CodecError(f"{cid}: internal error, predicted frame after a segmented keyframe")
        st.last_n = n_s
        body = buf[pos:]
        _check_bits(cid, n_s, n_ch, body.size, pos)
        esc, _, lo, hi, _ = _DT[st.dtype]
        trivial = st.alpha.trivial
        codes = np.empty((n_s, n_ch), st.dtype if trivial else np.int64)
        rs = np.zeros(4, np.int64)
        if n_s and n_ch:
            lpc.decode_block(body, rs, codes, st.hist, st.coefs, st.seg, st.rice, key, esc, lo, hi, st.erow)
        if rs[3] >= 1 << 20:
            raise CodecError(f"{cid}: corrupt payload, decoded value out of the {st.dtype.name} range")
        used = bytes_consumed(rs)
        if used > body.size:
            raise CodecError(f"{cid}: payload truncated: bitstream ends before {n_s}x{n_ch} samples")
        if used != body.size:
            raise CodecError(f"{cid}: {body.size - used} unexpected trailing bytes at offset {pos + used}")
        if trivial:
            return codes, st
        return alph.from_codes(codes, st.alpha, st.dtype, cid), st

    def _decode_body(self, blob: bytes, pos: int, n_s: int, st: _State, key: bool) -> np.ndarray:
        buf = np.frombuffer(blob, np.uint8)[pos:]
        _check_bits(self.codec_id, n_s, st.n_ch, buf.size, pos)
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
