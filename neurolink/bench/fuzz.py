"""``neurolink bench fuzz``: mutation + hypothesis fuzzing of every parser that touches network bytes.

Targets: the wire parsers (frame, stream header, feedback, clock, archive frame and ack of the reliable
path), ``FrameCipher.open``, the archive block inside an archive frame (``reliable.unpack_block``), what the
sender does with an ack (``reliable.ReliableSender.on_feedback``: NACK ranges), the Zarr/numcodecs decoder
(``numcodecs.neurolink.lossless``), the MQTT group control records (announce / claim / owner, through the
transports' handlers; malformed ones must be ignored and counted), and every registered codec's ``decode``
(default config, nl-lossless archive mode, and every level of the packaged ladder). Seeds are valid
encodings of the real recordings; mutations are bit flips, interesting-value overwrites, truncation,
extension, splices, chunk duplication/deletion and random bytes (wire targets get their CRC re-fixed half
of the time so mutations reach the deeper checks). A *crash* is any exception other than the documented
WireFormatError / CodecError / SecurityError; a *hang* is one input using more than ``--hang-s`` of CPU
time (or 10x that in wall time), so a busy machine does not report false hangs. Codec targets decode half
of their inputs under the per-frame decode limit a receiver sets (``codecs.base.decode_limit``, the largest
seed frame's size) and half under the global limits only.

Each target runs in its own child process with a watchdog in the parent: a segfault in numba code or a
hang kills only that child, is counted, and fuzzing resumes after the offending input. Inputs are
generated deterministically per 1024-input chunk from ``--seed``, so any reported input is reproducible.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import random
import resource
import struct
import sys
import time
import zlib
from collections.abc import Callable
from ctypes import c_double
from pathlib import Path
from typing import Any

import numpy as np

from neurolink.errors import CodecError, SecurityError, WireFormatError

log = logging.getLogger(__name__)

EXPECTED = (WireFormatError, CodecError, SecurityError)
CHUNK = 1024
_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
_KEY = bytes(range(32))
# shared-state slots written by the child, read by the parent watchdog
S_INDEX, S_PHASE, S_DONE, S_CRASH, S_REJ, S_RSS, S_MUT_DONE = range(7)


# ------------------------------------------------------------------------------------------- targets
def list_targets() -> list[dict[str, Any]]:
    """Every decoder to fuzz: wire parsers, the AEAD opener, each codec (default + ladder levels)."""
    from neurolink.codecs import get_codec, list_codecs
    from neurolink.codecs.ladder import load_ladder

    out: list[dict[str, Any]] = [{"name": f"wire.{f}", "kind": "wire", "fn": f}
                                 for f in ("parse_frame", "parse_stream_header", "parse_feedback", "parse_clock")]
    # reliable archive path: archive frame (type 5), ack/NACK (type 6), and the archive block inside a frame
    out += [{"name": f"wire.{f}", "kind": "wire", "fn": f} for f in ("parse_archive_frame", "parse_ack")]
    out.append({"name": "aead.FrameCipher.open", "kind": "aead"})
    out.append({"name": "reliable.unpack_block", "kind": "block"})
    out.append({"name": "reliable.ReliableSender.on_feedback", "kind": "acks"})  # what the sender does with an ack
    # what Zarr decodes when an archive is read (numcodecs.neurolink.lossless = nl-lossless archive mode)
    out.append({"name": "numcodecs.neurolink.lossless", "kind": "numcodecs"})
    # MQTT receiver groups: announce / claim / owner records as the broker hands them over
    out.append({"name": "mqtt_group.control", "kind": "mqtt"})
    seen: set[str] = set()
    for cid in list_codecs():
        try:
            cfg = get_codec({"id": cid}).get_config()
        except Exception as exc:  # codec needs parameters: the ladder covers it if it is used
            log.info("codec %s has no default config (%s); fuzzing its ladder levels only", cid, exc)
            continue
        seen.add(json.dumps(cfg, sort_keys=True))
        out.append({"name": f"codec.{cid}", "kind": "codec", "config": cfg})
        if cid == "nl-float":  # float streams at lossy levels: the counts through a lossy codec
            for inner in ({"id": "nl-nearlossless", "k": 3}, {"id": "nl-spike", "step": 6.0}):
                fcfg = get_codec({"id": cid, "inner": inner}).get_config()
                seen.add(json.dumps(fcfg, sort_keys=True))
                out.append({"name": f"codec.{cid}.{inner['id']}", "kind": "codec", "config": fcfg})
        if cid == "nl-lossless":  # archive mode: the reliable path's blocks and every Zarr chunk
            acfg = get_codec({"id": cid, "mode": "archive"}).get_config()
            seen.add(json.dumps(acfg, sort_keys=True))
            out.append({"name": f"codec.{cid}.archive", "kind": "codec", "config": acfg})
    try:
        ladder = load_ladder(validate=False)
        for name, cfg in zip(ladder.names, ladder, strict=True):
            try:
                full = get_codec(cfg).get_config()
            except Exception as exc:
                log.warning("ladder level %s: cannot build %s: %s", name, cfg, exc)
                continue
            k = json.dumps(full, sort_keys=True)
            if k not in seen:
                seen.add(k)
                out.append({"name": f"ladder.{name}", "kind": "codec", "config": full})
    except Exception as exc:
        log.warning("ladder not loaded: %s", exc)
    return out


def _real_frames(max_rows: int = 3000) -> list[np.ndarray]:
    """Frames of the real recordings at several sizes (synthetic fallback without ../shared)."""
    from neurolink.data import shared_dir

    arrays = []
    sd = shared_dir()
    if sd is not None:
        for p in sorted((sd / "data").glob("*.npy")):
            arrays.append(np.load(p, mmap_mode="r")[:max_rows].astype(np.int16, copy=True))
    if not arrays:
        rng = np.random.default_rng(0)
        arrays.append(np.cumsum(rng.integers(-50, 50, (max_rows, 8)), axis=0).astype(np.int16))
    frames = []
    for x in arrays:
        pos = 0
        for n in (1, 15, 30, 64, 15, 15, 250, 15, 1, 30, 15, 15):
            frames.append(np.ascontiguousarray(x[pos:pos + n]))
            pos += n
    return frames


def _oversampled(frames: list[np.ndarray], rows: int = 4800) -> np.ndarray:
    """A 2x-oversampled (30 kHz-like, band-limited) copy of the first multi-channel recording: what makes
    nl-lossless plan its long-term prefilter (prefilter.py), so its tables get fuzzed too."""
    src = next((f for f in frames if f.shape[0] >= 64 and f.shape[1] > 1), frames[0])
    x = np.resize(src.astype(np.float64), (rows // 2 + 64, src.shape[1]))
    z = np.zeros((2 * x.shape[0], x.shape[1]))
    z[::2] = x - x.mean(axis=0)
    taps = np.sinc(np.arange(-32, 33) / 2) * np.hanning(65)
    y = np.stack([np.convolve(z[:, c], taps, "same") for c in range(z.shape[1])], axis=1)[64 : 64 + rows]
    return np.ascontiguousarray(np.clip(np.rint(y + x.mean(axis=0)), -32768, 32767).astype(np.int16))


def _prefilter_seeds(config: dict[str, Any], frames: list[np.ndarray]) -> list[bytes]:
    """nl-lossless payloads that carry a prefilter: archive blocks (also with a constant channel), or a
    stream's full keyframe with the table, the predicted frames after it and a keyframe that names the set."""
    from neurolink.codecs import get_codec
    from neurolink.codecs.lossless import codec as nlc

    if config.get("mode") == "archive":
        ov = _oversampled(frames, 1200)
        dead = ov.copy()
        dead[:, 0] = 5  # a dead channel: left out of the bitstream (constant-channel table)
        return [get_codec(config).encode(ov), get_codec(config).encode(dead), get_codec(config).encode(dead[:300])]
    ov = _oversampled(frames, 30 * (-(-nlc.PREFILTER_PLAN_ROWS // 30) + nlc.PREFILTER_SWITCH_FRAMES + 60))
    enc = get_codec({**config, "keyframe_interval": 40})  # 40 x 30 rows: the LPC (v4) path
    blobs = []
    for i in range(0, ov.shape[0] - 29, 30):
        blobs.append(enc.encode(ov[i : i + 30]))
        enc.settle()  # type: ignore[attr-defined]  # the plan in time, as in a live stream
    keys = [i for i, b in enumerate(blobs) if b[0] & nlc.KEY_BIT and b[1] >> 4 >= 3]
    first = next((i for i in keys if i > nlc.PREFILTER_PLAN_ROWS // 30 + nlc.PREFILTER_SWITCH_FRAMES - 2), None)
    if first is None:
        return []
    return blobs[first : first + 3] + [blobs[i] for i in keys if i > first][:1]


def _text_frames() -> list[np.ndarray]:
    """String-stream frames as markers look: single events, JSON, unicode, empty and NUL values, several
    channels, and a regular-rate block long enough for the zstd body."""
    def obj(rows: list[list[str]]) -> np.ndarray:
        a = np.empty((len(rows), len(rows[0]) if rows else 1), dtype=object)
        for i, r in enumerate(rows):
            a[i, :] = r
        return a

    return [obj([["stim/onset"]]), obj([['{"trial": 3, "cond": "incongruent", "rt": 0.512}']]), obj([[""]]),
            obj([["trial 3", "ÄÖÜ ∑ 😀", "a\x00b"]]), obj([]),
            obj([[f"sample {i}", f'{{"i": {i}, "tag": "regular"}}'] for i in range(30)]),
            obj([["x" * 300 + "\u00e9" * 50]])]


def _wire_seeds(fn: str, frames: list[np.ndarray]) -> list[bytes]:
    from neurolink.codecs import get_codec
    from neurolink.wire import ack as wack
    from neurolink.wire import format as wire

    if fn == "parse_frame":
        codec = get_codec({"id": "delta-zstd"})
        text = get_codec({"id": "nl-text"})  # string (marker) frames: dtype code 7
        return [wire.pack_frame(1, i, 100.0 + i, f.shape[0], f.shape[1], "int16", i % 3, codec.encode(f), i & 1)
                for i, f in enumerate(frames[:24])] + [
                wire.pack_frame(2, i, 200.0 + i, t.shape[0], t.shape[1], "string", 0, text.encode(t), wire.FLAG_KEYFRAME)
                for i, t in enumerate(_text_frames()[:4])]
    if fn == "parse_stream_header":
        from neurolink.codecs.ladder import load_ladder

        lad = list(load_ladder(validate=False))
        desc = "<channels>" + "".join(f"<channel><label>C{i}</label><unit>uV</unit></channel>" for i in range(16)) + "</channels>"
        return [wire.pack_stream_header(wire.StreamHeader(i + 1, f"rec{i}", "EEG", f"src{i}", fs, ch, "int16", desc, lad[0], lad, n, "host", "ab" * 16))
                for i, (fs, ch, n) in enumerate([(15000.0, 4, 15), (1000.0, 78, 1), (30000.0, 1024, 30), (0.0, 1, 1)])]
    if fn == "parse_feedback":
        return [wire.pack_feedback(wire.Feedback(1, i, 10.0 + i, 9.5, 1e6 * i, 2.5, 0.1, 0.01 * i, 3.0, 0.9, 100 * i, i, 12.0, 0.001)) for i in range(8)]
    if fn == "parse_archive_frame":
        return [wack.pack_archive_frame(m, max(0, i - 3), (i + 1 + i % 3) if i % 4 else 0) for i, m in enumerate(_block_frames(frames, 12))]
    if fn == "parse_ack":
        return [wack.pack_ack(wack.Ack(i + 1, 1000 * i, tuple((1000 * i + 7 * j, 1 + j) for j in range(n))))
                for i, n in enumerate((0, 1, 2, 5, 16, 0, 3, 64))]
    return [wire.pack_clock(wire.ClockProbe(1, i & 1, 1.0 + i, 2.0, 3.0)) for i in range(8)]


def _fix_inner_crc(b: bytearray) -> None:
    """Archive frames wrap a whole frame message with its own CRC: re-fix that one too (the outer one is
    fixed by the mutator), so mutations of the inner header and block reach the deeper checks."""
    from neurolink.wire.ack import _AF

    if len(b) >= _AF.size + 8:
        b[-8:-4] = struct.pack("<I", zlib.crc32(bytes(b[_AF.size:-8])))


def _block_frames(frames: list[np.ndarray], n: int) -> list[bytes]:
    """Archive-block frame messages as the reliable sender makes them (nl-lossless archive, several frames)."""
    from neurolink.codecs import get_codec
    from neurolink.framer import RawFrame
    from neurolink.reliable.block import pack_block
    from neurolink.sinks.archive import ARCHIVE_CODEC
    from neurolink.wire import format as wire

    codec = get_codec(ARCHIVE_CODEC)
    out = []
    for i in range(n):
        k = (1, 2, 5, 3)[i % 4]
        group = [frames[(i + j) % len(frames)] for j in range(k)]
        group = [f for f in group if f.shape[1] == group[0].shape[1]]
        raw = [RawFrame(j, 100.0 + 0.001 * j * f.shape[0], f) for j, f in enumerate(group)]
        data, payload = pack_block(raw, codec)
        out.append(wire.pack_frame(1, i, raw[0].timestamp, data.shape[0], data.shape[1], "int16", 0, payload,
                                   wire.FLAG_KEYFRAME | (wire.FLAG_RETRANSMIT if i % 5 == 4 else 0)))
    return out


def _ack_target() -> tuple[Callable[[bytes], Any], list[bytes]]:
    """A ReliableSender with a spool of small blocks, fed acks: NACK ranges must not stall it."""
    import asyncio

    from neurolink.framer import RawFrame
    from neurolink.reliable.sender import ReliableSender
    from neurolink.wire import ack as wack

    loop = asyncio.new_event_loop()
    rs = ReliableSender(None, block_frames=2)

    async def send(_m: bytes) -> None:
        return None

    rs.attach(1, send)
    tx = rs.streams[1]
    x = np.arange(6, dtype=np.int16).reshape(3, 2)

    def refill() -> None:
        for _ in range(40):
            loop.run_until_complete(rs.on_frame(1, RawFrame(tx.next_seq, 1.0, x)))

    refill()

    def fn(data: bytes) -> None:
        if tx.spool.frames < 8:  # an ack with a large next_seq freed the spool
            refill()
        tx.acked = tx.spool.oldest_seq or 0
        tx.pending.clear()
        tx.queued.clear()
        tx.last_retx.clear()
        rs.on_feedback(data)

    base = tx.spool.oldest_seq or 0
    seeds = [wack.pack_ack(wack.Ack(1, base + i, tuple((base + i + 2 * j, 1 + j % 3) for j in range(n))))
             for i, n in enumerate((0, 1, 2, 5, 3, 0, 4, 1))]
    return fn, seeds


def _mqtt_seeds() -> list[bytes]:
    from neurolink.transports.mqtt_group import _payload

    recs = [_payload(session="0123456789abcdef", epoch=e, member=m) for e in (0, 1, 7) for m in ("rx-1", None, "a" * 40)]
    recs += [_payload(session="0123456789abcdef", epoch=3), b"online", b"offline", b"",
             b'{"session":"0123456789abcdef","epoch":1,"member":' + b"[" * 1500 + b"]" * 1500 + b"}"]
    return recs


def _mqtt_target() -> Callable[[bytes], Any]:
    """The group transports' control handlers, without a broker: garbage must be ignored and counted."""
    import asyncio

    from neurolink.transports import mqtt_group as g

    asyncio.set_event_loop(asyncio.new_event_loop())
    snd = g.MqttGroupSender("grp", prefix="fz", name="fz")
    rcv = g.MqttGroupReceiver("grp", prefix="fz", name="fz", client_id="rx-1")
    snd.session = "0123456789abcdef"

    def fn(data: bytes) -> None:
        snd.streams.clear()
        snd.streams[1] = g._Owned(epoch=1)
        rcv.claims.clear()
        rcv.owned.clear()
        rcv.claims[1] = ("0123456789abcdef", 1)
        before = snd.bad_control + rcv.bad_control
        snd._on_claim("1", data)
        rcv._on_announce(1, data)
        rcv._on_owner(1, data)
        if g._parse(data) is None:
            if data and snd.bad_control + rcv.bad_control != before + 3:
                raise AssertionError("malformed control record not counted")
            raise WireFormatError("mqtt control record", 0, "malformed (ignored and counted)")

    return fn


def _build(target: dict[str, Any]) -> tuple[Callable[[bytes], Any], list[bytes], bool | Callable[[bytearray], None], Callable[[], None]]:
    """(decode function, seeds, fix-crc?, reset) for one target."""
    frames = _real_frames()
    if target["kind"] == "wire":
        from neurolink.wire import ack as wack
        from neurolink.wire import format as wire

        mod = wack if hasattr(wack, target["fn"]) else wire
        fix: bool | Callable[[bytearray], None] = _fix_inner_crc if target["fn"] == "parse_archive_frame" else True
        return getattr(mod, target["fn"]), _wire_seeds(target["fn"], frames), fix, lambda: None
    if target["kind"] == "aead":
        from neurolink.security.aead import AEAD_NAMES, FrameCipher

        fns = ("parse_frame", "parse_stream_header", "parse_feedback", "parse_clock", "parse_archive_frame", "parse_ack")
        seeds = [FrameCipher(_KEY, 1, aead=alg).seal(m)  # both envelope versions (algorithms)
                 for alg in sorted(AEAD_NAMES) for f in fns for m in _wire_seeds(f, frames)[:6]]
        rx = FrameCipher(_KEY, 1, keyring={2: bytes(32)})
        rx.new_sessions_per_s = 1e12  # mutated salts must reach key derivation and the tag check, not the bucket
        return rx.open, seeds, True, lambda: None
    if target["kind"] == "block":
        from neurolink.codecs import get_codec
        from neurolink.reliable.block import unpack_block
        from neurolink.sinks.archive import ARCHIVE_CODEC
        from neurolink.wire import format as wire

        codec = get_codec(ARCHIVE_CODEC)

        def block(data: bytes) -> Any:  # the receiver's path: frame CRC + header, then the block payload
            fr = wire.parse_frame(data)
            return unpack_block(fr.payload, fr.header.n_samples, fr.header.n_channels, codec, 30000.0, fr.header.dtype)

        seeds = _block_frames(frames, 16)
        for m in seeds:
            block(m)  # warm-up (numba) outside the watched phase
        return block, seeds, True, lambda: None
    if target["kind"] == "acks":
        fn, seeds = _ack_target()
        return fn, seeds, True, lambda: None
    if target["kind"] == "mqtt":
        return _mqtt_target(), _mqtt_seeds(), False, lambda: None
    if target["kind"] == "numcodecs":
        from neurolink.codecs.numcodecs_adapter import NeurolinkLossless

        nc = NeurolinkLossless()
        seeds = [nc.encode(f) for f in frames] + [nc.encode(np.ascontiguousarray(f[:, 0])) for f in frames[:6]]
        seeds.append(nc.encode(_oversampled(frames, 1200)))  # a block with a prefilter table
        for blob in seeds:
            nc.decode(blob)
        return nc.decode, seeds, False, lambda: None
    from neurolink.codecs import get_codec

    enc, dec = get_codec(target["config"]), get_codec(target["config"])
    seeds = []
    text = "string" in getattr(enc, "dtypes", ())
    if text:  # nl-text: marker frames, not samples
        frames = _text_frames()
    for i, f in enumerate(frames):
        try:
            seeds.append(enc.encode(f if text or not _wants_float(enc) else _float_seed(enc, f, i)))
        except CodecError:
            continue
    if "keyframe_interval" in target["config"] and not text:
        # a run of keyframes every 2 frames: keyframes that follow a keyframe of the same stream (nl-float's
        # keyframes that only name the parameter set the decoder holds; nl-lossless's that name a weight set)
        enc2 = get_codec({**target["config"], "keyframe_interval": 2})
        run = frames[-12:]
        for f in run:
            if f.shape[1] != run[0].shape[1]:
                break
            try:
                seeds.append(enc2.encode(f if not _wants_float(enc2) else _float_seed(enc2, f, 0)))
            except CodecError:
                break
    if target["config"].get("id") == "nl-lossless":
        seeds += _prefilter_seeds(target["config"], frames)
    if not seeds:
        raise CodecError(f"{target['name']}: could not encode any seed frame")
    frame_bytes = frame_values = 0
    for blob in seeds:  # warm-up in the unwatched setup phase: numba compiles the decoder on first call
        try:
            y = dec.decode(blob)
            frame_bytes, frame_values = max(frame_bytes, y.nbytes), max(frame_values, y.size)
        except CodecError:
            pass
    dec.reset()
    return _half_limited(dec.decode, text, frame_bytes, frame_values), seeds, False, dec.reset


def _half_limited(decode: Callable[[bytes], Any], text: bool, frame_bytes: int, frame_values: int) -> Callable[[bytes], Any]:
    """Half of the inputs (by their CRC, so an input always takes the same path) decode under the limit a
    receiver states for the largest seed frame (``codecs.base.decode_limit``), the others under the global
    limits only: both the bound checks and the paths behind them get fuzzed."""
    from neurolink.codecs.base import decode_limit, frame_text_limit

    def fn(data: bytes) -> Any:
        if zlib.crc32(data) & 1:
            return decode(data)
        with decode_limit(frame_text_limit(frame_values) if text else frame_bytes, frame_values if text else None):
            return decode(data)

    return fn


def _float_seed(codec: Any, f: np.ndarray, i: int) -> np.ndarray:
    """A float frame for a float codec: counts in µV as amplifiers publish them (nl-float's integer path),
    float64 too where the codec takes it, and true floats with NaN and -0.0 (its raw path and escapes)."""
    if "float64" in getattr(codec, "dtypes", ()):
        if i % 4 == 3:
            g = np.random.default_rng(i).standard_normal(f.shape).astype(np.float32)
            if g.size:
                g.flat[0], g.flat[-1] = np.nan, -0.0
            return g
        if i % 4 == 2:
            return f * 0.195
    return f.astype(np.float32) * np.float32(0.195)


def _wants_float(codec: Any) -> bool:
    dts = getattr(codec, "dtypes", ("int16",))
    return "int16" not in tuple(str(d) for d in dts)


# ------------------------------------------------------------------------------------------- mutator
class Mutator:
    """Deterministic byte-level mutations of seeds (input i is reproducible from (seed, i))."""

    def __init__(self, seeds: list[bytes], fix_crc: bool | Callable[[bytearray], None], seed: int) -> None:
        self.seeds = seeds
        self.fix_crc = fix_crc
        self.seed = seed

    def chunk(self, c: int):
        rng = random.Random(self.seed * 1_000_003 + c)
        for _ in range(CHUNK):
            yield self._one(rng)

    def nth(self, i: int) -> bytes:
        for j, b in enumerate(self.chunk(i // CHUNK)):
            if j == i % CHUNK:
                return b
        raise IndexError(i)

    def _one(self, rng: random.Random) -> bytes:
        if rng.random() < 0.03:
            return rng.randbytes(rng.randrange(0, 300))
        b = bytearray(rng.choice(self.seeds))
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(9)
            n = len(b)
            if op <= 2 and n:  # bit flips (the most common)
                for _ in range(rng.randint(1, 4)):
                    p = rng.randrange(n)
                    b[p] ^= 1 << rng.randrange(8)
            elif op == 3 and n:  # interesting little-endian integer overwrite
                w = rng.choice((1, 2, 4))
                p = rng.randrange(max(n - w + 1, 1))
                v = rng.choice(_INTERESTING) & ((1 << (8 * w)) - 1)
                b[p:p + w] = v.to_bytes(w, "little")[: max(0, n - p)]
            elif op == 4 and n:  # truncation
                del b[rng.randrange(n):]
            elif op == 5:  # extension with random bytes
                b += rng.randbytes(rng.randint(1, 64))
            elif op == 6:  # splice with another seed
                o = rng.choice(self.seeds)
                b = b[: rng.randint(0, n)] + o[rng.randint(0, len(o)):]
            elif op == 7 and n > 2:  # delete or duplicate a chunk
                p = rng.randrange(n)
                q = min(n, p + rng.randint(1, 32))
                b = b[:p] + b[q:] if rng.random() < 0.5 else b[:q] + b[p:q] + b[q:]
            elif n:  # random byte run
                p = rng.randrange(n)
                b[p:p + 8] = rng.randbytes(min(8, n - p))
        if self.fix_crc and len(b) > 4 and rng.random() < 0.5:
            if callable(self.fix_crc):
                self.fix_crc(b)
            b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])))
        return bytes(b)


# -------------------------------------------------------------------------------------------- child
def _child(target: dict[str, Any], start: int, n: int, n_hyp: int, seed: int, shared: Any, conn: Any) -> None:
    import faulthandler

    try:
        faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (captured)
        pass
    logging.disable(logging.CRITICAL)
    st = np.frombuffer(shared, dtype=np.float64)  # type: ignore[call-overload]
    st[S_PHASE] = 0  # setup (numba compile, seeds): not watched for hangs
    try:
        fn, seeds, fix_crc, reset = _build(target)
    except Exception as exc:  # noqa: BLE001 - reported as a setup failure, not a decoder crash
        conn.send({"error": f"setup failed: {type(exc).__name__}: {exc}", "input_index": -1})
        raise SystemExit(2) from None
    mut = Mutator(seeds, fix_crc, seed)

    def report(exc: BaseException, data: bytes, i: int) -> None:
        st[S_CRASH] += 1
        if st[S_CRASH] <= 5:
            conn.send({"error": f"{type(exc).__name__}: {str(exc)[:200]}", "input_index": i, "input_hex": data[:512].hex()})

    def run(data: bytes, i: int) -> None:
        st[S_INDEX] = i
        st[S_PHASE] = 1
        try:
            fn(data)
        except EXPECTED:
            st[S_REJ] += 1
        except Exception as exc:  # noqa: BLE001 - counting anything undocumented is the point
            report(exc, data, i)
        st[S_DONE] += 1
        st[S_PHASE] = 2

    if start == 0 and n_hyp > 0:
        _hypothesis_phase(run, seeds, n_hyp)
    st[S_PHASE] = 2
    end = start + n
    c = start // CHUNK
    i = c * CHUNK
    while i < end:
        for data in mut.chunk(c):
            if i >= start and i < end:
                run(data, i)
                st[S_MUT_DONE] = i + 1
            i += 1
        c += 1
        if c % 16 == 0:
            reset()
        st[S_RSS] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    st[S_RSS] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    st[S_PHASE] = 3
    conn.send(None)


def _hypothesis_phase(run: Callable[[bytes, int], None], seeds: list[bytes], n: int) -> None:
    """Hypothesis drives structured inputs: raw binaries and seeds with drawn edits."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as hs

    counter = [-1]

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(hs.one_of(
        hs.binary(max_size=512),
        hs.tuples(hs.sampled_from(seeds), hs.integers(0, 1 << 20), hs.integers(0, 255), hs.integers(0, 1 << 20)).map(
            lambda t: t[0][: t[3] % (len(t[0]) + 1)] if t[2] < 40 else
            t[0][: t[1] % max(len(t[0]), 1)] + bytes([t[2]]) + t[0][t[1] % max(len(t[0]), 1) + 1:]),
    ))
    def prop(data: bytes) -> None:
        run(data, counter[0])
        counter[0] -= 1

    prop()


# ------------------------------------------------------------------------------------------- parent
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """CPU time of a child (Linux /proc): hangs are judged on CPU, so a loaded machine gives no false hangs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return time.monotonic()  # no /proc: fall back to wall time
def fuzz_target(target: dict[str, Any], n: int, *, seed: int = 0, hang_s: float = 1.0, setup_s: float = 300.0,
                hyp_fraction: float = 0.01, max_restarts: int = 20, progress: Any = None) -> dict[str, Any]:
    """Fuzz one target with ``n`` inputs in child processes; returns its JSON entry."""
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    n_hyp = min(int(n * hyp_fraction), 5000)
    n_mut = n - n_hyp
    res: dict[str, Any] = {"inputs": 0, "crashes": 0, "hangs": 0, "rejected": 0, "peak_rss_mb": 0.0,
                           "hard_crashes": 0, "setup_failed": False, "examples": []}
    t0 = time.monotonic()
    start = 0
    restarts = 0
    shown = 0
    first = True
    while start < n_mut and restarts <= max_restarts:
        shared = mp.RawArray(c_double, 8)
        st = np.frombuffer(shared, dtype=np.float64)  # type: ignore[call-overload]
        st[S_MUT_DONE] = start
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(  # type: ignore[attr-defined]
            target=_child, args=(target, start, n_mut - start, n_hyp if first else 0, seed, shared, tx), daemon=True)
        p.start()
        tx.close()
        first = False
        last_idx, last_change, setup_start, last_cpu = None, time.monotonic(), time.monotonic(), 0.0
        finished = hung = False
        while True:
            p.join(0.1)
            while rx.poll():
                try:
                    item = rx.recv()
                except EOFError:
                    break
                if item is None:
                    finished = True
                elif len(res["examples"]) < 5:
                    res["examples"].append(item)
            if progress is not None:
                done = int(st[S_DONE])
                progress.update(done - shown)
                shown = done
            if not p.is_alive():
                break
            now = time.monotonic()
            if st[S_PHASE] == 0:
                if now - setup_start > setup_s:
                    hung = True
            elif st[S_PHASE] == 1:
                idx = st[S_INDEX]
                cpu = _cpu_seconds(p.pid)
                if idx != last_idx:
                    last_idx, last_change, last_cpu = idx, now, cpu
                elif cpu - last_cpu > hang_s or now - last_change > 10 * hang_s:
                    hung = True
            else:
                last_idx, last_change = None, now
            if hung:
                p.kill()
                p.join()
                break
        p.join()
        res["inputs"] += int(st[S_DONE])
        res["crashes"] += int(st[S_CRASH])
        res["rejected"] += int(st[S_REJ])
        res["peak_rss_mb"] = max(res["peak_rss_mb"], float(st[S_RSS]))
        shown = 0
        if finished:
            break
        # the child died (hard crash) or hung on the input it was running: count it, skip past it
        if st[S_PHASE] == 0:  # setup itself failed (or hung): nothing to fuzz
            res["setup_failed"] = True
            log.error("%s: setup failed (%s)", target["name"], "timeout" if hung else f"exit code {p.exitcode}")
            break
        bad = int(st[S_INDEX])
        kind = "hang" if hung else f"hard crash, exit code {p.exitcode}"
        if hung:
            res["hangs"] += 1
        else:
            res["crashes"] += 1
            res["hard_crashes"] += 1
        res["inputs"] += 1
        example: dict[str, Any] = {"error": kind, "input_index": bad}
        if bad >= 0:  # mutation inputs are reproducible: regenerate it for the report
            try:
                _fn, seeds, fix, _r = _build(target)
                example["input_hex"] = Mutator(seeds, fix, seed).nth(bad)[:512].hex()
            except Exception as exc:  # noqa: BLE001
                example["input_hex"] = f"(not regenerated: {exc})"
        if len(res["examples"]) < 5:
            res["examples"].append(example)
        log.warning("%s: %s at input %d; resuming after it", target["name"], kind, bad)
        if bad < 0:  # during the hypothesis phase: go on with the mutation phase
            bad = -1
        start = max(bad + 1, int(st[S_MUT_DONE]))
        restarts += 1
    res["seconds"] = round(time.monotonic() - t0, 2)
    res["inputs_per_s"] = round(res["inputs"] / max(res["seconds"], 1e-9))
    return res


def _write_json(path: Path, results: dict[str, Any], n: int, seed: int, hang_s: float, *, complete: bool) -> None:
    out = {"decoders": results, "inputs_per_decoder": n, "seed": seed, "hang_s": hang_s,
           "expected_errors": [e.__name__ for e in EXPECTED], "complete": complete}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neurolink bench fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=1_000_000, help="inputs per decoder (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help="20,000 inputs per decoder")
    ap.add_argument("--only", default="", help="comma-separated substrings of target names to run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-s", type=float, default=1.0, help="one input running longer than this is a hang")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    n = 20_000 if a.quick else a.inputs
    targets = list_targets()
    if a.only:
        keys = [k.strip() for k in a.only.split(",") if k.strip()]
        targets = [t for t in targets if any(k in t["name"] for k in keys)]
    if a.list:
        for t in targets:
            print(t["name"], json.dumps(t.get("config", "")))
        return 0
    from tqdm import tqdm

    results: dict[str, Any] = {}
    with tqdm(total=n * len(targets), unit="in", disable=a.no_progress, file=sys.stderr, smoothing=0.05) as bar:
        for t in targets:
            bar.set_description(t["name"])
            results[t["name"]] = fuzz_target(t, n, seed=a.seed, hang_s=a.hang_s, progress=bar)
            if a.json:  # after every target, so a long run that is stopped early keeps what it finished
                _write_json(a.json, results, n, a.seed, a.hang_s, complete=False)
            if a.no_progress:
                r = results[t["name"]]
                print(f"{time.strftime('%H:%M:%S')} {t['name']}: {r['inputs']} inputs, {r['crashes']} crashes, {r['hangs']} hangs,"
                      f" {r['inputs_per_s']} in/s, peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    print(f"\n{'decoder':32s} {'inputs':>10s} {'crashes':>8s} {'hangs':>6s} {'rejected':>9s} {'in/s':>8s} {'RSS MB':>7s}")
    for name, r in results.items():
        rej = 100.0 * r["rejected"] / max(r["inputs"], 1)
        print(f"{name:32s} {r['inputs']:10d} {r['crashes']:8d} {r['hangs']:6d} {rej:8.1f}% {r['inputs_per_s']:8d} {r['peak_rss_mb']:7.0f}")
        for ex in r["examples"]:
            print(f"    {ex['error']} (input {ex['input_index']})")
    if a.json:
        _write_json(a.json, results, n, a.seed, a.hang_s, complete=True)
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 0.35 * len(results) + 1.5))
        names = list(results)
        ax.barh(names, [results[k]["inputs_per_s"] for k in names], color=["C3" if results[k]["crashes"] + results[k]["hangs"] else "C0" for k in names])
        ax.set_xlabel("inputs / s (red: crashes or hangs found)")
        ax.set_title(f"neurolink bench fuzz: {n} inputs per decoder")
        fig.tight_layout()
        fig.savefig(a.png, dpi=100)
        plt.close(fig)
    bad = sum(r["crashes"] + r["hangs"] + r["setup_failed"] for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
