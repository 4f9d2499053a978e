"""Wire format v1: stream-header, frame, feedback and clock messages (see docs/wire-format.md).

Every message starts with the 4-byte magic ``NLNK``, a version byte and a message-type byte, and ends
with a CRC32 of everything before it. Parsing is strict: any deviation raises
:class:`~neurolink.errors.WireFormatError` naming the field and byte offset. No pickle, no eval: the
stream header's body is JSON validated against a fixed schema, everything else is fixed-layout
little-endian structs.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from neurolink.codecs.base import (
    CODE_DTYPES,
    DTYPE_CODES,
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    MAX_STRING_VALUES,
    STRING_CODE,
)
from neurolink.errors import WireFormatError
from neurolink.wire.crc import crc32

MAGIC = b"NLNK"
WIRE_VERSION = 1

MSG_STREAM_HEADER = 1
MSG_FRAME = 2
MSG_FEEDBACK = 3
MSG_CLOCK = 4
MSG_ARCHIVE_FRAME = 5  # reliable archive path: layout and parser in neurolink/wire/ack.py
MSG_ACK = 6  # archive ack/nack, receiver -> sender: neurolink/wire/ack.py
MSG_TYPES = {MSG_STREAM_HEADER: "stream_header", MSG_FRAME: "frame", MSG_FEEDBACK: "feedback", MSG_CLOCK: "clock",
             MSG_ARCHIVE_FRAME: "archive_frame", MSG_ACK: "ack"}

# frame flags
FLAG_KEYFRAME = 1 << 0
FLAG_ENCRYPTED = 1 << 1
FLAG_END_OF_STREAM = 1 << 2
FLAG_RETRANSMIT = 1 << 3
# a copy of the frame just sent with the same seq, sent right behind it: the receiver measures the pair's
# dispersion (a capacity estimate for the rate controller) and never decodes or republishes it
FLAG_PROBE = 1 << 4
KNOWN_FLAGS = FLAG_KEYFRAME | FLAG_ENCRYPTED | FLAG_END_OF_STREAM | FLAG_RETRANSMIT | FLAG_PROBE

MAX_PAYLOAD = MAX_DECODED_BYTES
MAX_HEADER_JSON = 1 << 20  # 1 MiB of channel metadata is plenty
MAX_SAMPLES_PER_FRAME = 1 << 20

_PREFIX = struct.Struct("<4sBB")  # magic, version, msg type
# frame: prefix | flags u16 | stream_id u32 | seq u64 | timestamp f64 | n_samples u32 | n_channels u16 |
#        dtype u8 | level u8 | payload_len u32 || payload || crc32 u32
_FRAME = struct.Struct("<4sBBHIQdIHBBI")
FRAME_HEADER_SIZE = _FRAME.size  # 40
_CRC = struct.Struct("<I")
_SH = struct.Struct("<4sBBII")  # prefix | stream_id u32 | json_len u32
_FEEDBACK = struct.Struct("<4sBBIIddffffffIIff")
_CLOCK = struct.Struct("<4sBBIBddd")

_FRAME_FIELDS = (
    ("magic", 0), ("version", 4), ("msg_type", 5), ("flags", 6), ("stream_id", 8), ("seq", 12),
    ("timestamp", 20), ("n_samples", 28), ("n_channels", 32), ("dtype", 34), ("level", 35),
    ("payload_len", 36),
)


def _check_prefix(buf: bytes | memoryview, expected_type: int | None) -> int:
    if len(buf) < _PREFIX.size:
        raise WireFormatError("magic", 0, f"message of {len(buf)} bytes is shorter than the 6-byte prefix")
    magic, version, mtype = _PREFIX.unpack_from(buf, 0)
    if magic != MAGIC:
        raise WireFormatError("magic", 0, f"expected {MAGIC!r}, got {bytes(magic)!r}")
    if version != WIRE_VERSION:
        raise WireFormatError("version", 4, f"unsupported wire version {version} (this build reads {WIRE_VERSION})")
    if mtype not in MSG_TYPES:
        raise WireFormatError("msg_type", 5, f"unknown message type {mtype}")
    if expected_type is not None and mtype != expected_type:
        raise WireFormatError(
            "msg_type", 5, f"expected {MSG_TYPES[expected_type]} ({expected_type}), got {MSG_TYPES[mtype]} ({mtype})"
        )
    return mtype


def check_crc(buf: bytes | memoryview, end: int) -> None:
    """The message ends with the CRC-32 of its first ``end`` bytes, and nothing after it."""
    if len(buf) < end + 4:
        raise WireFormatError("crc32", end, f"message truncated: {len(buf)} bytes, need {end + 4}")
    if len(buf) > end + 4:
        raise WireFormatError("crc32", end + 4, f"{len(buf) - end - 4} trailing bytes after the CRC")
    (crc,) = _CRC.unpack_from(buf, end)
    actual = crc32(memoryview(buf)[:end])
    if crc != actual:
        raise WireFormatError("crc32", end, f"checksum mismatch (stored {crc:#010x}, computed {actual:#010x})")


def message_type(buf: bytes | memoryview) -> int:
    """Validate the common prefix and return the message type (to dispatch on)."""
    return _check_prefix(buf, None)


# ---------------------------------------------------------------------------------------------- frame
@dataclass(frozen=True, slots=True)
class FrameHeader:
    stream_id: int
    seq: int
    timestamp: float
    n_samples: int
    n_channels: int
    dtype: str
    level: int
    flags: int = 0
    payload_len: int = 0

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)


@dataclass(frozen=True, slots=True)
class Frame:
    header: FrameHeader
    payload: bytes


def pack_frame(
    stream_id: int,
    seq: int,
    timestamp: float,
    n_samples: int,
    n_channels: int,
    dtype: str,
    level: int,
    payload: bytes,
    flags: int = 0,
) -> bytes:
    """Serialise one frame message."""
    body = pack_frame_header(stream_id, seq, timestamp, n_samples, n_channels, dtype, level, len(payload), flags) + payload
    return body + _CRC.pack(crc32(body))


def pack_frame_header(stream_id: int, seq: int, timestamp: float, n_samples: int, n_channels: int, dtype: str,
                      level: int, payload_len: int, flags: int = 0) -> bytes:
    """The fixed 40-byte header of a frame whose payload is ``payload_len`` bytes (no payload, no CRC)."""
    if dtype not in DTYPE_CODES:
        raise WireFormatError("dtype", 34, f"unsupported dtype {dtype!r}")
    return _FRAME.pack(MAGIC, WIRE_VERSION, MSG_FRAME, flags, stream_id, seq, timestamp, n_samples, n_channels,
                       DTYPE_CODES[dtype], level, payload_len)


def frame_header_bytes(buf: bytes | memoryview) -> bytes:
    """The fixed 40-byte header (used as associated data by the encryption layer)."""
    return bytes(memoryview(buf)[:FRAME_HEADER_SIZE])


#: dtype code -> (name, itemsize), looked up per frame (numpy's dtype.name costs ~3 us a call)
_CODE_INFO = {code: (dt.name, dt.itemsize) for code, dt in CODE_DTYPES.items()}


def parse_frame_header(buf: bytes | memoryview) -> FrameHeader:
    """Parse and validate the fixed frame header (no CRC check: see :func:`parse_frame`)."""
    _check_prefix(buf, MSG_FRAME)
    if len(buf) < FRAME_HEADER_SIZE:
        raise WireFormatError("header", len(buf), f"frame header truncated: {len(buf)} of {FRAME_HEADER_SIZE} bytes")
    (_m, _v, _t, flags, sid, seq, ts, n_s, n_ch, dcode, level, plen) = _FRAME.unpack_from(buf, 0)
    if flags & ~KNOWN_FLAGS:
        raise WireFormatError("flags", 6, f"unknown flag bits {flags & ~KNOWN_FLAGS:#06x}")
    if not math.isfinite(ts):
        raise WireFormatError("timestamp", 20, f"timestamp must be finite, got {ts!r}")
    if n_s > MAX_SAMPLES_PER_FRAME:
        raise WireFormatError("n_samples", 28, f"{n_s} samples per frame exceed the limit {MAX_SAMPLES_PER_FRAME}")
    if n_ch == 0 and not flags & FLAG_END_OF_STREAM:
        raise WireFormatError("n_channels", 32, "zero channels")
    if dcode == STRING_CODE:  # str values have no itemsize: bound their count (their text is in the payload bound)
        if n_s * n_ch > MAX_STRING_VALUES:
            raise WireFormatError("n_samples", 28, f"{n_s}x{n_ch} string values exceed the limit {MAX_STRING_VALUES}")
        dtype_name = "string"
    elif dcode not in _CODE_INFO:
        raise WireFormatError("dtype", 34, f"unknown dtype code {dcode}")
    else:
        dtype_name, itemsize = _CODE_INFO[dcode]
        if n_s * n_ch * itemsize > MAX_DECODED_BYTES:
            raise WireFormatError("n_samples", 28, f"{n_s}x{n_ch} {dtype_name} exceeds {MAX_DECODED_BYTES} bytes")
    if plen > MAX_PAYLOAD:
        raise WireFormatError("payload_len", 36, f"{plen} bytes exceed the limit {MAX_PAYLOAD}")
    return FrameHeader(sid, seq, ts, n_s, n_ch, dtype_name, level, flags, plen)


def parse_frame(buf: bytes | memoryview) -> Frame:
    """Parse one frame message; raises WireFormatError on any malformed byte."""
    h = parse_frame_header(buf)
    end = FRAME_HEADER_SIZE + h.payload_len
    if len(buf) < end:
        raise WireFormatError("payload", FRAME_HEADER_SIZE, f"payload truncated: {len(buf) - FRAME_HEADER_SIZE} of {h.payload_len} bytes")
    check_crc(buf, end)
    return Frame(h, bytes(memoryview(buf)[FRAME_HEADER_SIZE:end]))


# -------------------------------------------------------------------------------------- stream header
_CHANNEL_FORMATS = ("int16", "int32", "float32", "float64", "string", "int8", "int64")


@dataclass(frozen=True)
class StreamHeader:
    """Everything a receiver needs to recreate the LSL stream: identity, format and channel metadata."""

    stream_id: int
    name: str
    type: str
    source_id: str
    nominal_srate: float
    channel_count: int
    channel_format: str
    desc_xml: str = ""
    codec: dict[str, Any] = field(default_factory=dict)
    ladder: list[dict[str, Any]] = field(default_factory=list)
    frame_samples: int = 0
    hostname: str = ""
    session: str = ""  # random per sender start: a new session resets the receiver's sequence state
    wire_version: int = WIRE_VERSION

    def to_json_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("stream_id")
        return d


_SH_SCHEMA: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "name": (str, True),
    "type": (str, True),
    "source_id": (str, True),
    "nominal_srate": ((int, float), True),
    "channel_count": (int, True),
    "channel_format": (str, True),
    "desc_xml": (str, False),
    "codec": (dict, False),
    "ladder": (list, False),
    "frame_samples": (int, False),
    "hostname": (str, False),
    "session": (str, False),
    "wire_version": (int, True),
}


def pack_stream_header(h: StreamHeader) -> bytes:
    body = json.dumps(h.to_json_dict(), separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_HEADER_JSON:
        raise WireFormatError("json", _SH.size, f"stream header of {len(body)} bytes exceeds {MAX_HEADER_JSON}")
    msg = _SH.pack(MAGIC, WIRE_VERSION, MSG_STREAM_HEADER, h.stream_id, len(body)) + body
    return msg + _CRC.pack(crc32(msg))


def parse_stream_header(buf: bytes | memoryview) -> StreamHeader:
    _check_prefix(buf, MSG_STREAM_HEADER)
    if len(buf) < _SH.size:
        raise WireFormatError("json_len", 10, f"stream header truncated: {len(buf)} of {_SH.size} bytes")
    _m, _v, _t, sid, jlen = _SH.unpack_from(buf, 0)
    if jlen > MAX_HEADER_JSON:
        raise WireFormatError("json_len", 10, f"{jlen} bytes exceed the limit {MAX_HEADER_JSON}")
    end = _SH.size + jlen
    if len(buf) < end:
        raise WireFormatError("json", _SH.size, f"body truncated: {len(buf) - _SH.size} of {jlen} bytes")
    check_crc(buf, end)
    try:
        d = json.loads(bytes(memoryview(buf)[_SH.size:end]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WireFormatError("json", _SH.size, f"invalid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise WireFormatError("json", _SH.size, f"expected a JSON object, got {type(d).__name__}")
    for key in d:
        if key not in _SH_SCHEMA:
            raise WireFormatError(f"json.{key}", _SH.size, "unknown key")
    for key, (types, required) in _SH_SCHEMA.items():
        if key not in d:
            if required:
                raise WireFormatError(f"json.{key}", _SH.size, "missing required key")
            continue
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, types):
            raise WireFormatError(f"json.{key}", _SH.size, f"expected {types}, got {type(v).__name__}")
    if d["wire_version"] != WIRE_VERSION:
        raise WireFormatError("json.wire_version", _SH.size, f"unsupported version {d['wire_version']}")
    if not 1 <= d["channel_count"] <= MAX_CHANNELS:
        raise WireFormatError("json.channel_count", _SH.size, f"must be in [1, {MAX_CHANNELS}], got {d['channel_count']}")
    if d["channel_format"] not in _CHANNEL_FORMATS:
        raise WireFormatError("json.channel_format", _SH.size, f"expected one of {_CHANNEL_FORMATS}, got {d['channel_format']!r}")
    if not (math.isfinite(d["nominal_srate"]) and d["nominal_srate"] >= 0):
        raise WireFormatError("json.nominal_srate", _SH.size, f"must be finite and >= 0, got {d['nominal_srate']!r}")
    if "frame_samples" in d and not 0 <= d["frame_samples"] <= MAX_SAMPLES_PER_FRAME:
        raise WireFormatError("json.frame_samples", _SH.size, f"out of range: {d['frame_samples']}")
    return StreamHeader(stream_id=sid, **d)


# ------------------------------------------------------------------------------------------- feedback
@dataclass(frozen=True, slots=True)
class Feedback:
    """Receiver -> sender report for one control interval (also carries the clock-probe echo)."""

    stream_id: int
    interval: int
    receiver_time: float
    probe_echo: float  # sender time of the last clock probe seen (0 if none)
    throughput_bps: float
    delay_ms: float
    delay_gradient: float
    loss_fraction: float
    jitter_buffer_ms: float
    fidelity: float
    frames_received: int
    frames_lost: int
    decode_us: float = 0.0
    probe_hold_s: float = 0.0  # time between probe arrival and this report


def pack_feedback(f: Feedback) -> bytes:
    msg = _FEEDBACK.pack(
        MAGIC, WIRE_VERSION, MSG_FEEDBACK, f.stream_id, f.interval, f.receiver_time, f.probe_echo,
        f.throughput_bps, f.delay_ms, f.delay_gradient, f.loss_fraction, f.jitter_buffer_ms, f.fidelity,
        f.frames_received, f.frames_lost, f.decode_us, f.probe_hold_s,
    )
    return msg + _CRC.pack(crc32(msg))


def parse_feedback(buf: bytes | memoryview) -> Feedback:
    _check_prefix(buf, MSG_FEEDBACK)
    if len(buf) < _FEEDBACK.size:
        raise WireFormatError("feedback", len(buf), f"truncated: {len(buf)} of {_FEEDBACK.size} bytes")
    check_crc(buf, _FEEDBACK.size)
    vals = _FEEDBACK.unpack_from(buf, 0)[3:]
    fb = Feedback(*vals)
    for name in ("receiver_time", "probe_echo", "throughput_bps", "delay_ms", "delay_gradient",
                 "loss_fraction", "jitter_buffer_ms", "fidelity", "decode_us", "probe_hold_s"):
        if not math.isfinite(getattr(fb, name)):
            raise WireFormatError(f"feedback.{name}", 6, "must be finite")
    if not 0.0 <= fb.loss_fraction <= 1.0:
        raise WireFormatError("feedback.loss_fraction", 6, f"must be in [0, 1], got {fb.loss_fraction}")
    return fb


# ---------------------------------------------------------------------------------------------- clock
@dataclass(frozen=True, slots=True)
class ClockProbe:
    """Sender -> receiver: sender LSL clock at send, for NTP-style offset estimation."""

    stream_id: int
    kind: int  # 0 = probe, 1 = reply, 2 = stream-header request (receiver saw frames of an unknown stream),
    # 3 = keyframe request (receiver -> sender: a frame at level int(t1) could not be decoded; t0 = its clock)
    t0: float
    t1: float
    t2: float


def pack_clock(c: ClockProbe) -> bytes:
    msg = _CLOCK.pack(MAGIC, WIRE_VERSION, MSG_CLOCK, c.stream_id, c.kind, c.t0, c.t1, c.t2)
    return msg + _CRC.pack(crc32(msg))


def parse_clock(buf: bytes | memoryview) -> ClockProbe:
    _check_prefix(buf, MSG_CLOCK)
    if len(buf) < _CLOCK.size:
        raise WireFormatError("clock", len(buf), f"truncated: {len(buf)} of {_CLOCK.size} bytes")
    check_crc(buf, _CLOCK.size)
    _m, _v, _t, sid, kind, t0, t1, t2 = _CLOCK.unpack_from(buf, 0)
    if kind not in (0, 1, 2, 3):
        raise WireFormatError("clock.kind", 10, f"expected 0, 1, 2 or 3, got {kind}")
    for name, v, off in (("t0", t0, 11), ("t1", t1, 19), ("t2", t2, 27)):
        if not math.isfinite(v):
            raise WireFormatError(f"clock.{name}", off, "must be finite")
    return ClockProbe(sid, kind, t0, t1, t2)
