"""Recordings: loading (.npy + JSON sidecar, .wav) and real-time replay paced by timestamps.

Two ways to replay: :class:`ReplaySource` feeds the sender directly (no LSL), and :class:`ReplayOutlet`
publishes the recording as a live LSL stream (what the demo and the tests use, like an acquisition app).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurolink.errors import ConfigError
from neurolink.lsl import make_info, pylsl
from neurolink.sources.base import Chunk, Source, StreamMeta

log = logging.getLogger(__name__)


@dataclass
class Recording:
    data: np.ndarray  # (samples, channels)
    fs: float
    channel_names: list[str] = field(default_factory=list)
    name: str = "recording"
    type: str = "EEG"
    units: str | None = None


def load_recording(path: str | Path) -> Recording:
    """Load ``NAME.npy`` (+ ``NAME.json`` sidecar with ``sampling_rate_hz``) or a ``.wav`` file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError("source.path", f"file not found: {p}")
    if p.suffix == ".npy":
        data = np.load(p, allow_pickle=False)
        side = p.with_suffix(".json")
        if not side.exists():
            raise ConfigError("source.path", f"{p.name} needs a JSON sidecar {side.name} with 'sampling_rate_hz'")
        meta = json.loads(side.read_text())
        if "sampling_rate_hz" not in meta:
            raise ConfigError("sampling_rate_hz", f"missing in {side}")
        fs = float(meta["sampling_rate_hz"])
        names = list(meta.get("channel_names", []))
        modality = str(meta.get("modality", "")).lower()
        kind = "ECoG" if "ecog" in modality else ("Extracellular" if "extracell" in modality or "tetrode" in modality else "EEG")
        units = "uV" if "uv" in str(meta.get("units", "")).lower() else None
        rec = Recording(data, fs, names, p.stem, kind, units)
    elif p.suffix == ".wav":
        from scipy.io import wavfile

        fs_i, data = wavfile.read(p)
        rec = Recording(data if data.ndim == 2 else data[:, None], float(fs_i), [], p.stem, "EEG")
    else:
        raise ConfigError("source.path", f"unsupported recording type {p.suffix!r} (expected .npy or .wav)")
    if rec.data.ndim != 2:
        raise ConfigError("source.path", f"expected (samples, channels) data, got shape {rec.data.shape}")
    if not rec.channel_names or len(rec.channel_names) != rec.data.shape[1]:
        rec.channel_names = [f"ch{i + 1}" for i in range(rec.data.shape[1])]
    return rec


def tile_channels(x: np.ndarray, n_channels: int) -> np.ndarray:
    """Repeat real channels to reach ``n_channels`` (used for throughput runs; say so when reporting)."""
    reps = int(np.ceil(n_channels / x.shape[1]))
    return np.ascontiguousarray(np.tile(x, (1, reps))[:, :n_channels])


class ReplaySource(Source):
    """Paced replay of an in-memory recording; timestamps on the local LSL clock."""

    def __init__(self, rec: Recording, chunk_samples: int | None = None, loop: bool = False, realtime: bool = True):
        self.rec = rec
        self.chunk = chunk_samples or max(1, int(round(rec.fs / 1000)))
        self.loop = loop
        self.realtime = realtime
        self.meta = StreamMeta(rec.name, rec.type, f"replay-{rec.name}", rec.fs, rec.data.shape[1], rec.data.dtype.name)

    async def open(self) -> StreamMeta:
        return self.meta

    async def chunks(self) -> AsyncIterator[Chunk]:
        x, fs, n = self.rec.data, self.rec.fs, self.rec.data.shape[0]
        t0 = pylsl.local_clock()
        i = 0
        offset = 0
        while True:
            if i >= n:
                if not self.loop:
                    return
                offset += n
                i = 0
            j = min(i + self.chunk, n)
            ts = t0 + (offset + np.arange(i, j)) / fs
            if self.realtime:
                delay = ts[-1] - pylsl.local_clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield Chunk(x[i:j], ts)
            i = j


class ReplayOutlet:
    """Publish a recording as a live LSL outlet, paced by its timestamps, in a background thread.

    Waits for a consumer before the first sample (so nobody misses the start), then pushes chunks of
    ``chunk_samples`` at real time. ``timestamps`` records what was sent, for end-to-end checks.
    """

    def __init__(
        self,
        rec: Recording,
        source_id: str,
        chunk_samples: int | None = None,
        name: str | None = None,
        wait_consumer_s: float = 10.0,
        duration_s: float | None = None,
    ) -> None:
        self.rec = rec
        self.chunk = chunk_samples or max(1, int(round(rec.fs / 1000)))
        self.n_total = rec.data.shape[0] if duration_s is None else min(rec.data.shape[0], int(duration_s * rec.fs))
        self.info = make_info(
            name or rec.name, rec.type, rec.data.shape[1], rec.fs, rec.data.dtype.name, source_id,
            labels=rec.channel_names, units=rec.units,
        )
        self.outlet = pylsl.StreamOutlet(self.info, chunk_size=0, max_buffered=60)
        self.wait_consumer_s = wait_consumer_s
        self.samples_pushed = 0
        self.first_timestamp: float | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-outlet", daemon=True)

    def start(self) -> ReplayOutlet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        if not self.outlet.wait_for_consumers(self.wait_consumer_s):
            log.warning("replay outlet: no consumer after %.1f s, starting anyway", self.wait_consumer_s)
        x, fs = self.rec.data, self.rec.fs
        t0 = pylsl.local_clock() + 0.05
        self.first_timestamp = t0
        i = 0
        while i < self.n_total and not self._stop.is_set():
            j = min(i + self.chunk, self.n_total)
            t_last = t0 + (j - 1) / fs
            delay = t_last - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            self.outlet.push_chunk(x[i:j], timestamp=t_last)
            self.samples_pushed = j
            i = j
        self.done.set()

    def expected_timestamps(self) -> np.ndarray:
        assert self.first_timestamp is not None
        return self.first_timestamp + np.arange(self.samples_pushed) / self.rec.fs
