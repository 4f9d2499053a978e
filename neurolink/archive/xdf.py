"""Export an archive to XDF (the LabRecorder format), readable by pyxdf and the XDF toolchain.

Written per the XDF 1.0 spec: ``XDF:`` magic, then chunks ``[n_len u8][len][tag u16][content]``: FileHeader
(1), StreamHeader (2), Samples (3, every sample with its own timestamp), ClockOffset (4, from the archive's
clock-offset history: value = receiver clock - sender clock) and StreamFooter (6). String (marker) streams are
written as XDF ``string`` streams, as LabRecorder writes them: per sample its timestamp, then per channel the
value's UTF-8 length (XDF variable-length integer) and bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from neurolink.archive.reader import Archive, open_archive

_XDF_FORMATS = {"int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "float32": "float32",
                "float64": "double64", "string": "string"}
_TS = struct.Struct("<Bd")  # timestamp bytes (8), timestamp


def _chunk(tag: int, content: bytes) -> bytes:
    n = len(content) + 2
    if n < 256:
        head = struct.pack("<BB", 1, n)
    elif n < 2**32:
        head = struct.pack("<BI", 4, n)
    else:
        head = struct.pack("<BQ", 8, n)
    return head + struct.pack("<H", tag) + content


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _stream_header(a: Archive) -> bytes:
    h = a.header
    fmt = _XDF_FORMATS.get(h["channel_format"])
    if fmt is None:
        raise ValueError(f"channel_format {h['channel_format']!r} has no XDF equivalent")
    desc = h.get("desc_xml") or "<desc/>"
    xml = (f'<?xml version="1.0"?><info><name>{escape(h["name"])}</name><type>{escape(h["type"])}</type>'
           f'<channel_count>{h["channel_count"]}</channel_count><nominal_srate>{h["nominal_srate"]!r}</nominal_srate>'
           f'<channel_format>{fmt}</channel_format><source_id>{escape(h["source_id"])}</source_id>'
           f'<version>1.1</version><created_at>0</created_at><hostname>{escape(h.get("hostname", ""))}</hostname>'
           f"{desc}</info>")
    return xml.encode()


def _string_samples(x: np.ndarray, ts: np.ndarray) -> bytes:
    """A Samples chunk body for a string stream (after the sample count)."""
    out = bytearray()
    for row, t in zip(x.tolist(), ts.tolist(), strict=True):
        out += _TS.pack(8, t)
        for v in row:
            b = v.encode("utf-8")
            out += _varlen(len(b))
            out += b
    return bytes(out)


def export_xdf(path: str, out: str | Path, stream_id: int = 1, samples_per_chunk: int = 10000) -> int:
    """Write the archive as a one-stream XDF file; returns the number of samples written."""
    a = open_archive(path)
    c = int(a.header["channel_count"])
    text = a.is_text
    dt = np.dtype("u1" if text else a.header["channel_format"]).newbyteorder("<")
    rec = np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", dt, (c,))])  # packed: XDF has no padding
    sid = struct.pack("<I", stream_id)
    first = last = 0.0
    n_total = 0
    with open(out, "wb") as f:
        f.write(b"XDF:")
        f.write(_chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>'))
        f.write(_chunk(2, sid + _stream_header(a)))
        for i in range(0, a.n_samples, samples_per_chunk):
            x, ts = a.read(i, i + samples_per_chunk)
            if text:
                body = _string_samples(x, ts)
            else:
                arr = np.empty(x.shape[0], dtype=rec)
                arr["tsb"] = 8
                arr["ts"] = ts
                arr["v"] = x
                body = arr.tobytes()
            f.write(_chunk(3, sid + _varlen(x.shape[0]) + body))
            if n_total == 0 and ts.size:
                first = float(ts[0])
            if ts.size:
                last = float(ts[-1])
            n_total += x.shape[0]
        if a.meta.get("timestamps_clock") == "sender":
            for idx, off in a.meta.get("clock_offsets", []):
                t_at = float(a.read(int(idx), int(idx) + 1)[1][0]) if idx < a.n_samples else last
                f.write(_chunk(4, sid + struct.pack("<dd", t_at - off, -float(off))))
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{first!r}</first_timestamp>'
                  f"<last_timestamp>{last!r}</last_timestamp><sample_count>{n_total}</sample_count></info>")
        f.write(_chunk(6, sid + footer.encode()))
    return n_total
