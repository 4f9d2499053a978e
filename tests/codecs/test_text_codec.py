"""nl-text (string streams: LSL markers): exact round trip of any unicode, strict rejection of hostile payloads."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.codecs import get_codec
from neurolink.codecs.base import MAX_STRING_VALUES, STRING_CODE
from neurolink.codecs.text import FLAG_ZSTD, NlText, text_nbytes
from neurolink.errors import CodecError
from neurolink.wire import format as wire

# any unicode scalar value (no lone surrogates: they have no UTF-8 form), NUL and astral planes included
_chars = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
_values = st.one_of(st.just(""), st.text(_chars, max_size=40), st.sampled_from(["\x00", "stim/onset", "😀\x00𝄞"]))


def _obj(rows: list[list[str]], n_ch: int) -> np.ndarray:
    a = np.empty((len(rows), n_ch), dtype=object)
    for i, r in enumerate(rows):
        a[i, :] = r
    return a


@st.composite
def _frames(draw) -> np.ndarray:
    n_ch = draw(st.integers(1, 5))
    n_s = draw(st.integers(0, 12))
    return _obj([[draw(_values) for _ in range(n_ch)] for _ in range(n_s)], n_ch)


@settings(max_examples=200, deadline=None)
@given(_frames(), st.booleans())
def test_roundtrip_exact(x, repeat):
    if repeat and x.shape[0]:  # regular-rate blocks repeat themselves: exercises the zstd body
        x = np.concatenate([x] * 20)
    codec = get_codec({"id": "nl-text"})
    blob = codec.encode(x)
    y = get_codec(codec.get_config()).decode(blob)
    assert y.dtype == object and y.shape == x.shape
    assert all(type(v) is str for v in y.ravel())
    assert y.tolist() == x.tolist()
    # lossless means byte-exact text, not merely equal after normalisation
    assert [v.encode() for v in y.ravel()] == [v.encode() for v in x.ravel()]


def test_list_input_and_one_dimensional_input():
    codec = NlText()
    rows = [["trial 3", "a\x00"], ["", "{\"rt\": 0.5}"]]
    assert codec.decode(codec.encode(rows)).tolist() == rows  # a list of lists: trailing NUL kept
    assert codec.decode(codec.encode(["a", "b"])).tolist() == [["a"], ["b"]]
    assert codec.decode(codec.encode(np.array(["x", "yz"]))).tolist() == [["x"], ["yz"]]
    assert codec.decode(codec.encode(np.empty((0, 3), dtype=object))).shape == (0, 3)


def test_zstd_flag_only_when_smaller():
    codec = NlText()
    small = codec.encode([["stim/onset"]])
    assert small[1] == 0 and len(small) == 8 + 1 + 10
    big = codec.encode([[f'{{"trial": {i}, "cond": "congruent"}}'] for i in range(100)])
    assert big[1] == FLAG_ZSTD
    assert codec.decode(big)[99, 0] == '{"trial": 99, "cond": "congruent"}'


def test_text_nbytes_counts_utf8():
    assert text_nbytes(_obj([["ab", "é"], ["😀", ""]], 2)) == 2 + 2 + 4


@pytest.mark.parametrize("bad", [
    [[1, "a"]], [[b"bytes"]], [[None]], [["\ud800"]], np.zeros((2, 2), np.int16), np.zeros((2, 2, 2), dtype=object),
])
def test_encode_rejects_non_text(bad):
    with pytest.raises(CodecError, match="nl-text"):
        NlText().encode(bad)


def test_config_validation():
    assert get_codec({"id": "nl-text"}).get_config() == {"id": "nl-text", "level": 3}
    for level in (0, 23, 2.5, True):
        with pytest.raises(CodecError, match="level"):
            NlText(level=level)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ hostile
_SAMPLES = [
    NlText().encode(_obj([["stim/onset", "😀"], ["", "a\x00b"]], 2)),
    NlText().encode(_obj([[f"trial {i}", '{"k": "v"}'] for i in range(40)], 2)),  # zstd body
    NlText().encode(np.empty((0, 2), dtype=object)),
]


@pytest.mark.parametrize("blob", _SAMPLES)
def test_every_truncation_and_extension_is_rejected(blob):
    codec = NlText()
    codec.decode(blob)
    for k in range(len(blob)):
        with pytest.raises(CodecError, match="nl-text"):
            codec.decode(blob[:k])
    with pytest.raises(CodecError, match="nl-text"):
        codec.decode(blob + b"\x00")


def _head(n_s: int, n_ch: int, flags: int = 0, code: int = STRING_CODE) -> bytes:
    return struct.pack("<BBHI", code, flags, n_ch, n_s)


@pytest.mark.parametrize("blob, msg", [
    (_head(1, 1, code=1) + b"\x00", "dtype code"),
    (_head(1, 1, flags=0x80) + b"\x00", "flag"),
    (_head(0xFFFFFFFF, 0xFFFF), "limit"),
    (_head(MAX_STRING_VALUES + 1, 1), "limit"),
    (_head(1, 1) + b"\xff\xff\xff\xff\x0f", "exceeds"),  # a length far past the body
    (_head(1, 1) + b"\x80\x80\x80\x80\x80\x80\x01", "value length"),
    (_head(1, 1) + b"\x80" * 10 + b"\x01", "varint too long"),
    (_head(1, 1) + b"\x02\xc3\x28", "UTF-8"),  # invalid continuation byte
    (_head(1, 1) + b"\x01\xff", "UTF-8"),
    (_head(1, 1) + b"\x03\xed\xa0\x80", "UTF-8"),  # an encoded surrogate is not UTF-8
    (_head(2, 1) + b"\x01\x01\xc3\xa9", "UTF-8"),  # a character split across two values
    (_head(1, 1) + b"\x01ab", "add up"),
    (_head(1, 1, FLAG_ZSTD) + b"\x00\x01\x02", "zstd"),
    (_head(1, 1, FLAG_ZSTD) + zstandard.ZstdCompressor(write_content_size=False).compress(b"\x01a"), "declares"),
    (_head(1, 1, FLAG_ZSTD) + zstandard.ZstdCompressor().compress(b"\x01a") * 2, "trailing"),
])
def test_hostile_payloads_are_rejected(blob, msg):
    with pytest.raises(CodecError, match=msg):
        NlText().decode(blob)


def test_zstd_bomb_is_refused_before_inflating():
    # a zstd frame header (single segment, 8-byte content size) declaring 300 MiB, then one empty last block
    bomb = b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", 300 << 20) + b"\x01\x00\x00"
    assert zstandard.frame_content_size(bomb) == 300 << 20
    with pytest.raises(CodecError, match="declares"):
        NlText().decode(_head(1, 1, FLAG_ZSTD) + bomb)


def test_random_garbage_only_raises_codec_error():
    rng = np.random.default_rng(7)
    codec = NlText()
    for blob in _SAMPLES:
        for _ in range(300):
            b = bytearray(blob)
            for p in rng.integers(0, len(b), rng.integers(1, 4)):
                b[p] ^= 1 << int(rng.integers(8))
            try:
                codec.decode(bytes(b))
            except CodecError:
                pass


# ------------------------------------------------------------------------------------------------ wire
def test_string_frames_on_the_wire():
    x = _obj([["stim/onset"]], 1)
    payload = NlText().encode(x)
    msg = wire.pack_frame(3, 7, 12.5, 1, 1, "string", 0, payload, wire.FLAG_KEYFRAME)
    f = wire.parse_frame(msg)
    assert f.header.dtype == "string" and msg[34] == STRING_CODE == 7
    assert NlText().decode(f.payload).tolist() == [["stim/onset"]]
    # the string code is bounded by value count, not itemsize
    head = bytearray(msg)
    struct.pack_into("<I", head, 28, MAX_STRING_VALUES)
    struct.pack_into("<H", head, 32, 2)
    with pytest.raises(wire.WireFormatError, match="string values"):
        wire.parse_frame_header(bytes(head))


def test_numeric_codecs_reject_the_string_code():
    blob = get_codec({"id": "delta-zstd"}).encode(np.zeros((2, 1), np.int16))
    with pytest.raises(CodecError, match="unknown dtype code 7"):
        get_codec({"id": "delta-zstd"}).decode(bytes([STRING_CODE]) + blob[1:])
