"""``nl-lossless``: neurolink's lossless codec (streaming 1 ms frames with keyframes, or archive blocks).

Payload (all modes) starts with one byte: bit7 = self-contained (keyframe or archive), bit6 =
archive, bits0-5 = frame counter mod 64 (streaming). Self-contained payloads continue with a
version/dtype byte, varint n_channels and the channel alphabets; every payload then has varint
n_samples and an MSB-first Rice bitstream (see docs/codecs-lossless.md). Version 3 (LPC streams)
predicted frames have no header at all: a 0 bit, the codes, and a frame check in the last byte's
spare bits; their keyframes may name an earlier keyframe's weight set instead of resending it.
"""

from __future__ import annotations

import logging
import sys
import zlib
from typing import Any, ClassVar

import numpy as np

from neurolink.codecs.base import (
    CODE_DTYPES,
    DTYPE_CODES,
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    Codec,
    as_2d,
    check_decoded_size,
)
from neurolink.codecs.lossless import alphabet as alph
from neurolink.codecs.lossless import fit, lpc, prefilter
from neurolink.codecs.lossless.bitio import bytes_consumed, flush_bits
from neurolink.codecs.lossless.predict import decode_block, encode_block, init_state
from neurolink.codecs.lossless.tracker import AlphabetTracker
from neurolink.codecs.lossless.varint import Reader, put_svarint, put_uvarint
from neurolink.errors import CodecError, MissingReferenceError

log = logging.getLogger(__name__)

VERSION = 4  # written by LPC streams (bit-level framing, below); archive and SELECT streams write v2;
#: version 4 = version 3's bitstream with the predicted frames' index running on from the keyframe's 6-bit
#: counter instead of restarting at 0 (v3): a loss that swallows a keyframe exactly as many frames after
#: the decoder's keyframe as it is long (short intervals, or a keyframe forced by a request) left a v3 index
#: unchanged and the frame decoded against the wrong reference; v4 changes it for every gap of 1-15 frames.
#: v3 payloads still decode.
#: version 1 payloads (fixed predictors, see predict.py) still decode
VERSION_V2 = 2
KEY_BIT = 0x80
ARCHIVE_BIT = 0x40
SAME_N_BIT = 0x40  # v2 predicted frames: n_samples equals the previous frame's (field omitted)
ARCHIVE_SEG = 4096  # rows per weight set in archive payloads
KIND_SELECT, KIND_LPC = 0, 1  # v2 predictor kinds (see docs/codecs-lossless.md)
KIND_LPC_REF = 2  # v3: LPC with the weight set of an earlier (full) keyframe
#: v2 archive payloads: bit 4 of the kind byte = a long-term prefilter table follows it (prefilter.py)
KIND_PREFILTER = 0x10
#: v2 archive payloads: bit 5 of the kind byte = channels constant over the block are not coded; their
#: indices and code follow (after the prefilter table). A dead or railed channel cost ~1 bit a sample
#: (the Rice code's terminator), where FLAC's constant subframe costs nothing
KIND_CONST = 0x20
#: v3 streams send the weights in one keyframe of FULL_EVERY (1 s at the defaults); the others name
#: that weight set by its 24-bit signature: ~2.3 bits per 1 ms tetrode frame. A decoder that missed
#: the full keyframe waits for the next one.
FULL_EVERY = 10
#: v3 residual code per stream: the prefix code of huff.py (~0.03 bit/sample smaller on Gaussian-like
#: residuals, ~1 ns/sample slower to encode and decode) for frames of at most this many samples,
#: plain adaptive Rice above (wide frames are throughput-bound: 1024 ch x 30 would lose ~20 % speed)
PREFIX_MAX_SAMPLES = 4096
CODER_RICE, CODER_PREFIX = 0, 1
#: streaming fitter memory: a channel's statistics are scaled by this each time its weights are solved
FIT_DECAY = 0.9
#: stream keyframes send LPC weights only when a keyframe interval holds at least this many rows
#: per channel (the weights cost ~14 bytes per channel; 1 kHz ECoG in 1-sample frames does better
#: with the backward-adaptive fixed predictors of v1, which cost nothing)
LPC_MIN_ROWS = 1000
#: archive: the predictor kind is chosen by trial-encoding this many samples of the block both ways
ARCHIVE_TRIAL_SAMPLES = 32768
COUNTER_MOD = 64
#: v3/v4 keyframes: bit 3 of the kind byte = the stream runs a prefilter (prefilter.py); a full keyframe
#: carries its table after the weights, and the weight-set signature covers both
KIND_V3_PREFILTER = 0x08
#: streams plan their prefilter once, from their first rows (at least this many, ~0.14 s at 30 kHz), on
#: a planning thread (the fit and trial take 40-200 ms at 64-1024 channels: a stall of the live path),
#: and switch it on this many frames later: the switch frame does not depend on thread timing, so a
#: stream's bytes are reproducible. A plan not done by then is looked at again that many frames later
#: (never waited for)
PREFILTER_PLAN_ROWS = 4096
PREFILTER_SWITCH_FRAMES = 1000
#: archive: a planned prefilter is kept only if a trial encode of a prefix this long (rows, or samples
#: over all channels, whichever is more) comes out smaller with it
PREFILTER_TRIAL_ROWS = 1024
PREFILTER_TRIAL_SAMPLES = 1 << 16
#: ... by at least 1 % (a prefix is not the whole block: ECoG's estimate and trial both said yes, the block grew 0.17 %)
PREFILTER_MIN_GAIN = 0.99
#: v3 keyframes send the weights in units of 2^WEIGHT_DROP (Q12 -> Q8; the fit rounds them before it
#: computes the bias): the 4-channel table shrinks from ~64 to ~40 bytes, Q6 or Q7 gain nothing more
WEIGHT_DROP = 4
#: v3 predicted frames end with the frame index since the keyframe in the r in [CHECK_MIN, CHECK_MIN+7]
#: bits that fill the last byte (the padding of v2): a gap of < 2^CHECK_MIN frames is always
#: detected, longer gaps unless 2^r divides them (r varies frame to frame)
CHECK_MIN = 4
ESC_BITS = {"int16": 22, "int32": 38}
#: worst-case bits per sample (escape) -> output buffer bound
_WORST_BYTES = {"int16": 6, "int32": 8}
#: per-dtype constants looked up once per frame (dtype.name and np.iinfo are slow on the hot path)
_DT = {np.dtype(n): (ESC_BITS[n], _WORST_BYTES[n], int(np.iinfo(n).min), int(np.iinfo(n).max), DTYPE_CODES[n])
       for n in ("int16", "int32")}
_NO_COST = np.zeros((1, 2), np.int64)  # Rice-only frames keep no per-channel code costs
_NO_PFX = np.zeros(1, np.int64)
_NO_KB = np.zeros(1, np.uint8)  # decode_frame without Rice k bytes to read
_NO_COEFS = np.zeros(0, np.int64)  # a state whose weights are set later


#: archive payloads without their constant channels: (n_channels, alphabet of all channels, the constant
#: channels' indices, their code)
_Skip = tuple[int, alph.Alphabet, np.ndarray, np.ndarray]


def _constant_channels(codes: np.ndarray) -> np.ndarray | None:
    """Mask of the channels whose codes are all equal over the block (None if there is none)."""
    n_s, n_ch = codes.shape
    if n_s < 2 or n_ch == 0:
        return None
    const = (codes == codes[0]).all(axis=0)
    return const if const.any() else None


class _State:
    """Predictor + entropy-coder state of one direction of a stream (all int64 numpy arrays)."""

    def __init__(self, n_ch: int, dtype: np.dtype, alpha: alph.Alphabet) -> None:
        self.n_ch = n_ch
        self.dtype = dtype
        self.alpha = alpha
        self.trivial = alpha.trivial
        self.hist, self.cost, self.rice = init_state(n_ch)
        self.framing = 1  # 2: inside a v2 stream (kind SELECT): short predicted-frame headers
        self.last_n = -1

    def copy(self) -> _State:
        s = _State.__new__(_State)
        s.n_ch, s.dtype, s.alpha, s.trivial = self.n_ch, self.dtype, self.alpha, self.trivial
        s.framing, s.last_n = self.framing, self.last_n
        s.hist, s.cost, s.rice = self.hist.copy(), self.cost.copy(), self.rice.copy()
        return s


def _weight_sig(coefs: np.ndarray) -> int:
    """24-bit signature of a v3 weight set: a keyframe that reuses weights names them by it, so a
    decoder holding any other set (an earlier one, another stream's) waits instead of using it."""
    return zlib.crc32(np.ascontiguousarray(coefs, "<i8").data) & 0xFFFFFF  # buffer protocol: no copy


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
    erows: np.ndarray  # kernel scratch, set in __init__ or taken over from ``scratch``
    erow: np.ndarray
    prow: np.ndarray
    words: np.ndarray

    def __init__(self, n_ch: int, dtype: np.dtype, alpha: alph.Alphabet, coefs: np.ndarray,
                 trivial: bool | None = None, scratch: _State2 | None = None) -> None:
        """``trivial``: ``alpha.trivial`` if the caller has it; ``scratch``: a state of the same stream
        whose scratch buffers this one may take over (a keyframe replacing it)."""
        self.n_ch = n_ch
        self.dtype = dtype
        self.alpha = alpha
        self.trivial = alpha.trivial if trivial is None else trivial
        self.coefs = coefs  # (n_seg, n_ch, 7)
        self.hist = np.zeros((n_ch, 3), np.int64)
        self.rice = np.zeros((3, n_ch), np.int64)  # (A, N, k) per channel, field-major
        self.last_n = -1
        self.seg = 1
        if scratch is not None and scratch.n_ch == n_ch and scratch.dtype == dtype:
            self.erows, self.erow, self.prow, self.words = scratch.erows, scratch.erow, scratch.prow, scratch.words
            return
        # kernel scratch: one row of residuals (int16 data: int32, like the arithmetic), partial predictions
        self.erows = np.empty((2, n_ch), np.int32 if dtype == np.int16 else np.int64)  # decoder: 2 rows
        self.erow = self.erows[0]
        self.prow = np.empty(n_ch, np.int64)  # decoder: a row's predictions without the left neighbour
        self.words = np.empty((2, n_ch), np.int64)  # encoder: a row's code words and lengths

    @property
    def coefs(self) -> np.ndarray:
        return self._coefs

    @coefs.setter
    def coefs(self, coefs: np.ndarray) -> None:
        """The weights as sent (n_seg, n_ch, 7) and the kernels' layout (:func:`lpc.transpose`)."""
        self._coefs = coefs
        if coefs.ndim == 3:
            self.wt, self.wt32, self.fast32 = lpc.transpose(coefs, self.dtype)

    def share_weights(self, other: _State2) -> None:
        """Use ``other``'s weight set (a v3 keyframe naming an earlier set: no new transpose)."""
        self._coefs, self.wt, self.wt32, self.fast32 = other._coefs, other.wt, other.wt32, other.fast32

    def weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The weight set (as sent, and the kernels' layouts): kept apart from the state, which a
        decoder reuses for the next keyframe."""
        return self._coefs, self.wt, self.wt32, self.fast32

    def set_weights(self, w: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        self._coefs, self.wt, self.wt32, self.fast32 = w

    def _copy_into(self, s: _State2) -> None:
        s.n_ch, s.dtype, s.alpha, s.trivial, s.last_n = self.n_ch, self.dtype, self.alpha, self.trivial, self.last_n
        s._coefs, s.seg, s.erows, s.erow, s.prow, s.words = self._coefs, self.seg, self.erows, self.erow, self.prow, self.words
        if self._coefs.ndim == 3:
            s.wt, s.wt32, s.fast32 = self.wt, self.wt32, self.fast32
        s.hist, s.rice = self.hist.copy(), self.rice.copy()

    def copy(self) -> _State2:
        s = _State2.__new__(_State2)
        self._copy_into(s)
        return s


class _State3(_State2):
    """v3 (LPC, bit-level framing) stream state: adds the frame index since the keyframe."""

    version = 3

    def __init__(self, n_ch: int, dtype: np.dtype, alpha: alph.Alphabet, coefs: np.ndarray,
                 trivial: bool | None = None, scratch: _State2 | None = None) -> None:
        super().__init__(n_ch, dtype, alpha, coefs, trivial, scratch)
        self.index = 0
        self.run_index = True  # v4 (index runs on from the keyframe's counter); False: a v3 stream
        self.wsig = 0
        self.full = True
        self.coder = CODER_RICE
        self.pfx = np.ones(n_ch, np.int64)  # CODER_PREFIX: per channel 1 prefix code, 0 Rice
        self.wtab: bytes | np.ndarray | None = None  # encoder: the weights as sent (drop byte + varints), if packed ahead
        self.khead: tuple[int, bytes] = (-1, b"")  # encoder: (n_samples, keyframe header bytes 1.. up to it)
        self.sf: prefilter.StreamFilter | None = None  # the stream's prefilter (history reset at keyframes)

    def copy(self) -> _State3:
        s = _State3.__new__(_State3)
        self._copy_into(s)
        s.index, s.wsig, s.full, s.coder, s.pfx = self.index, self.wsig, self.full, self.coder, self.pfx
        s.run_index = self.run_index
        s.wtab, s.khead, s.sf = self.wtab, self.khead, self.sf
        return s


class _Fitter:
    """Streaming encoder's running least-squares statistics; weights for the next keyframe are solved
    a slice of channels per frame so no single frame pays for all of them."""

    def __init__(self, n_ch: int, interval: int, drop: int = 0) -> None:
        self.drop = drop
        self.stats = np.zeros((fit.N_FEAT, fit.N_FEAT, n_ch), np.float64)  # channel-minor (vectorised)
        self.feat = np.empty((2, 5, n_ch + 1), np.float64)
        self.count = np.zeros(n_ch, np.int64)
        self.pending = np.zeros((n_ch, lpc.N_COEF), np.int64)
        fit.solve(self.stats, self.count, 0, n_ch, self.pending, drop)  # defaults
        self.slice = -(-n_ch // max(1, interval // 2)) if n_ch else 0
        self.next_c = 0
        # the next full keyframe's weight set, packed as its channels are solved (pack_weights): the
        # keyframe then only hands it over. ``pk_done`` = channels packed since take(), -1: invalid
        self.want_pack = False
        self.pk_done = -1
        self.pk: tuple[np.ndarray, ...] = ()
        self.pk_pos = 0
        self.pk_crc = 0

    def observe(self, codes: np.ndarray, hist: np.ndarray, full: bool) -> None:
        n_s, n_ch = codes.shape
        if n_s == 0 or n_ch == 0:
            return
        rows = n_s if full else max(1, min(n_s, 2048 // n_ch))
        step = max(1, n_s // rows)
        t0 = min(3, n_s) if full else n_s - 1 - step * (rows - 1)
        if full:
            fit.accumulate_frame(codes, hist, t0, step, self.stats, self.count, self.feat)
            fit.solve(self.stats, self.count, 0, n_ch, self.pending, self.drop)
            self.next_c = 0
            self.pk_done = -1
        else:
            # a slice of channels is solved, then their statistics fade (exponential memory)
            c0 = self.next_c
            stop = min(n_ch, c0 + self.slice)
            fit.observe_frame(codes, hist, t0, step, self.stats, self.count, self.feat, c0, stop,
                              self.pending, self.drop, FIT_DECAY)
            self.next_c = stop
            if stop > c0 and self.want_pack and self.pk_done == c0:
                self._pack(c0, stop)

    def _pack(self, c0: int, c1: int) -> None:
        """Pack the channels just solved (in order from channel 0 after take(): each once)."""
        n_ch = self.pending.shape[0]
        if c0 == 0:  # new arrays: the last set may be in use by the encoder state
            self.pk = (np.empty((n_ch, lpc.N_COEF), np.int64), np.empty((1, lpc.N_COEF, n_ch), np.int64),
                       np.empty((1, lpc.N_COEF, n_ch), np.int32), np.zeros(1, np.int64),
                       np.empty(n_ch * lpc.N_COEF * 10 + 1, np.uint8), np.zeros(1, np.bool_))
            self.pk[4][0] = self.drop
            self.pk_pos = 1
            self.pk_crc = 0
        q, wt, wt32, bound, tab, _ = self.pk
        self.pk_pos = lpc.pack_weights(self.pending, c0, c1, self.drop, q, wt, wt32, bound, tab, self.pk_pos)
        self.pk_crc = zlib.crc32(q[c0:c1].data, self.pk_crc)  # = _weight_sig's CRC, channel by channel
        self.pk_done = c1

    def take(self) -> np.ndarray:
        """Weights for a keyframe (solving restarts with the first slice of channels)."""
        self.next_c = 0
        self.pk_done = 0
        return self.pending.copy()

    def restart(self) -> None:
        """A keyframe that does not need new weights: solving restarts with the first slice."""
        self.next_c = 0
        self.pk_done = 0

    def take_packed(self, dtype: np.dtype) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], int, np.ndarray] | None:
        """The weights packed ahead for a full keyframe: ((coefs, wt, wt32, fast32), signature, weight
        bytes as sent), or None when they are not complete (caller: :meth:`take`)."""
        n_ch = self.pending.shape[0]
        if self.pk_done != n_ch or n_ch == 0 or sys.byteorder != "little":
            return None
        # no numpy reductions or copies here: code that runs once per keyframe runs cold (measured ~70 us
        # for a max, an array and a tobytes of 7 KB in the stream, ~20 us in isolation)
        q, wt, wt32, bmax, tab, fast32 = self.pk
        fast32[0] = bmax[0] < (1 << 31) and dtype == np.int16
        self.next_c = 0
        self.pk_done = 0
        return (q.reshape(1, n_ch, lpc.N_COEF), wt, wt32, fast32), self.pk_crc & 0xFFFFFF, tab[: self.pk_pos]


def _plan_stream_prefilter(buf: np.ndarray, alpha: alph.Alphabet, interval: int) -> tuple[prefilter.StreamFilter, _Fitter] | None:
    """A stream's prefilter from its first rows (runs on the planning thread: touches no encoder state): the
    filter and a fitter of the core's weights that has seen the last of these rows as filtered (the
    core predicts y from the switch on; its statistics of x would be wrong for up to a second), or None."""
    n_ch = buf.shape[1]
    dt = buf.dtype
    pf = prefilter.plan(buf, prefilter.STREAM_ROW_BUDGET // n_ch)
    if pf is None or not NlLossless("archive")._prefilter_pays(buf, alpha, dt, pf):
        return None
    filtered = prefilter.apply(buf, pf, _DT[dt][2], _DT[dt][3])
    warm = np.ascontiguousarray(filtered[-min(len(filtered), max(256, fit.FIT_WARM_SAMPLES // n_ch)):])
    fitter = _Fitter(n_ch, interval, WEIGHT_DROP)
    fitter.observe(warm, np.zeros((n_ch, 3), np.int64), full=True)
    return prefilter.StreamFilter(pf), fitter


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
        # encoder: the prefilter is planned once per stream shape from its first rows and survives reset()
        # (the sender resets on every level switch; the filter describes the recording, like its rate)
        self._sf: prefilter.StreamFilter | None = None
        self._pf_shape: tuple[int, np.dtype] | None = None
        self._pf_job: list[Any] | None = None  # [future of the plan, frames until the switch]
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
        self._keys_since_full = 0
        self._keys_total = 0
        #: decoder: last full v3 weight set (signature, n_channels, dtype, :meth:`_State2.weights`)
        self._wset: tuple[int, int, np.dtype, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                          prefilter.StreamFilter | None] | None = None
        self._spare3: _State3 | None = None  # decoder: v3 state object reused by the next keyframe
        self._code_cost: np.ndarray | None = None  # encoder: per channel (Rice, prefix) bits so far
        self._pf_rows: list[np.ndarray] = []
        self._pf_n = 0
        self._pf_out: np.ndarray | None = None
        self._pf_fitter: _Fitter | None = None  # the core's fitter for the switch, primed on the planning rows

    @staticmethod
    def is_keyframe(blob: bytes | memoryview) -> bool:
        """True if the payload decodes on its own (stream keyframe or archive block)."""
        return len(blob) > 0 and bool(blob[0] & KEY_BIT)

    # encoding ---------------------------------------------------------------------------------
    def request_keyframe(self) -> None:
        """Next frame: a keyframe that carries its predictor weights (the receiver lost its reference, and
        may have lost the weight set too), keeping the learned alphabet and fit so the ratio does not dip
        as it would after :meth:`reset`."""
        self._since_key = self.keyframe_interval
        self._keys_since_full = FULL_EVERY

    def encode(self, x: np.ndarray) -> bytes:
        # what as_2d checks, without its conversions when the frame already is what it asks for
        if not (type(x) is np.ndarray and x.ndim == 2 and x.dtype in _DT and x.flags.c_contiguous
                and x.shape[1] <= MAX_CHANNELS and x.nbytes <= MAX_DECODED_BYTES):
            x = as_2d(x, self.codec_id, self.dtypes)
        n_s, n_ch = x.shape
        dt = x.dtype
        if self.mode == "archive":
            alpha = alph.detect_block(x)
            codes, _ = alph.to_codes(x, alpha)
            pf = prefilter.plan(codes)
            if pf is not None:
                if self._prefilter_pays(codes, alpha, dt, pf):
                    codes = prefilter.apply(codes, pf, _DT[dt][2], _DT[dt][3])
                else:
                    pf = None
            const = _constant_channels(codes)
            if const is None:
                return self._emit2(KEY_BIT | ARCHIVE_BIT, True, codes, self._archive_state(codes, alpha, dt), ARCHIVE_SEG, pf)
            # the constant channels are left out of the coded codes; the header still names every channel
            active = np.ascontiguousarray(codes[:, ~const])
            skip = (n_ch, alpha, np.flatnonzero(const), codes[0, const].astype(np.int64))
            core = self._archive_state(active, alph.Alphabet.identity(active.shape[1]), dt)
            return self._emit2(KEY_BIT | ARCHIVE_BIT, True, active, core, ARCHIVE_SEG, pf, skip)

        if self._enc is None or self._enc.n_ch != n_ch or self._enc.dtype != dt:
            self._tracker = AlphabetTracker(n_ch, dt, stable_frames=self.keyframe_interval)
            self._fitter = _Fitter(n_ch, self.keyframe_interval, WEIGHT_DROP)
            self._enc = None
        assert self._tracker is not None and self._fitter is not None
        self._tracker.update(x)
        if self._pf_shape != (n_ch, dt):
            self._collect_prefilter(x)
        elif self._pf_job is not None:
            self._poll_prefilter(n_ch)
        key = self._enc is None or self._since_key >= self.keyframe_interval
        # v3 predicted frames carry no length: a different frame length starts a keyframe
        key = key or (isinstance(self._enc, _State3) and self._enc.last_n != n_s)
        codes = None  # type: ignore[assignment]
        if not key:
            if self._enc.trivial:  # type: ignore[union-attr]
                codes = x
            else:
                codes, miss = alph.to_codes(x, self._enc.alpha)  # type: ignore[union-attr]
                key = bool(miss.any())  # escape: a value outside the alphabet forces a keyframe
        first = self._enc is None
        if key:
            alpha = self._tracker.alphabet()
            prev = self._enc
            same_alpha = prev is not None and prev.alpha is alpha
            trivial = prev.trivial if same_alpha else alpha.trivial  # type: ignore[union-attr]
            if trivial:
                codes = x
            else:
                codes, miss = alph.to_codes(x, alpha)
                if miss.any():  # cannot happen: the tracker has seen x
                    raise CodecError("nl-lossless: internal error, alphabet misses keyframe values")
            sf = self._sf if trivial and n_s * self.keyframe_interval >= LPC_MIN_ROWS else None
            if sf is not None:
                sf.reset()  # a keyframe decodes alone: the history is the means again
                codes = self._filtered(codes, sf)
            prev_sf = prev.sf if isinstance(prev, _State3) else None
            if sf is not prev_sf and not first:
                # the core predicted the other signal until now (x instead of y): its statistics start
                # over, from the planning rows as filtered (else from this frame alone), and this
                # keyframe sends the new weights
                primed = self._pf_fitter
                if sf is not None and primed is not None and primed.pending.shape[0] == n_ch:
                    self._fitter = primed
                else:
                    self._fitter = _Fitter(n_ch, self.keyframe_interval, WEIGHT_DROP)
                self._keys_since_full = FULL_EVERY
            self._pf_fitter = None
            fitter = self._fitter
            assert fitter is not None
            if first or sf is not prev_sf or (prev is not None and not same_alpha and not trivial):
                fitter.observe(codes, np.zeros((n_ch, 3), np.int64), full=True)
            else:
                fitter.observe(codes, prev.hist, full=False)  # type: ignore[union-attr]
            if n_s * self.keyframe_interval >= LPC_MIN_ROWS:
                self._keys_total += 1
                # the keyframe updates the v3 state in place when it can (same alphabet): history and
                # Rice state are reset by the key row and init_rice, the weights stay or are replaced
                reuse = prev if isinstance(prev, _State3) and same_alpha else None
                st: _State3
                # the first keyframes' weights come from very few rows: always send fresh ones early on
                if reuse is not None and self._keys_since_full < FULL_EVERY - 1 and self._keys_total > 3:
                    self._keys_since_full += 1
                    st = reuse
                    st.full = False
                    fitter.restart()
                else:
                    self._keys_since_full = 0
                    if reuse is not None:
                        st = reuse
                    else:
                        kinit = prev.rice[2].copy() if isinstance(prev, _State2) else None
                        st = _State3(n_ch, dt, alpha, _NO_COEFS, trivial, prev if isinstance(prev, _State2) else None)
                        if kinit is not None:
                            st.rice[2] = kinit
                    st.full = True
                    packed = fitter.take_packed(dt)
                    if packed is not None:  # solved and packed over the last frames
                        w, st.wsig, st.wtab = packed
                        st.set_weights(w)
                    else:
                        half = (1 << WEIGHT_DROP) >> 1
                        st.coefs = ((fitter.take()[None] + half) >> WEIGHT_DROP) << WEIGHT_DROP
                        st.wsig = _weight_sig(st.coefs)
                        st.wtab = None
                st.sf = sf
                self._enc = st
                if n_s * n_ch <= PREFIX_MAX_SAMPLES:
                    st.coder = CODER_PREFIX
                    if self._code_cost is None or self._code_cost.shape[0] != n_ch:
                        self._code_cost = np.zeros((n_ch, 2), np.int64)
                    # per channel, the code that was smaller since the last keyframes (ties: prefix)
                    st.pfx = (self._code_cost[:, 1] <= self._code_cost[:, 0]).astype(np.int64)
                    self._code_cost >>= 1
                else:
                    st.coder = CODER_RICE  # a reused state may have had the prefix code (other frame length)
                # pack the next weights ahead when the next keyframe will send them
                fitter.want_pack = self._keys_total < 3 or self._keys_since_full >= FULL_EVERY - 1
            else:
                fitter.restart()
                self._enc = _State(n_ch, dt, alpha)
                self._enc.framing = 2
            self._since_key = 0
        else:
            sf = self._enc.sf if isinstance(self._enc, _State3) else None
            if sf is not None:
                codes = self._filtered(codes, sf)
            self._fitter.observe(codes, self._enc.hist, full=False)  # type: ignore[union-attr, arg-type]
        self._since_key += 1
        b0 = (KEY_BIT if key else 0) | (self._counter % COUNTER_MOD)
        self._counter = (self._counter + 1) % COUNTER_MOD
        assert self._enc is not None and codes is not None
        if isinstance(self._enc, _State3):
            return self._emit3(b0, key, codes, self._enc)
        return self._emit2(b0, key, codes, self._enc, 0)

    def _emit3(self, b0: int, key: bool, codes: np.ndarray, st: _State3) -> bytes:
        """v3 stream frame. Keyframe: v2-style header, weights in 2^WEIGHT_DROP units, Rice k per
        channel, bitstream. Predicted frame: bit-level, no header: one 0 bit (keyframe flag), the
        Rice codes, the frame check in the last byte's spare bits (n_samples = the keyframe's)."""
        n_s, n_ch = codes.shape
        esc, worst, lo, hi, dcode = _DT[st.dtype]
        out = self._out_buffer(n_s * n_ch * worst + 16)
        prefix = st.coder == CODER_PREFIX
        cost = self._code_cost if prefix else _NO_COST
        if not key:
            st.index += 1
            nbytes = lpc.encode_frame(codes, st.hist, st.wt, st.wt32, st.fast32, n_s, False, lo, hi, st.rice, esc, out, 1, st.index,
                                      CHECK_MIN, prefix, st.pfx, cost, st.erow, st.words, out, -1, False)
            return out[:nbytes].tobytes()
        st.index = b0 & (COUNTER_MOD - 1)  # v4: predicted frames count on from the keyframe's counter
        st.last_n = n_s
        if st.khead[0] != n_s:  # header bytes 1.. up to n_samples: fixed for a state (alphabet, shape)
            h = bytearray([(VERSION << 4) | dcode])
            put_uvarint(h, n_ch)
            if st.trivial:
                h.append(0)  # what alph.pack writes for an all-identity alphabet
            else:
                alph.pack(st.alpha, h)
            put_uvarint(h, n_s)
            st.khead = (n_s, bytes(h))
        head = bytearray((b0,))
        head += st.khead[1]
        sf = st.sf
        head.append((KIND_LPC if st.full else KIND_LPC_REF) | (st.coder << 4) | (KIND_V3_PREFILTER if sf is not None else 0))
        head += (st.wsig ^ (sf.crc & 0xFFFFFF) if sf is not None else st.wsig).to_bytes(3, "little")
        if st.full:
            if st.wtab is None:
                wtab = self._tab_buffer(st.coefs.size * 10 + 16)
                wtab[0] = WEIGHT_DROP
                st.wtab = wtab[: lpc.put_varints(st.coefs.reshape(-1) >> WEIGHT_DROP, wtab, 1)].tobytes()
            head += st.wtab.data if isinstance(st.wtab, np.ndarray) else st.wtab
            if sf is not None:
                head += sf.table
        h = len(head) + n_ch  # the Rice k bytes follow: written by encode_frame (lpc.key_rice)
        out = self._out_buffer(h + n_s * n_ch * worst + 16)
        out.data[: h - n_ch] = head
        if not (n_s and n_ch):
            if not lpc.key_rice(st.rice, prefix, st.pfx, out, h - n_ch, False):
                st.rice[2] = self._k_first(codes, st, max(n_s, 1), lo, hi)
                lpc.key_rice(st.rice, prefix, st.pfx, out, h - n_ch, True)
            return out[:h].tobytes()
        args = (codes, st.hist, st.wt, st.wt32, st.fast32, max(n_s, 1), True, lo, hi, st.rice, esc, out[h:], 0, 0, -1,
                prefix, st.pfx, cost, st.erow, st.words, out, h - n_ch)
        nbytes = lpc.encode_frame(*args, False)
        if nbytes < 0:  # a fresh stream: every k is 0, estimate them from this frame
            st.rice[2] = self._k_first(codes, st, max(n_s, 1), lo, hi)
            nbytes = lpc.encode_frame(*args, True)
        return out[: h + nbytes].tobytes()

    @staticmethod
    def _k_first(codes: np.ndarray, st: _State2, seg: int, lo: int, hi: int) -> np.ndarray:
        """A fresh stream's (or archive block's) initial Rice k, from its first rows' residuals."""
        n_ch = codes.shape[1]
        pre = codes[:9]
        e = np.empty((pre.shape[0], n_ch), np.int64)
        lpc.residuals(pre, np.zeros((n_ch, 3), np.int64), st.wt, st.wt32, st.fast32, seg, True, lo, hi, e)
        return _k_from(e)

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

    def _collect_prefilter(self, x: np.ndarray) -> None:
        """Stream encoder: keep the first PREFILTER_PLAN_ROWS rows, then plan the prefilter once on the
        planning thread. Only int16 streams with an identity alphabet whose frames take the LPC path."""
        n_s, n_ch = x.shape
        dt = x.dtype
        self._sf, self._pf_job = None, None  # collecting for this shape: a filter or plan for another one is void
        if dt != np.int16 or n_ch == 0 or n_s * self.keyframe_interval < LPC_MIN_ROWS:
            self._pf_shape = (n_ch, dt)
            return
        if self._pf_rows and (self._pf_rows[0].shape[1] != n_ch or self._pf_rows[0].dtype != dt):
            self._pf_rows, self._pf_n = [], 0
        self._pf_rows.append(x.copy())
        self._pf_n += n_s
        if self._pf_n < PREFILTER_PLAN_ROWS:
            return
        buf = np.concatenate(self._pf_rows)
        self._pf_rows, self._pf_n = [], 0
        self._pf_shape = (n_ch, dt)
        assert self._tracker is not None
        alpha = self._tracker.alphabet()
        if not alpha.trivial:
            return
        from neurolink.runtime import plan_executor

        self._pf_job = [plan_executor().submit(_plan_stream_prefilter, buf, alpha, self.keyframe_interval),
                        PREFILTER_SWITCH_FRAMES]

    def settle(self, timeout: float | None = 120.0) -> None:
        """Block until a pending prefilter plan is done (TimeoutError after ``timeout`` s). Live streams
        never need this (the plan has a second); benchmarks, tests and fixtures that encode faster than
        real time call it so the filter switches on at the same frame whatever the machine's load."""
        if self._pf_job is not None:
            self._pf_job[0].result(timeout)

    def _poll_prefilter(self, n_ch: int) -> None:
        """Count down to the switch frame; there, take the plan if it is done (else count down again)."""
        job = self._pf_job
        assert job is not None
        job[1] -= 1
        if job[1] > 0:
            return
        if not job[0].done():
            job[1] = PREFILTER_SWITCH_FRAMES
            return
        self._pf_job = None
        try:
            planned = job[0].result()
        except Exception as exc:  # the stream goes on without a filter: nothing is lost
            log.warning("nl-lossless: prefilter planning failed (%s: %s); the stream continues without it",
                        type(exc).__name__, exc)
            return
        if planned is not None and planned[0].ring.shape[1] == n_ch:
            self._sf, self._pf_fitter = planned
            self.request_keyframe()  # this frame: a full keyframe with the table and new weights

    def _filtered(self, codes: np.ndarray, sf: prefilter.StreamFilter) -> np.ndarray:
        """The frame through the stream's prefilter, into a reused buffer (the caller's frame is not touched)."""
        out = self._pf_out
        if out is None or out.shape != codes.shape or out.dtype != codes.dtype:
            out = self._pf_out = np.empty_like(codes)
        _, _, lo, hi, _ = _DT[codes.dtype]
        sf.run(codes, out, lo, hi, False)
        return out

    def _prefilter_pays(self, codes: np.ndarray, alpha: alph.Alphabet, dt: np.dtype, pf: prefilter.Prefilter) -> bool:
        """Trial-encode a prefix of the block with and without the prefilter: its estimate compares
        against an order-3 predictor alone, while the codec also predicts from the neighbour channel
        (ECoG at 1 kHz: the estimate said yes, the payload grew 0.17 %)."""
        n_s, n_ch = codes.shape
        n_pre = min(n_s, max(PREFILTER_TRIAL_ROWS, PREFILTER_TRIAL_SAMPLES // max(n_ch, 1)))
        b0 = KEY_BIT | ARCHIVE_BIT
        pre = codes[:n_pre]
        plain = len(self._emit2(b0, True, pre, self._archive_state(pre, alpha, dt), ARCHIVE_SEG))
        pre = prefilter.apply(pre, pf, _DT[dt][2], _DT[dt][3])
        # the filtered codes are near-white: LPC (no SELECT trial; SELECT's fixed polynomials lose there)
        with_pf = len(self._emit2(b0, True, pre, _State2(n_ch, dt, alpha, fit.fit_block(pre, ARCHIVE_SEG)), ARCHIVE_SEG, pf))
        tab = bytearray()
        prefilter.pack(pf, tab)
        return (with_pf - len(tab)) * n_s / n_pre + len(tab) < PREFILTER_MIN_GAIN * plain * n_s / n_pre

    def _emit_select(self, b0: int, key: bool, codes: np.ndarray, st: _State,
                     pf: prefilter.Prefilter | None = None, skip: _Skip | None = None) -> bytes:
        n_s, n_ch = codes.shape
        head = self._head(b0, key, n_s, st, KIND_SELECT, pf, skip)
        out = self._out_buffer(n_s * n_ch * _WORST_BYTES[st.dtype.name] + 16)
        ws = np.zeros(3, np.int64)
        if n_ch and n_s:
            encode_block(codes, st.hist, st.cost, st.rice, key, ESC_BITS[st.dtype.name], out, ws)
        nbytes = flush_bits(out, ws)
        st.last_n = n_s
        return bytes(head) + out[:nbytes].tobytes()

    def _head(self, b0: int, key: bool, n_s: int, st: _State | _State2, kind: int,
              pf: prefilter.Prefilter | None = None, skip: _Skip | None = None) -> bytearray:
        """v2 header: full on self-contained payloads, 1 byte on predicted frames of unchanged length;
        an archive payload's prefilter table and constant channels follow the kind byte (with ``skip``
        the state codes the other channels only: the header names all of them and their alphabet)."""
        if key:
            head = bytearray([b0, (VERSION_V2 << 4) | _DT[st.dtype][4]])
            put_uvarint(head, st.n_ch if skip is None else skip[0])
            alph.pack(st.alpha if skip is None else skip[1], head)
            put_uvarint(head, n_s)
            head.append(kind | (KIND_PREFILTER if pf is not None else 0) | (KIND_CONST if skip is not None else 0))
            if pf is not None:
                prefilter.pack(pf, head)
            if skip is not None:
                put_uvarint(head, skip[2].size)
                prev = -1
                for c, v in zip(skip[2].tolist(), skip[3].tolist(), strict=True):
                    put_uvarint(head, c - prev - 1)
                    put_svarint(head, v)
                    prev = c
        elif n_s == st.last_n:
            head = bytearray([b0 | SAME_N_BIT])
        else:
            head = bytearray([b0])
            put_uvarint(head, n_s)
        return head

    def _emit2(self, b0: int, key: bool, codes: np.ndarray, st: _State | _State2, seg: int,
               pf: prefilter.Prefilter | None = None, skip: _Skip | None = None) -> bytes:
        n_s, n_ch = codes.shape
        if isinstance(st, _State):
            return self._emit_select(b0, key, codes, st, pf, skip)
        esc, worst, lo, hi, _ = _DT[st.dtype]
        seg_eff = seg if seg else max(n_s, 1)
        head = self._head(b0, key, n_s, st, KIND_LPC, pf, skip)
        if key:
            put_uvarint(head, seg)
            if not st.rice[2].any():
                st.rice[2] = self._k_first(codes, st, seg_eff, lo, hi)
            kinit = np.minimum(st.rice[2], lpc.MAX_K)
            lpc.init_rice(st.rice, kinit)
            tab = self._tab_buffer(st.coefs.size * 10 + n_ch + 16)
            pos = lpc.put_varints(st.coefs.reshape(-1), tab, 0)
            tab[pos : pos + n_ch] = kinit
            head += tab[: pos + n_ch].tobytes()
        st.last_n = n_s
        out = self._out_buffer(n_s * n_ch * worst + 16)
        nbytes = (lpc.encode_frame(codes, st.hist, st.wt, st.wt32, st.fast32, seg_eff, key, lo, hi, st.rice, esc, out, 0, 0, -1,
                                   False, _NO_PFX, _NO_COST, st.erow, st.words, out, -1, False) if n_s and n_ch else 0)
        head += out.data[:nbytes]
        return bytes(head)

    def _tab_buffer(self, size: int) -> np.ndarray:
        if self.mode == "archive":
            return np.empty(size, np.uint8)
        buf = getattr(self, "_tab", None)
        if buf is None or buf.size < size:
            buf = np.empty(size, np.uint8)
            self._tab = buf
        return buf

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
        if blob and not blob[0] & KEY_BIT and isinstance(self._dec, _State3) and self.mode == "stream":
            return self._decode_v3_predicted(blob)
        rd = Reader(blob, cid)
        b0 = rd.byte("flags")
        key = bool(b0 & KEY_BIT)
        counter = b0 & (COUNTER_MOD - 1)
        if key:
            archive = bool(b0 & ARCHIVE_BIT)
            if archive != (self.mode == "archive"):
                raise CodecError(f"{cid}: payload flags 0x{b0:02x} at offset 0 do not match mode {self.mode!r}")
            vd = rd.byte("version/dtype")
            if vd >> 4 not in (1, 2, 3, 4) or (vd & 15) not in (DTYPE_CODES["int16"], DTYPE_CODES["int32"]):
                raise CodecError(f"{cid}: unsupported version/dtype byte 0x{vd:02x} at offset 1")
            dt = CODE_DTYPES[vd & 15]
            n_ch = rd.uvarint("n_channels", MAX_CHANNELS)
            spare = self._spare3
            if (vd >> 4 >= 3 and not archive and spare is not None and spare.n_ch == n_ch and spare.dtype == dt
                    and spare.trivial and rd.pos < len(blob) and blob[rd.pos] == 0):
                # a v3 keyframe of the same shape with an all-identity alphabet (the common case): the
                # state object is reused (every field a keyframe sets is reset by _decode_v3_key)
                rd.pos += 1
                self._dec = None  # until this keyframe decodes: the state is updated in place
                st: _State | _State2 = spare
            else:
                alpha = alph.unpack(rd, n_ch, dt)
                if vd >> 4 >= 3 and archive:
                    raise CodecError(f"{cid}: version {vd >> 4} payload at offset 1 is stream-only")
                st = (_State(n_ch, dt, alpha) if vd >> 4 == 1 else
                      _State3(n_ch, dt, alpha, np.zeros(0, np.int64)) if vd >> 4 >= 3 else
                      _State2(n_ch, dt, alpha, np.zeros(0, np.int64)))
                if isinstance(st, _State3):
                    self._dec = None
                    self._spare3 = st
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
            if isinstance(st, _State3):
                st.run_index = blob[1] >> 4 == 4  # only keyframes get here (v3/v4 predicted frames return above)
                y, st = self._decode_v3_key(blob, rd, st)
            elif isinstance(st, _State2) or st.framing == 2:
                y, st = self._decode_v2(blob, rd, b0, key, st)
            else:
                n_s = rd.uvarint("n_samples", MAX_DECODED_BYTES // max(1, st.n_ch * st.dtype.itemsize))
                check_decoded_size(cid, n_s, st.n_ch, st.dtype.itemsize)
                y = self._decode_body(blob, rd.pos, n_s, st, key)
        except CodecError:
            if not archive:
                self._dec = None  # state may be inconsistent: wait for the next keyframe
            raise
        if not archive:
            self._dec = st
            self._dec_expected = (counter + 1) % COUNTER_MOD
        return y

    def _decode_v3_key(self, blob: bytes, rd: Reader, st: _State3) -> tuple[np.ndarray, _State3]:
        cid = self.codec_id
        n_ch = st.n_ch
        n_s = rd.uvarint("n_samples", MAX_DECODED_BYTES // max(1, n_ch * st.dtype.itemsize))
        check_decoded_size(cid, n_s, n_ch, st.dtype.itemsize)
        kind = rd.byte("kind")
        st.coder = kind >> 4
        has_pf = bool(kind & KIND_V3_PREFILTER)
        if kind & 7 not in (KIND_LPC, KIND_LPC_REF) or st.coder not in (CODER_RICE, CODER_PREFIX):
            raise CodecError(f"{cid}: unknown version-3 predictor kind/coder 0x{kind:02x} at offset {rd.pos - 1}")
        if has_pf and st.dtype != np.int16:
            raise CodecError(f"{cid}: prefilter on a {st.dtype.name} stream (int16 only) at offset {rd.pos - 1}")
        kind &= 7
        sig = int.from_bytes(rd.take(3, "weight set signature"), "little")
        buf = np.frombuffer(blob, np.uint8)
        wset = self._wset
        sf: prefilter.StreamFilter | None = None
        if kind == KIND_LPC_REF:
            if wset is None or wset[0] != sig or wset[1] != n_ch or (wset[4] is not None) != has_pf:
                raise MissingReferenceError(f"{cid}: keyframe uses weight set {sig:06x}, not received: waiting for a full keyframe")
            coefs = None
            sf = wset[4]
            pos = rd.pos
            if pos + n_ch > len(blob):
                raise CodecError(f"{cid}: payload truncated in field 'rice k' at offset {pos}")
        else:
            drop = rd.byte("weight unit")
            if drop > lpc.SHIFT:
                raise CodecError(f"{cid}: weight unit 2^{drop} > 2^{lpc.SHIFT} at offset {rd.pos - 1}")
            if n_ch * lpc.N_COEF + n_ch > len(blob) - rd.pos:
                raise CodecError(f"{cid}: payload truncated in field 'weights' at offset {rd.pos}")
            # read, range-checked and transposed in one kernel (new arrays: the last set may be in use)
            coefs = np.empty((1, n_ch, lpc.N_COEF), np.int64)
            wts = (coefs, np.empty((1, lpc.N_COEF, n_ch), np.int64), np.empty((1, lpc.N_COEF, n_ch), np.int32),
                   np.zeros(1, np.bool_))
            pos = lpc.get_weights(buf, rd.pos, drop, st.dtype == np.int16, coefs[0], wts[1], wts[2], wts[3])
            if pos == -2:
                raise CodecError(f"{cid}: predictor weight out of range in field 'weights' at offset {rd.pos}")
            if pos < 0 or pos + n_ch > len(blob):
                raise CodecError(f"{cid}: payload truncated or bad varint in field 'weights' at offset {rd.pos}")
            expect = _weight_sig(coefs)
            if has_pf:
                start = pos
                pf, pos = prefilter.unpack(blob, pos, n_ch, -32768, 32767, cid)
                if not prefilter.float_exact(pf, -32768, 32767):
                    raise CodecError(f"{cid}: prefilter bias out of range for a stream at offset {start}")
                if pos + n_ch > len(blob):
                    raise CodecError(f"{cid}: payload truncated in field 'rice k' at offset {pos}")
                sf = prefilter.StreamFilter(pf)
                # the CRC of the bytes as received: the encoder's (canonical) table, or a signature mismatch
                expect ^= zlib.crc32(memoryview(blob)[start:pos]) & 0xFFFFFF
            if expect != sig:
                raise CodecError(f"{cid}: weight set signature mismatch at offset {rd.pos}: corrupt weights")
        if st.pfx.shape[0] != n_ch:
            st.pfx = np.ones(n_ch, np.int64)
        kpos = pos  # the Rice k bytes: read by decode_frame (lpc.init_rice_bytes)
        pos += n_ch
        if coefs is None:
            if wset[2] == st.dtype:  # type: ignore[index]
                st.set_weights(wset[3])  # type: ignore[index]
            else:  # same weights, other dtype: int32 arithmetic may not hold
                st.coefs = wset[3][0]  # type: ignore[index]
        else:
            st.set_weights(wts)
        st.index = blob[0] & (COUNTER_MOD - 1) if st.run_index else 0
        st.last_n = n_s
        st.seg = max(n_s, 1)
        st.sf = sf
        if sf is not None:
            sf.reset()
        size = len(blob) - pos
        _check_bits(cid, n_s, n_ch, size, pos)
        if not (n_s and n_ch):
            kmax = lpc.init_rice_bytes(st.rice, buf, kpos, st.coder == CODER_PREFIX, st.pfx)
        y, end = self._decode_lpc(blob, pos, 0, n_s, st, True, buf, kpos)
        if end < 0 or (not (n_s and n_ch) and kmax > lpc.MAX_K):
            kmax = int((buf[kpos:pos] & (63 if st.coder == CODER_PREFIX else 255)).max())
            raise CodecError(f"{cid}: Rice parameter {kmax} > {lpc.MAX_K} at offset {kpos}")
        self._check_end(end, size, pos, n_s, n_ch)
        if coefs is not None or wset[2] != st.dtype:  # type: ignore[index]
            self._wset = (sig, n_ch, st.dtype, st.weights(), sf)
        return y, st

    def _read_weights(self, blob: bytes, buf: np.ndarray, rd: Reader, n_seg: int, n_ch: int,
                      drop: int) -> tuple[np.ndarray, int]:
        """Weight table (n_seg, n_ch, N_COEF) in units of 2^drop at ``rd.pos``, size- and range-checked
        (before allocation: a short payload cannot ask for a large table); returns it and the offset
        after it (where n_ch bytes of Rice k must follow)."""
        cid = self.codec_id
        n_vals = n_seg * n_ch * lpc.N_COEF
        if n_vals + n_ch > len(blob) - rd.pos:
            raise CodecError(f"{cid}: payload truncated in field 'weights' at offset {rd.pos}")
        vals = np.empty(n_vals, np.int64)
        pos = lpc.get_varints(buf, rd.pos, vals)
        if pos < 0 or pos + n_ch > len(blob):
            raise CodecError(f"{cid}: payload truncated or bad varint in field 'weights' at offset {rd.pos}")
        coefs = vals.reshape(n_seg, n_ch, lpc.N_COEF)
        if n_vals and (np.abs(coefs[..., : lpc.N_W]).max() >= lpc.MAX_W >> drop
                       or np.abs(coefs[..., lpc.N_W]).max() >= lpc.MAX_BIAS >> drop):
            raise CodecError(f"{cid}: predictor weight out of range in field 'weights' at offset {rd.pos}")
        return coefs, pos

    def _check_end(self, end: int, size: int, pos: int, n_s: int, n_ch: int) -> None:
        """The bitstream (``size`` bytes from offset ``pos``) must end in its last byte."""
        used = (end + 7) >> 3
        if used > size:
            raise CodecError(f"{self.codec_id}: payload truncated: bitstream ends before {n_s}x{n_ch} samples")
        if used != size:
            raise CodecError(f"{self.codec_id}: {size - used} unexpected trailing bytes at offset {pos + used}")

    def _decode_lpc(self, blob: bytes, pos: int, bp: int, n_s: int, st: _State2, key: bool,
                    kb: np.ndarray = _NO_KB, kpos: int = -1,
                    pf: prefilter.Prefilter | None = None) -> tuple[np.ndarray, int]:
        """v2/v3 LPC bitstream of ``blob[pos:]`` from its bit ``bp``: (values, bit position after the codes);
        with ``kpos >= 0`` the Rice state is read from the k bytes at ``kb[kpos:]`` (``kb`` = the payload)
        first (position -1: a k out of range)."""
        n_ch = st.n_ch
        esc, _, lo, hi, _ = _DT[st.dtype]
        codes = np.empty((n_s, n_ch), st.dtype if st.trivial else np.int64)
        if not n_s or not n_ch:
            return codes, bp
        buf = lpc.padded(blob, pos, n_ch, None if self.mode == "archive" else getattr(self, "_dbuf", None))
        if self.mode != "archive":
            self._dbuf = buf
        stat = np.zeros(1, np.int64)
        prefix = isinstance(st, _State3) and st.coder == CODER_PREFIX
        pfx = st.pfx if isinstance(st, _State3) and prefix else _NO_PFX
        end = lpc.decode_frame(buf, bp, 8 * (len(blob) - pos), codes, st.hist, st.wt, st.wt32, st.fast32, st.seg, key,
                               lo, hi, st.rice, esc, prefix, pfx, st.erows, st.prow, stat,
                               kb, kpos)
        if end < 0:
            return codes, end
        if stat[0]:
            raise CodecError(f"{self.codec_id}: corrupt payload, decoded value out of the {st.dtype.name} range")
        if pf is not None:
            codes = prefilter.apply(codes, pf, lo, hi, inverse=True)
        elif isinstance(st, _State3) and st.sf is not None:
            st.sf.run(codes, codes, lo, hi, True)  # in place: each sample is read before it is written
        if st.trivial:
            return codes, end
        return alph.from_codes(codes, st.alpha, st.dtype, self.codec_id), end

    def _decode_v3_predicted(self, blob: bytes) -> np.ndarray:
        """v3 predicted frame (no header): the spare bits after the codes must hold the expected frame
        index, else the frame is lost (or corrupt) and the decoder waits for a keyframe."""
        cid = self.codec_id
        st = self._dec
        assert isinstance(st, _State3)
        size = len(blob)
        n_s, n_ch = st.last_n, st.n_ch
        expect = st.index + 1
        # until the frame checks out; the state is updated in place (a failed frame discards it)
        self._dec = None
        check_decoded_size(cid, n_s, n_ch, st.dtype.itemsize, "keyframe")  # its shape, under this call's limit
        if n_s * n_ch + 1 + CHECK_MIN > 8 * size:
            raise MissingReferenceError(f"{cid}: {size}-byte predicted frame cannot hold {n_s}x{n_ch} samples: "
                                        "frame lost or corrupt, waiting for a keyframe")
        try:
            y, end = self._decode_lpc(blob, 0, 1, n_s, st, False)
        except CodecError as err:
            raise MissingReferenceError(f"{cid}: frame lost or corrupt ({err}): waiting for a keyframe") from None
        spare = 8 * size - end
        if not CHECK_MIN <= spare <= CHECK_MIN + 7 or lpc.tail_bits(blob, spare) != expect % (1 << spare):
            raise MissingReferenceError(f"{cid}: frame check failed (frame {expect} after the keyframe lost or "
                                        "corrupt): waiting for a keyframe")
        st.index = expect
        self._dec = st
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
        check_decoded_size(cid, n_s, n_ch, st.dtype.itemsize)
        buf = np.frombuffer(blob, np.uint8)
        pf = None
        skip: tuple[np.ndarray, np.ndarray] | None = None
        full = st
        if key:
            kind = rd.byte("kind")
            if self.mode == "archive" and kind & (KIND_PREFILTER | KIND_CONST):
                _, _, lo, hi, _ = _DT[st.dtype]
                if kind & KIND_PREFILTER:
                    pf, rd.pos = prefilter.unpack(blob, rd.pos, n_ch, lo, hi, cid)
                if kind & KIND_CONST:
                    skip = self._read_const(rd, n_ch, lo, hi)
                kind &= ~(KIND_PREFILTER | KIND_CONST)
            if kind not in (KIND_SELECT, KIND_LPC):
                raise CodecError(f"{cid}: unknown predictor kind {kind} at offset {rd.pos - 1}")
            if skip is not None:  # the coded channels only, as plain codes
                n_ch -= skip[0].size
                ident = alph.Alphabet.identity(n_ch)
                st = _State(n_ch, st.dtype, ident) if kind == KIND_SELECT else _State2(n_ch, st.dtype, ident, np.zeros(0, np.int64))
                if isinstance(st, _State):
                    st.framing = 2
            elif kind == KIND_SELECT:
                st = _State(n_ch, st.dtype, st.alpha)
                st.framing = 2
        core_pf = pf if skip is None else None
        if isinstance(st, _State):
            y = self._decode_body(blob, rd.pos, n_s, st, key, core_pf)
            st.last_n = n_s
            return (y if skip is None else self._unskip(y, skip, pf, full)), st
        if key:
            seg = rd.uvarint("segment", limit)
            n_seg = -(-n_s // seg) if seg else 1
            n_seg = max(n_seg, 1)
            coefs, pos = self._read_weights(blob, buf, rd, n_seg, n_ch, 0)
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
        size = len(blob) - pos
        _check_bits(cid, n_s, n_ch, size, pos)
        y, end = self._decode_lpc(blob, pos, 0, n_s, st, key, pf=core_pf)
        self._check_end(end, size, pos, n_s, n_ch)
        return (y if skip is None else self._unskip(y, skip, pf, full)), st

    def _read_const(self, rd: Reader, n_ch: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """An archive payload's constant channels: count, then (index gap, code) each, range-checked."""
        cid = self.codec_id
        count = rd.uvarint("constant channels", n_ch)
        idx = np.empty(count, np.int64)
        vals = np.empty(count, np.int64)
        prev = -1
        for i in range(count):
            c = prev + 1 + rd.uvarint("constant channel", n_ch)
            if c >= n_ch:
                raise CodecError(f"{cid}: constant channel {c} >= {n_ch} channels at offset {rd.pos}")
            v = rd.svarint("constant code", max(-lo, hi))
            if not lo <= v <= hi:
                raise CodecError(f"{cid}: constant code {v} outside [{lo}, {hi}] at offset {rd.pos}")
            idx[i], vals[i] = c, v
            prev = c
        return idx, vals

    def _unskip(self, y: np.ndarray, skip: tuple[np.ndarray, np.ndarray], pf: prefilter.Prefilter | None,
                full: _State | _State2) -> np.ndarray:
        """The coded channels' codes plus the constant ones -> every channel's values."""
        idx, vals = skip
        n_s, n_ch = y.shape[0], full.n_ch
        codes = np.empty((n_s, n_ch), np.int64)
        coded = np.ones(n_ch, np.bool_)
        coded[idx] = False
        codes[:, coded] = y
        codes[:, idx] = vals
        _, _, lo, hi, _ = _DT[full.dtype]
        if pf is not None:
            codes = prefilter.apply(codes, pf, lo, hi, inverse=True)
        if full.alpha.trivial:
            return codes.astype(full.dtype)
        return alph.from_codes(codes, full.alpha, full.dtype, self.codec_id)

    def _decode_body(self, blob: bytes, pos: int, n_s: int, st: _State, key: bool,
                     pf: prefilter.Prefilter | None = None) -> np.ndarray:
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
        if pf is not None:
            codes = prefilter.apply(codes, pf, _DT[st.dtype][2], _DT[st.dtype][3], inverse=True)
        if trivial:
            return codes
        return alph.from_codes(codes, st.alpha, st.dtype, self.codec_id)
