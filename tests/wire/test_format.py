"""Wire format v1: round trips, strict parsing, and fuzzing (only WireFormatError may come out)."""

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolink.errors import WireFormatError
from neurolink.wire import format as w

frames = st.builds(
    lambda sid, seq, ts, ns, nc, dt, lvl, payload, flags: w.pack_frame(sid, seq, ts, ns, nc, dt, lvl, payload, flags),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(0, 4096),
    st.integers(1, 1024),
    st.sampled_from(["int16", "int32", "float32"]),
    st.integers(0, 255),
    st.binary(max_size=512),
    st.sampled_from([0, w.FLAG_KEYFRAME, w.FLAG_KEYFRAME | w.FLAG_RETRANSMIT]),
)


@settings(max_examples=300, deadline=None)
@given(frames)
def test_frame_roundtrip(msg):
    f = w.parse_frame(msg)
    assert w.pack_frame(f.header.stream_id, f.header.seq, f.header.timestamp, f.header.n_samples,
                        f.header.n_channels, f.header.dtype, f.header.level, f.payload, f.header.flags) == msg


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.data())
def test_mutated_frames_raise_wire_error_only(msg, data):
    b = bytearray(msg)
    op = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if op == "flip":
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= data.draw(st.integers(1, 255))
    elif op == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    else:
        b += data.draw(st.binary(min_size=1, max_size=16))
    with pytest.raises(WireFormatError):
        w.parse_frame(bytes(b))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(b):
    for parse in (w.parse_frame, w.parse_stream_header, w.parse_feedback, w.parse_clock, w.message_type):
        try:
            parse(b)
        except WireFormatError:
            pass


def _header(**kw):
    d = dict(stream_id=7, name="probe", type="EEG", source_id="abc", nominal_srate=30000.0, channel_count=64,
             channel_format="int16", desc_xml="<desc><channels/></desc>", codec={"id": "delta-zstd"},
             ladder=[{"id": "delta-zstd"}], frame_samples=30, hostname="h")
    d.update(kw)
    return w.StreamHeader(**d)


def test_stream_header_roundtrip():
    h = _header()
    assert w.parse_stream_header(w.pack_stream_header(h)) == h


def _resign(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("patch, field", [
    ({"channel_count": 0}, "json.channel_count"),
    ({"channel_format": "complex"}, "json.channel_format"),
    ({"nominal_srate": -1.0}, "json.nominal_srate"),
])
def test_stream_header_invalid_values_name_field(patch, field):
    import json

    h = _header()
    d = h.to_json_dict()
    d.update(patch)
    body = json.dumps(d).encode()
    msg = _resign(struct.pack("<4sBBII", w.MAGIC, 1, w.MSG_STREAM_HEADER, 7, len(body)) + body)
    with pytest.raises(WireFormatError, match=field):
        w.parse_stream_header(msg)


def test_header_unknown_key_and_bad_json():
    body = b'{"name": 1}'
    msg = _resign(struct.pack("<4sBBII", w.MAGIC, 1, w.MSG_STREAM_HEADER, 7, len(body)) + body)
    with pytest.raises(WireFormatError, match="json"):
        w.parse_stream_header(msg)
    body = b"\xff\xfe not json"
    msg = _resign(struct.pack("<4sBBII", w.MAGIC, 1, w.MSG_STREAM_HEADER, 7, len(body)) + body)
    with pytest.raises(WireFormatError, match="invalid JSON"):
        w.parse_stream_header(msg)


def test_frame_errors_name_field_and_offset():
    msg = bytearray(w.pack_frame(1, 2, 3.0, 30, 4, "int16", 0, b"xx"))
    bad = bytearray(msg)
    bad[0:4] = b"XXXX"
    with pytest.raises(WireFormatError, match=r"'magic' at offset 0"):
        w.parse_frame(bytes(bad))
    bad = bytearray(msg)
    bad[4] = 9
    with pytest.raises(WireFormatError, match=r"'version' at offset 4"):
        w.parse_frame(bytes(bad))
    # a header claiming a huge payload is rejected before any allocation
    body = struct.pack("<4sBBHIQdIHBBI", w.MAGIC, 1, w.MSG_FRAME, 0, 1, 0, 0.0, 30, 4, 1, 0, 2**31)
    with pytest.raises(WireFormatError, match="payload_len"):
        w.parse_frame(_resign(body))
    with pytest.raises(WireFormatError, match="crc32"):
        w.parse_frame(bytes(msg[:-1]) + bytes([msg[-1] ^ 1]))


def test_feedback_and_clock_roundtrip():
    fb = w.Feedback(1, 5, 12.5, 0.0, 1048576.0, 3.0, -0.5, 0.25, 2.0, -1.0, 100, 2, 12.0, 0.5)  # float32-exact values
    assert w.parse_feedback(w.pack_feedback(fb)) == fb
    c = w.ClockProbe(1, 1, 1.0, 2.0, 3.0)
    assert w.parse_clock(w.pack_clock(c)) == c
    bad = w.Feedback(1, 5, 12.5, 0.0, 1e6, 3.0, -0.5, 1.5, 2.0, -1.0, 100, 2)
    with pytest.raises(WireFormatError, match="loss_fraction"):
        w.parse_feedback(w.pack_feedback(bad))
