"""String (marker) streams in the archive: exact text and timestamps through ArchiveSink -> reader, resumable,
verifiable, readable by plain zarr, exported to XDF / JSON lines and replayed as a cf_string LSL stream."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from neurolink.archive import open_archive, read_archive, verify_archive
from neurolink.archive.cli import main as archive_cli
from neurolink.errors import NeurolinkError
from neurolink.sinks.archive import TEXT_CHECKSUM, ArchiveSink, archive_codec_for, text_crc32
from neurolink.wire.format import StreamHeader

pytest.importorskip("zarr")

# what LSL cf_string and nl-text carry: empty strings, NULs (inside and trailing), any Unicode, long values
MARKERS = ["stim/onset", "trial 3", '{"trial": 3, "cond": "incongruent", "rt": 0.512}', "", "a\x00b", "\x00",
           "ÄÖÜ ∑ 😀 𝄞", "line\nbreak\ttab\r", "x" * 2000, "trail\x00\x00", "\u2028sep", "stim/offset"]
# marker time stamps are data: equal and decreasing ones are kept as sent
STAMPS = [5.0, 5.0, 4.5, 6.000001, 6.1, 7.25, 1e5 + 1 / 3, 1e5 + 0.5, 1e5 + 0.5, 1e5 + 0.75, 1e5 + 1.0, 1e5 + 2.0]


def _rows(n_ch: int) -> list[list[str]]:
    return [[m] + [f"{m}#{c}" for c in range(1, n_ch)] for m in MARKERS]


def _header(n_ch: int = 2, fs: float = 0.0, session: str = "s1") -> StreamHeader:
    return StreamHeader(1, "nl-markers", "Markers", "mk-1", fs, n_ch, "string",
                        desc_xml="<desc><manufacturer>PsychoPy</manufacturer></desc>", session=session)


def _frame(row: list[str]) -> np.ndarray:
    a = np.empty((1, len(row)), dtype=object)
    a[0] = row
    return a


def _write(sink: ArchiveSink, rows: list[list[str]], first: int, last: int) -> None:
    for seq in range(first, last):  # an irregular stream: one marker per frame with its own time stamp
        sink.write_frame(seq, _frame(rows[seq]), np.array([STAMPS[seq]]))


def _check_exact(path: str, rows: list[list[str]]) -> None:
    x, ts = read_archive(path)
    assert x.dtype == object and x.shape == (len(rows), len(rows[0]))
    assert x.tolist() == rows and all(type(v) is str for v in x.ravel())
    assert ts.tolist() == STAMPS[:len(rows)]  # bit-exact float64, not just close


@pytest.mark.parametrize("n_ch", [1, 3])
def test_markers_round_trip_and_resume_after_kill(tmp_path, n_ch):
    rows = _rows(n_ch)
    path = str(tmp_path / "m.zarr")
    s = ArchiveSink(path, chunk_samples=5, flush_s=0.0)  # flush_s 0: every marker durable at once
    s.open(_header(n_ch))
    _write(s, rows, 0, 7)  # 7 markers: one full chunk + a partial one; no close(): the process "dies"
    assert s.next_seq == 7 and open_archive(path).meta["n_samples"] == 7
    s2 = ArchiveSink(path, chunk_samples=5, flush_s=0.0)
    s2.open(_header(n_ch))
    assert s2.resumed and s2.next_seq == 7
    _write(s2, rows, 7, len(rows))
    s2.close()
    _check_exact(path, rows)
    rep = verify_archive(path)
    assert rep["ok"], rep["problems"]
    assert rep["chunks"] == 3 and rep["timestamps_backwards"] == 1  # reported, not a problem for markers
    a = open_archive(path)
    assert a.is_text and a.header["desc_xml"].startswith("<desc><manufacturer>")
    assert a.meta["samples_checksum"] == TEXT_CHECKSUM and a.meta["next_seq"] == len(rows)
    assert a.meta["codec_history"][0]["wire_codec"] == archive_codec_for("string") == {"id": "nl-text"}


def test_buffered_markers_are_not_durable_and_come_back(tmp_path):
    """With a long flush_s and no event loop, markers wait in memory: the durable point says so, and the
    reliable path resends from there (here: the test writes them again from the durable point)."""
    rows = _rows(2)
    path = str(tmp_path / "b.zarr")
    s = ArchiveSink(path, chunk_samples=4, flush_s=3600.0)
    s.open(_header())
    _write(s, rows, 0, 6)  # chunk 0 written when full; markers 4, 5 only buffered
    assert s.next_seq == 4
    s2 = ArchiveSink(path, chunk_samples=4, flush_s=3600.0)
    s2.open(_header())
    assert s2.next_seq == 4
    _write(s2, rows, 4, len(rows))
    s2.add_eos(len(rows))  # the sender's end of stream makes the partial chunk durable
    _check_exact(path, rows)
    assert verify_archive(path)["ok"]


def test_lone_marker_is_flushed_by_the_timer_on_the_running_loop(tmp_path):
    """Plain-sink path inside an event loop (the receiver's): a lone marker is on disk within flush_s, without
    waiting for the next marker or for close()."""
    path = str(tmp_path / "t.zarr")
    rows = _rows(2)

    async def run() -> tuple[int, int, int]:
        s = ArchiveSink(path, chunk_samples=100, flush_s=1.0)
        s.open(_header())
        s.push(_frame(rows[0]), np.array([STAMPS[0]]))  # < flush_s after open's write: scheduled, not written
        s.push(_frame(rows[1]), np.array([STAMPS[1]]))
        before = open_archive(path).n_samples
        await asyncio.sleep(1.6)  # the timer wrote both, nothing else happened
        after = open_archive(path).n_samples
        s.push(_frame(rows[2]), np.array([STAMPS[2]]))
        s.close()
        return before, after, open_archive(path).n_samples

    before, after, final = asyncio.run(run())
    assert (before, after, final) == (0, 2, 3)
    a = open_archive(path)
    assert a.meta["timestamps_clock"] == "receiver" and a.read()[0].tolist() == rows[:3]
    assert verify_archive(path)["ok"]


@pytest.mark.parametrize("fmt", ["int16", "string"])
def test_second_kill_after_a_resume_keeps_the_durable_tail(tmp_path, fmt):
    """Closed with a short last chunk, reopened, killed before that chunk was rewritten, reopened again: the
    short chunk's samples (acknowledged long ago) are still there (a resume used to delete that chunk)."""
    path = str(tmp_path / "d.zarr")
    hdr = _header() if fmt == "string" else StreamHeader(1, "d", "EEG", "d-1", 100.0, 2, "int16", session="s1")
    data = (np.array(_rows(2), dtype=object) if fmt == "string"
            else np.arange(24, dtype=np.int16).reshape(12, 2))
    s = ArchiveSink(path, chunk_samples=5, flush_s=3600.0)
    s.open(hdr)
    for seq in range(7):
        s.write_frame(seq, data[seq:seq + 1], np.array([STAMPS[seq]]))
    s.close()
    for _ in range(2):  # reopened and killed (no close) twice
        k = ArchiveSink(path, chunk_samples=5, flush_s=3600.0)
        k.open(hdr)
        assert k.resumed and k.next_seq == 7
    s3 = ArchiveSink(path, chunk_samples=5, flush_s=3600.0)
    s3.open(hdr)
    for seq in range(7, 12):
        s3.write_frame(seq, data[seq:seq + 1], np.array([STAMPS[seq]]))
    s3.close()
    x, ts = read_archive(path)
    assert x.tolist() == data.tolist() and ts.tolist() == STAMPS
    rep = verify_archive(path)
    assert rep["problems"] == ([] if fmt == "string" else ["1 timestamps go backwards"])  # numeric: flagged


def test_text_crc_definition():
    """CRC32 over each value's UTF-8 length (u32 LE) then its bytes, in C order: documented in docs/archive.md."""
    a = np.array([["ab", ""], ["\x00", "é"]], dtype=object)
    raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in ["ab", "", "\x00", "é"])
    assert text_crc32(a) == zlib.crc32(raw)
    assert text_crc32(np.array([["ab", ""]], dtype=object)) != text_crc32(np.array([["a", "b"]], dtype=object))
    assert text_crc32(a.astype(np.dtypes.StringDType())) == text_crc32(a)  # what zarr hands back


def test_verify_detects_a_tampered_marker_chunk(tmp_path, capsys):
    import zarr

    rows = _rows(2)
    path = str(tmp_path / "v.zarr")
    s = ArchiveSink(path, chunk_samples=4)
    s.open(_header())
    _write(s, rows, 0, len(rows))
    s.close()
    assert archive_cli(["verify", path]) == 0
    z = zarr.open_group(path, mode="r+")["samples"]
    z[5, 1] = "trial 4"  # one marker's text changed through zarr itself: the chunk decodes, its CRC does not match
    assert archive_cli(["verify", path]) == 1
    assert "checksum mismatch in chunks [1]" in capsys.readouterr().out
    z[5, 1] = rows[5][1]
    assert verify_archive(path)["ok"]
    chunk = Path(path) / "samples" / "c" / "2" / "0"
    chunk.write_bytes(b"garbage" + chunk.read_bytes()[7:])  # a chunk that no longer decodes: reported, no crash
    rep = verify_archive(path)
    assert not rep["ok"] and rep["bad_chunks"] == [2] and "does not decode" in " ".join(rep["problems"])


def test_bad_values_are_refused_before_buffering(tmp_path):
    s = ArchiveSink(str(tmp_path / "r.zarr"), chunk_samples=4)
    s.open(_header())
    with pytest.raises(NeurolinkError, match="expected str"):
        s.write_frame(0, np.array([[b"bytes", "ok"]], dtype=object), np.array([1.0]))
    with pytest.raises(NeurolinkError, match="UTF-8"):
        s.write_frame(0, np.array([["\ud800", "ok"]], dtype=object), np.array([1.0]))
    with pytest.raises(NeurolinkError, match="2 channels"):
        s.write_frame(0, np.array([["one"]], dtype=object), np.array([1.0]))
    s.write_frame(0, _frame(["fine", "too"]), np.array([1.0]))
    s.close()
    assert read_archive(str(tmp_path / "r.zarr"))[0].tolist() == [["fine", "too"]]


def test_plain_zarr_reads_markers_in_a_subprocess(tmp_path):
    """No neurolink, no pickle: zarr's own string data type (vlen-utf8)."""
    rows = _rows(3)
    path = str(tmp_path / "p.zarr")
    s = ArchiveSink(path, chunk_samples=5)
    s.open(_header(3))
    _write(s, rows, 0, len(rows))
    s.close()
    (tmp_path / "rows.json").write_text(json.dumps({"rows": rows, "ts": STAMPS}))
    meta = json.loads((Path(path) / "samples" / "zarr.json").read_text())
    assert meta["data_type"] == "string" and [c["name"] for c in meta["codecs"]] == ["vlen-utf8", "zstd"]
    code = ("import sys, json, zarr; g = zarr.open_group(sys.argv[1], mode='r'); want = json.load(open(sys.argv[2]));"
            "ok = g['samples'][:].tolist() == want['rows'] and g['timestamps'][:].tolist() == want['ts'] "
            "and 'neurolink' not in sys.modules; sys.exit(0 if ok else 3)")
    res = subprocess.run([sys.executable, "-c", code, path, str(tmp_path / "rows.json")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]


def _marker_archive(tmp_path, n_ch: int = 2, offset: float | None = 0.25) -> tuple[str, list[list[str]]]:
    rows = _rows(n_ch)
    path = str(tmp_path / "x.zarr")
    s = ArchiveSink(path, chunk_samples=5)
    s.open(_header(n_ch))
    if offset is not None:
        s.set_clock_offset(offset)
    _write(s, rows, 0, len(rows))
    s.close()
    return path, rows


def _read_xdf_strings(path: Path) -> tuple[list[list[str]], list[float], str]:
    """A minimal XDF reader for one string stream (used when pyxdf is not installed)."""
    buf = path.read_bytes()
    assert buf[:4] == b"XDF:"
    pos, rows, ts, fmt = 4, [], [], ""

    def varlen(p: int) -> tuple[int, int]:
        nb = buf[p]
        return int.from_bytes(buf[p + 1:p + 1 + nb], "little"), p + 1 + nb

    while pos < len(buf):
        n, pos = varlen(pos)
        tag = struct.unpack_from("<H", buf, pos)[0]
        body = buf[pos + 2:pos + n]
        pos += n
        if tag == 2:
            fmt = body[4:].decode().split("<channel_format>")[1].split("<")[0]
            n_ch = int(body[4:].decode().split("<channel_count>")[1].split("<")[0])
        elif tag == 3:
            p = 4
            n_s, p = int.from_bytes(body[p + 1:p + 1 + body[p]], "little"), p + 1 + body[p]
            for _ in range(n_s):
                assert body[p] == 8
                ts.append(struct.unpack_from("<d", body, p + 1)[0])
                p += 9
                row = []
                for _c in range(n_ch):
                    ln, p2 = int.from_bytes(body[p + 1:p + 1 + body[p]], "little"), p + 1 + body[p]
                    row.append(body[p2:p2 + ln].decode("utf-8"))
                    p = p2 + ln
                rows.append(row)
    return rows, ts, fmt


def test_xdf_export_of_markers(tmp_path):
    path, rows = _marker_archive(tmp_path)
    out = tmp_path / "m.xdf"
    assert archive_cli(["export", path, str(out), "--format", "xdf"]) == 0
    got, ts, fmt = _read_xdf_strings(out)  # the bytes, independently of pyxdf
    assert fmt == "string" and got == rows and ts == STAMPS
    try:
        import pyxdf
    except ImportError:
        return
    streams, _ = pyxdf.load_xdf(str(out), synchronize_clocks=False, dejitter_timestamps=False)
    (st,) = streams
    assert st["info"]["channel_format"] == ["string"] and st["info"]["type"] == ["Markers"]
    assert st["info"]["desc"][0]["manufacturer"] == ["PsychoPy"]
    assert st["time_series"] == rows and st["time_stamps"].tolist() == STAMPS
    synced, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)  # clock offsets applied: receiver clock
    assert np.allclose(synced[0]["time_stamps"], np.array(STAMPS) - 0.25)


def test_jsonl_export_transcode_and_read(tmp_path, capsys):
    path, rows = _marker_archive(tmp_path, 3)
    assert archive_cli(["export", path, str(tmp_path / "ex")]) == 0  # default for markers: JSON lines
    lines = (tmp_path / "ex.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 1
    recs = [json.loads(line) for line in lines[:-1]]
    assert [r["v"] for r in recs] == rows and [r["t"] for r in recs] == STAMPS
    side = json.loads((tmp_path / "ex.json").read_text())
    assert side["channel_format"] == "string" and side["values_file"] == "ex.jsonl" and side["shape"] == [len(rows), 3]
    capsys.readouterr()
    assert archive_cli(["export", path, str(tmp_path / "ex2"), "--format", "npy"]) == 2
    assert "use --format jsonl" in capsys.readouterr().err
    dst = str(tmp_path / "t.zarr")
    assert archive_cli(["transcode", path, dst, "--chunk-s", "2"]) == 0
    assert archive_cli(["verify", dst]) == 0
    _check_exact(dst, rows)
    assert open_archive(dst).meta["clock_offsets"] == [[0, 0.25]]
    assert archive_cli(["read", path, "--stop", "5"]) == 0
    out = capsys.readouterr().out
    assert '"a\\u0000b"' in out and "(irregular)" in out


def test_replay_markers_to_lsl(tmp_path, source_id):
    from neurolink.archive.replay import replay_archive
    from neurolink.lsl import pylsl

    rows = [[f"m{i}", MARKERS[i % len(MARKERS)]] for i in range(8)]
    stamps = [50.0, 50.1, 50.1, 50.25, 50.3, 50.45, 50.5, 50.6]
    path = str(tmp_path / "r.zarr")
    s = ArchiveSink(path, chunk_samples=3)
    s.open(StreamHeader(1, "replaymk", "Markers", source_id, 0.0, 2, "string", session="s"))
    for seq, (r, t) in enumerate(zip(rows, stamps, strict=True)):
        s.write_frame(seq, _frame(r), np.array([t]))
    s.close()
    done: dict[str, int] = {}

    def run() -> None:
        done["pushed"] = replay_archive(path, wait_consumer_s=10.0)

    th = threading.Thread(target=run)
    th.start()
    found = pylsl.resolve_byprop("source_id", source_id + "@replay", 1, 10.0)
    assert found, "replayed marker stream not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=10)
    assert inlet.info(5.0).channel_format() == pylsl.cf_string
    got: list[list[str]] = []
    ts: list[float] = []
    deadline = time.monotonic() + 20
    while len(got) < len(rows) and time.monotonic() < deadline:
        chunk, t = inlet.pull_chunk(timeout=0.5)
        got += chunk
        ts += t
    th.join(20)
    assert done["pushed"] == len(rows) and got == rows
    assert np.allclose(np.diff(ts), np.diff(stamps), atol=1e-3)  # each marker at its own (shifted) time


def test_on_disk_string_chunk_layout(tmp_path):
    """The documented format, read without zarr: a chunk object is zstd(u32 count, then per value in C order a
    u32 UTF-8 length and the bytes); a short last chunk is padded with the fill value "" to the chunk shape."""
    import zstandard

    rows = _rows(2)
    path = tmp_path / "f.zarr"
    s = ArchiveSink(str(path), chunk_samples=5)
    s.open(_header())
    _write(s, rows, 0, len(rows))
    s.close()
    meta = json.loads((path / "samples" / "zarr.json").read_text())
    assert (meta["data_type"], meta["fill_value"], meta["chunk_grid"]["configuration"]["chunk_shape"]) == ("string", "", [5, 2])
    assert meta["codecs"] == [{"name": "vlen-utf8", "configuration": {}},
                              {"name": "zstd", "configuration": {"level": 3, "checksum": False}}]
    sums = open_archive(str(path)).meta["checksums"]["samples"]
    for k in range(3):
        raw = zstandard.ZstdDecompressor().decompressobj().decompress((path / "samples" / "c" / str(k) / "0").read_bytes())
        (count,) = struct.unpack_from("<I", raw, 0)
        pos, vals = 4, []
        for _ in range(count):
            (ln,) = struct.unpack_from("<I", raw, pos)
            vals.append(raw[pos + 4:pos + 4 + ln].decode("utf-8"))
            pos += 4 + ln
        assert pos == len(raw) and count == 10
        want = [v for r in rows[5 * k:5 * k + 5] for v in r]
        assert vals[:len(want)] == want and set(vals[len(want):]) <= {""}
        assert sums[k] == text_crc32(np.array(want, dtype=object))
    ts = np.frombuffer(zstandard.ZstdDecompressor().decompressobj().decompress(
        (path / "timestamps" / "c" / "0").read_bytes()), "<f8")
    assert ts.tolist() == STAMPS[:5]
