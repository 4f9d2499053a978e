"""XDF export: pyxdf reads back the samples, timestamps, header and channel metadata."""

from __future__ import annotations

import numpy as np
import pytest

from neurolink.archive.cli import main as archive_cli
from neurolink.sinks.archive import ArchiveSink
from neurolink.wire.format import StreamHeader

pyxdf = pytest.importorskip("pyxdf")


def test_export_xdf_readable_by_pyxdf(tmp_path, recording):
    x, fs = recording
    x = np.ascontiguousarray(x[:3000])
    desc = "<desc><channels><channel><label>first</label></channel></channels></desc>"
    path = str(tmp_path / "a.zarr")
    s = ArchiveSink(path, chunk_samples=1000)
    s.open(StreamHeader(1, "xdfme", "Extracellular", "xdf-1", fs, x.shape[1], "int16", desc_xml=desc))
    s.set_clock_offset(0.25)
    for k in range(0, 3000, 300):
        s.write_frame(k // 300, x[k:k + 300], 10.0 + np.arange(k, k + 300) / fs)
    s.close()
    out = tmp_path / "a.xdf"
    assert archive_cli(["export", path, str(out), "--format", "xdf"]) == 0
    streams, _hdr = pyxdf.load_xdf(str(out), synchronize_clocks=False, dejitter_timestamps=False)
    (st,) = streams
    assert np.array_equal(st["time_series"], x) and st["time_series"].dtype == np.int16
    assert np.array_equal(st["time_stamps"], 10.0 + np.arange(3000) / fs)
    assert st["info"]["name"] == ["xdfme"] and st["info"]["source_id"] == ["xdf-1"]
    assert st["info"]["desc"][0]["channels"][0]["channel"][0]["label"] == ["first"]
    synced, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)  # clock offsets applied: receiver clock
    assert np.allclose(synced[0]["time_stamps"], 10.0 - 0.25 + np.arange(3000) / fs)
