"""Golden fixtures: every later version must read these archive-path messages and this archive bit-exactly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from neurolink.archive import open_archive, verify_archive
from neurolink.codecs import get_codec
from neurolink.reliable.block import unpack_block
from neurolink.sinks.archive import ARCHIVE_CODEC
from neurolink.wire import ack as wack
from neurolink.wire import format as wire

HERE = Path(__file__).parent / "fixtures"
_spec = importlib.util.spec_from_file_location("make_fixtures", HERE / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)


def test_archive_frame_v1_decodes():
    af = wack.parse_archive_frame((HERE / "archive_frame_v1.bin").read_bytes())
    h = af.frame.header
    assert (af.oldest_seq, af.end_seq, h.stream_id, h.seq, h.n_samples) == (2, 9, 7, 3, 40)
    assert h.flags & wire.FLAG_RETRANSMIT and h.keyframe
    y, ts = unpack_block(af.frame.payload, 40, 3, get_codec(ARCHIVE_CODEC), 100.0)
    assert np.array_equal(y, make.golden_data()[:40])
    assert np.allclose(ts, np.concatenate([100.0 + i * 0.01 + np.arange(10) / 100.0 for i in range(4)]))


def test_ack_v1_bytes_stable():
    raw = (HERE / "ack_v1.bin").read_bytes()
    a = wack.parse_ack(raw)
    assert a == wack.Ack(7, 3, ((4, 2), (9, 1)))
    assert wack.pack_ack(a) == raw


def test_archive_v1_reads_and_verifies():
    path = str(HERE / "golden_v1.zarr")
    assert verify_archive(path)["ok"]
    a = open_archive(path)
    x, ts = a.read()
    assert np.array_equal(x, make.golden_data())
    assert np.allclose(ts, 100.0 + np.arange(900) / 100.0)
    assert a.header["name"] == "golden" and a.meta["format_version"] == 1 and a.meta["next_seq"] == 9


def test_archive_v2_reads_and_verifies():
    """format_version 2: the logs (checksums, clock offsets, gaps, codec history, sessions) in arrays under log/."""
    path = str(HERE / "golden_v2.zarr")
    rep = verify_archive(path)
    assert rep["ok"], rep["problems"]
    a = open_archive(path)
    x, ts = a.read()
    assert np.array_equal(x, make.golden_data())
    assert np.allclose(ts, 100.0 + np.arange(900) / 100.0)
    m = a.meta
    assert m["format_version"] == 2 and m["next_seq"] == 11 and m["n_samples"] == m["n_written"] == 900
    assert m["checksums"] == open_archive(str(HERE / "golden_v1.zarr")).meta["checksums"]  # the same chunks
    assert m["clock_offsets"] == [[0, 0.25], [500, 0.5]] and m["sessions"] == ["g"]
    assert [(g["first_seq"], g["end_seq"], g["sample_index"]) for g in m["gaps"]] == [(9, 11, 900)]
    assert m["codec_history"][0]["archive_codec"] == {"id": "neurolink.lossless"}
