"""An archive replayed as an LSL stream, paced by its timestamps: same samples, same metadata, real time."""

from __future__ import annotations

import threading
import time

import numpy as np

from neurolink.archive.replay import replay_archive
from neurolink.lsl import desc_xml, pylsl
from neurolink.sinks.archive import ArchiveSink
from neurolink.wire.format import StreamHeader


def test_replay_to_lsl(tmp_path, source_id):
    fs, n = 1000.0, 600
    x = np.cumsum(np.random.default_rng(5).integers(-9, 10, (n, 3)), axis=0).astype(np.int16)
    path = str(tmp_path / "r.zarr")
    desc = '<desc><channels><channel><label>A</label></channel><channel><label>B</label></channel><channel><label>C</label></channel></channels></desc>'
    s = ArchiveSink(path, chunk_samples=250)
    s.open(StreamHeader(1, "replayme", "EEG", source_id, fs, 3, "int16", desc_xml=desc))
    s.push(x, 50.0 + np.arange(n) / fs)
    s.close()
    done: dict[str, float] = {}

    def run() -> None:
        t = time.monotonic()
        done["pushed"] = replay_archive(path, wait_consumer_s=10.0)
        done["wall"] = time.monotonic() - t

    th = threading.Thread(target=run)
    th.start()
    found = pylsl.resolve_byprop("source_id", source_id + "@replay", 1, 10.0)
    assert found, "replayed stream not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=10)
    assert "<label>B</label>" in desc_xml(inlet.info(5.0))
    got, stamps = [], []
    deadline = time.monotonic() + 20
    while sum(len(c) for c in got) < n and time.monotonic() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.5, max_samples=1000)
        if chunk:
            got.append(np.asarray(chunk, dtype=np.int16))
            stamps.append(np.asarray(ts))
    th.join(20)
    y, t = np.concatenate(got), np.concatenate(stamps)
    assert done["pushed"] == n and np.array_equal(y, x)
    assert np.allclose(np.diff(t), 1 / fs, atol=1e-4)  # spacing kept
    assert done["wall"] >= 0.5  # paced: 0.6 s of data is not dumped at once (a lower bound, not a speed claim)
