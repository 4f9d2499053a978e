"""Per-call decode bound (``codecs.base.decode_limit``): a hostile payload costs no more than the frame it
claims to be.

For every codec a small crafted payload that declares a large output is refused under a frame-sized limit
with a CodecError naming the codec and the limit, before anything large is allocated (tracemalloc peak and
numba NRT allocation count, no timing); legitimate frames decode identically under a limit equal to their
exact size (and one byte less is refused); and the receiver conceals and counts a bomb frame, then goes on.
"""

from __future__ import annotations

import logging
import struct
import threading
import tracemalloc

import numpy as np
import pytest
import zstandard
from numba.core.runtime import rtsys

from neurolink.codecs import get_codec
from neurolink.codecs.base import (
    MAX_DECODED_BYTES,
    MAX_STRING_VALUES,
    MIN_TEXT_FRAME_BYTES,
    STRING_CODE,
    current_decode_limit,
    current_string_limit,
    decode_limit,
    frame_decode_limit,
    frame_text_limit,
    pack_array_header,
)
from neurolink.codecs.lossless.varint import put_uvarint
from neurolink.codecs.testing import LOSSY_CONFIGS
from neurolink.errors import CodecError

BOMB_BYTES = 8 << 20  # what each crafted payload declares (the real attack declares 256 MiB: same code path)
_Z = zstandard.ZstdCompressor(level=19)



pytestmark = pytest.mark.usefixtures("nrt_stats")  # tests/conftest.py


def _skip_missing(cfg: dict) -> None:
    if cfg["id"] == "nl-ae":
        pytest.importorskip("onnxruntime", reason="nl-ae needs onnxruntime")


# ------------------------------------------------------------------------------------------- bombs
def _delta_zstd_bomb() -> bytes:
    n_s = BOMB_BYTES // (64 * 2)
    return pack_array_header(np.zeros((0, 64), np.int16))[:4] + struct.pack("<I", n_s) + _Z.compress(bytes(BOMB_BYTES))


def _nl_float_bomb() -> bytes:
    b = bytearray((1 | 4 | 16, 3))  # parameters, raw part, zstd; float32
    put_uvarint(b, 64)
    put_uvarint(b, BOMB_BYTES // (64 * 4))
    put_uvarint(b, 0)  # no integer channels: everything in the raw part
    return bytes(b) + _Z.compress(bytes(BOMB_BYTES))


def _text_body(n: int, length: int) -> bytes:
    lens = bytearray()
    for _ in range(n):
        put_uvarint(lens, length)
    return bytes(lens) + b"m" * (n * length)


def _text_bomb_big_value() -> bytes:  # one marker of 8 MiB text, zstd body of ~300 bytes
    return struct.pack("<BBHI", STRING_CODE, 1, 1, 1) + _Z.compress(_text_body(1, BOMB_BYTES))


def _text_bomb_many_values() -> bytes:  # 2^16 empty markers claimed in one frame
    n = 1 << 16
    return struct.pack("<BBHI", STRING_CODE, 1, 1, n) + _Z.compress(_text_body(n, 0))


def _zeros_keyframe(cfg: dict, n_s: int, n_ch: int) -> bytes:
    """A legitimate keyframe of a long frame of zeros: a few bits per sample, or less (the lossy codecs)."""
    return get_codec(cfg).encode(np.zeros((n_s, n_ch), np.int16))


def _bombs() -> list[tuple[str, dict, bytes, tuple[int, int, str], int]]:
    """(name, config, payload, frame the wire header claims, decoded bytes the payload declares)."""
    out = [
        ("delta-zstd", {"id": "delta-zstd"}, _delta_zstd_bomb(), (30, 64, "int16"), BOMB_BYTES),
        ("nl-float", {"id": "nl-float"}, _nl_float_bomb(), (30, 64, "float32"), BOMB_BYTES),
        ("nl-text-big-value", {"id": "nl-text"}, _text_bomb_big_value(), (1, 1, "string"), BOMB_BYTES),
        ("nl-text-many-values", {"id": "nl-text"}, _text_bomb_many_values(), (1, 1, "string"), 1 << 16),
    ]
    for cfg in ({"id": "nl-lossless"}, {"id": "nl-lossless", "mode": "archive"}):
        out.append((f"nl-lossless-{cfg.get('mode', 'stream')}", cfg, _zeros_keyframe(cfg, 8192, 64), (30, 64, "int16"),
                    8192 * 64 * 2))
    for cfg in LOSSY_CONFIGS:
        n_s = 256 if cfg["id"] == "nl-cs" else 8192  # nl-cs frames are short by design (<= 256 samples)
        out.append((cfg["id"], cfg, b"", (30, 32, "int16"), n_s * 32 * 2))
    return out


BOMBS = _bombs()


def _payload(name: str, cfg: dict, blob: bytes, declared: int) -> bytes:
    if blob:
        return blob
    return _zeros_keyframe(cfg, declared // (32 * 2), 32)  # lossy: built lazily (nl-ae loads onnxruntime)


def _nrt_allocs() -> int:
    return rtsys.get_allocation_stats().alloc


def _refused_cost(dec, blob: bytes, frame: tuple[int, int, str]) -> tuple[CodecError, int, int]:
    """Decode ``blob`` under the frame's limit: (error, tracemalloc peak, numba allocations)."""
    tracemalloc.start()
    try:
        n0 = _nrt_allocs()
        with frame_decode_limit(*frame), pytest.raises(CodecError) as err:
            dec.decode(blob)
        n1 = _nrt_allocs()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return err.value, peak, n1 - n0


@pytest.mark.parametrize("name,cfg,blob,frame,declared", BOMBS, ids=[b[0] for b in BOMBS])
def test_a_small_payload_declaring_a_large_frame_is_refused_before_allocating(name, cfg, blob, frame, declared):
    _skip_missing(cfg)
    blob = _payload(name, cfg, blob, declared)
    dec = get_codec(cfg)
    # warm-up on a legitimate frame of the claimed shape: kernels compiled or loaded outside the measurement
    if frame[2] == "string":
        dec.decode(get_codec(cfg).encode([["warm"]]))
    else:
        dec.decode(get_codec(cfg).encode(np.zeros(frame[:2], frame[2])))
    dec.reset()
    err, peak, nrt = _refused_cost(dec, blob, frame)
    with pytest.raises(CodecError):  # reference: a payload cut after its first byte (only header reads run)
        n0 = _nrt_allocs()
        dec.decode(blob[:1])
    header_only = _nrt_allocs() - n0
    n_s, n_ch, fmt = frame
    limit = frame_text_limit(n_s * n_ch) if fmt == "string" else n_s * n_ch * np.dtype(fmt).itemsize
    msg = str(err)
    assert msg.startswith(cfg["id"] + ":"), msg
    assert (f"{limit} bytes" in msg) or (fmt == "string" and f"limit of {n_s * n_ch} values" in msg), msg
    # nothing beyond a copy of the payload itself, far below what it declares; no numba kernel beyond the
    # header field reads (the lossy family reads its 5-bit header with jitted readers) allocated anything
    assert peak <= 2 * len(blob) + (64 << 10), f"{name}: {peak} bytes traced while refusing"
    assert nrt <= header_only, f"{name}: {nrt} numba allocations while refusing ({header_only} for a header)"
    # the same payload under the global limit only (archive/offline decoding): really decodes that large
    dec = get_codec(cfg)
    tracemalloc.start()
    try:
        y = dec.decode(blob)
        peak_unlimited = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if fmt == "string":
        assert max(y.size, sum(len(v) for v in y.ravel().tolist())) == declared
    else:
        assert y.nbytes == declared and peak_unlimited >= declared
    assert peak * 4 < peak_unlimited, (peak, peak_unlimited)


def test_nl_text_uncompressed_body_is_bounded_too():
    blob = get_codec({"id": "nl-text"}).encode([["x" * 40]])  # below the zstd threshold: a plain body
    assert blob[1] == 0
    with decode_limit(16), pytest.raises(CodecError, match=r"nl-text: .*decode limit of 16 bytes"):
        get_codec({"id": "nl-text"}).decode(blob)
    with decode_limit(len(blob) - 8):
        assert get_codec({"id": "nl-text"}).decode(blob).tolist() == [["x" * 40]]


# -------------------------------------------------------------------------------- legitimate frames
def _walk(n: int, n_ch: int, seed: int) -> np.ndarray:
    q = np.cumsum(np.random.default_rng(seed).integers(-40, 41, (n, n_ch)), axis=0)
    return np.clip(q, -32768, 32767).astype(np.int16)


def _legit_frames(cfg: dict) -> list:
    if cfg["id"] == "nl-text":
        def obj(rows):
            a = np.empty((len(rows), len(rows[0])), dtype=object)
            for i, r in enumerate(rows):
                a[i, :] = r
            return a
        return [obj([["stim/onset"]]), obj([['{"trial": 3, "rt": 0.512}' * 4]]), obj([[""]]),
                obj([["a", "ÄÖÜ ∑ 😀", "b\x00c"]]), obj([[f"s{i}", f'{{"i": {i}}}'] for i in range(30)])]
    x = _walk(30 * 8, 6, 3)
    if cfg["id"] == "nl-float":
        xf = (x * np.float32(0.195)).astype(np.float32)
        xf[:, 5] = np.random.default_rng(4).standard_normal(xf.shape[0]).astype(np.float32)  # a raw channel
        return [xf[i:i + 30] for i in range(0, xf.shape[0], 30)]
    sizes = (30, 30, 1, 30, 15, 30, 30, 30) if cfg["id"] != "nl-cs" else (30,) * 8
    out, pos = [], 0
    for n in sizes:
        out.append(x[pos:pos + n])
        pos += n
    return out


LEGIT = [{"id": "delta-zstd"}, {"id": "nl-float"}, {"id": "nl-text"}, {"id": "nl-lossless"},
         {"id": "nl-lossless", "mode": "archive"}, {"id": "nl-float", "inner": {"id": "nl-nearlossless", "k": 3}},
         *LOSSY_CONFIGS]


@pytest.mark.parametrize("cfg", LEGIT, ids=[c["id"] + ("." + c.get("mode", "") if "mode" in c else "")
                                            + ("." + c["inner"]["id"] if "inner" in c else "") for c in LEGIT])
def test_legitimate_frames_decode_identically_under_their_exact_size(cfg):
    _skip_missing(cfg)
    frames = _legit_frames(cfg)
    enc = get_codec(cfg)
    blobs = [enc.encode(f) for f in frames]
    free, bounded = get_codec(cfg), get_codec(cfg)
    text = cfg["id"] == "nl-text"
    for f, b in zip(frames, blobs, strict=True):
        fmt = "string" if text else f.dtype.name
        y0 = free.decode(b)
        with frame_decode_limit(f.shape[0], f.shape[1], fmt):
            y1 = bounded.decode(b)
        assert y1.dtype == y0.dtype and y1.shape == y0.shape == f.shape
        assert y1.tolist() == y0.tolist() if text else np.array_equal(y1, y0, equal_nan=y0.dtype.kind == "f")
    # the bound is exact: one byte (or one value) less and the first frame (a keyframe) is refused
    f, b = frames[0], blobs[0]
    with pytest.raises(CodecError, match=r"limit of \d+ (bytes|values)"):
        if text:
            with decode_limit(MAX_DECODED_BYTES, f.size - 1):
                get_codec(cfg).decode(b)
        else:
            with decode_limit(f.nbytes - 1):
                get_codec(cfg).decode(b)


# ------------------------------------------------------------------------------------- the context
def test_limits_default_to_the_global_ones_nest_only_tighter_and_stay_per_thread():
    assert current_decode_limit() == MAX_DECODED_BYTES and current_string_limit() == MAX_STRING_VALUES
    with decode_limit(1000, 10):
        assert (current_decode_limit(), current_string_limit()) == (1000, 10)
        with decode_limit(10**12, 10**9):  # an inner block cannot widen the outer bound
            assert (current_decode_limit(), current_string_limit()) == (1000, 10)
        with decode_limit(100):
            assert (current_decode_limit(), current_string_limit()) == (100, 10)
        seen = []
        t = threading.Thread(target=lambda: seen.append(current_decode_limit()))
        t.start()
        t.join()
        assert seen == [MAX_DECODED_BYTES]  # another thread (a receiver's other task) is not affected
    assert current_decode_limit() == MAX_DECODED_BYTES
    with decode_limit(10**12):
        assert current_decode_limit() == MAX_DECODED_BYTES  # never above the global limit


def test_frame_limits():
    with frame_decode_limit(30, 64, "int16"):
        assert current_decode_limit() == 30 * 64 * 2
    with frame_decode_limit(15, 8, "float64"):
        assert current_decode_limit() == 15 * 8 * 8
    with frame_decode_limit(1, 1, "string"):
        assert (current_decode_limit(), current_string_limit()) == (MIN_TEXT_FRAME_BYTES, 1)
    with frame_decode_limit(MAX_STRING_VALUES, 1, "string"):
        assert current_decode_limit() == MAX_DECODED_BYTES


# ------------------------------------------------------------------------------------- the receiver
class _NoTransport:  # the offline stub of tests/test_receiver_offline.py: frames go to Receiver.handle
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None


def test_receiver_conceals_and_counts_a_bomb_frame_and_goes_on(caplog):
    from neurolink.receiver import Receiver
    from neurolink.sinks.base import MemorySink
    from neurolink.wire import format as w

    cfg = {"id": "delta-zstd"}
    x = _walk(30 * 10, 4, 5)
    enc = get_codec(cfg)
    n_s = BOMB_BYTES // (4 * 2)
    bomb = pack_array_header(np.zeros((0, 4), np.int16))[:4] + struct.pack("<I", n_s) + _Z.compress(bytes(BOMB_BYTES))
    sink = MemorySink()
    rx = Receiver(_NoTransport(), lambda h: [sink], conceal="zeros", clock_settle_s=0.0)
    rx.handle(w.pack_stream_header(w.StreamHeader(1, "s", "EEG", "sid", 1000.0, 4, "int16", "", cfg, [cfg], 30, "h")))
    caplog.set_level(logging.WARNING, logger="neurolink.receiver")
    for i in range(10):
        payload = bomb if i == 4 else enc.encode(x[i * 30:(i + 1) * 30])
        msg = w.pack_frame(1, i, 1.0 + i * 0.03, 30, 4, "int16", 0, payload, w.FLAG_KEYFRAME)
        if i == 4:
            tracemalloc.start()
            try:
                rx.handle(msg)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        else:
            rx.handle(msg)
    s = rx.streams[1].stats
    assert (s.frames_undecodable, s.frames_ok, s.frames_lost) == (1, 9, 0)
    assert peak < BOMB_BYTES // 16, f"{peak} bytes traced handling the bomb frame"
    y = sink.data()
    assert y.shape == x.shape
    assert not y[4 * 30:5 * 30].any()  # concealed (zeros)
    assert np.array_equal(np.delete(y, np.s_[120:150], 0), np.delete(x, np.s_[120:150], 0))  # the rest exact
    lines = [r.getMessage() for r in caplog.records if "undecodable payload" in r.getMessage()]
    assert len(lines) == 1 and "decode limit of 240 bytes" in lines[0], lines


def test_receiver_refuses_a_text_bomb_in_a_marker_stream_and_delivers_the_next_marker():
    from neurolink.receiver import Receiver
    from neurolink.sinks.base import MemorySink
    from neurolink.wire import format as w

    lad = [{"id": "nl-text"}]
    sink = MemorySink()
    rx = Receiver(_NoTransport(), lambda h: [sink], clock_settle_s=0.0)
    rx.handle(w.pack_stream_header(w.StreamHeader(1, "m", "Markers", "sid", 0.0, 1, "string", "", lad[0], lad, 1, "h")))
    txt = get_codec(lad[0])
    rx.handle(w.pack_frame(1, 0, 100.0, 1, 1, "string", 0, txt.encode([["start"]]), w.FLAG_KEYFRAME))
    rx.handle(w.pack_frame(1, 1, 101.0, 1, 1, "string", 0, _text_bomb_big_value(), w.FLAG_KEYFRAME))
    rx.handle(w.pack_frame(1, 2, 102.0, 1, 1, "string", 0, _text_bomb_many_values(), w.FLAG_KEYFRAME))
    rx.handle(w.pack_frame(1, 3, 103.0, 1, 1, "string", 0, txt.encode([["stop"]]), w.FLAG_KEYFRAME))
    s = rx.streams[1].stats
    assert (s.frames_undecodable, s.frames_ok) == (2, 2)
    assert sink.data().tolist() == [["start"], ["stop"]]
