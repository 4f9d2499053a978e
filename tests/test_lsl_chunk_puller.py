"""LSL source hot path: ChunkPuller pulls into reused buffers; frame-aligned pulls never split a frame."""

from __future__ import annotations

import time

import numpy as np

from neurolink.lsl import make_info, pylsl
from neurolink.sources.lsl_inlet import ChunkPuller


def _pair(source_id: str, ch: int = 4):
    outlet = pylsl.StreamOutlet(make_info("nl-puller", "EEG", ch, 1000.0, "int16", source_id), chunk_size=0)
    inlet = pylsl.StreamInlet(pylsl.resolve_bypred(f"source_id='{source_id}'", 1, 10)[0], max_buflen=10, recover=False)
    inlet.open_stream(timeout=10)
    time.sleep(0.2)
    return outlet, inlet


def test_pull_waits_for_need_then_drains_and_keeps_values(source_id):
    outlet, inlet = _pair(source_id)
    p = ChunkPuller(inlet, 64)
    x = (np.arange(45)[:, None] * 10 + np.arange(4)).astype(np.int16)
    outlet.push_chunk(x, timestamp=pylsl.local_clock())
    got, ts = [], []
    end = time.monotonic() + 5
    while sum(len(g) for g in got) < 45 and time.monotonic() < end:
        n = p.pull(0.5, 30)
        got.append(p.data[:n].copy())
        ts.append(p.ts[:n].copy())
    assert np.array_equal(np.concatenate(got), x)
    assert np.all(np.diff(np.concatenate(ts)) > 0)
    assert p.pull(0.05, 30) == 0  # nothing queued: times out empty


def test_partial_frame_comes_back_on_timeout(source_id):
    outlet, inlet = _pair(source_id)
    p = ChunkPuller(inlet, 64)
    outlet.push_chunk(np.ones((10, 4), np.int16), timestamp=pylsl.local_clock())
    got = 0
    end = time.monotonic() + 5
    while got < 10 and time.monotonic() < end:
        got += p.pull(0.1, 30)  # asks for a whole frame, gets the 10 samples after the timeout
    assert got == 10


def test_samples_pushed_one_by_one_come_back_as_one_frame(source_id):
    outlet, inlet = _pair(source_id)
    p = ChunkPuller(inlet, 256)
    for i in range(30):  # one sample per push, as some devices do
        outlet.push_sample(np.full(4, i, np.int16), pylsl.local_clock())
    n = p.pull(2.0, 30)
    assert n == 30 and np.array_equal(p.data[:30, 0], np.arange(30))
