"""Bridge an EEG stream and its event markers: LSL -> neurolink sender -> ZeroMQ -> receiver -> LSL.

    .venv/bin/python examples/bridge_eeg_and_markers.py [--seconds 3]

The acquisition side publishes what amplifiers and stimulus software usually do: EEG as float32 in µV
(ADC counts times a scale) and a string marker stream. neurolink bridges both in one process here (the
daemons `neurolink send` / `neurolink receive` do the same across machines) and an ordinary pylsl inlet
reads the republished streams, as LabRecorder or a decoder would. The EEG goes through nl-float (the
counts behind the floats, losslessly) and the markers through nl-text; both arrive exact, with the
source's timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid

import numpy as np

from neurolink.data import default_recording
from neurolink.lsl import pylsl
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.lsl_outlet import LSLOutletSink
from neurolink.sources.lsl_inlet import LSLSource, resolve_stream
from neurolink.sources.replay import Recording, ReplayOutlet
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports.zmq import ZmqReceiver, ZmqSender

MARKERS = ["experiment start", "stim/onset", '{"trial": 1, "cond": "congruent"}', "stim/offset", "experiment end"]


def eeg_recording(seconds: float) -> Recording:
    """Real data when ../shared is present, published as an amplifier would: float32 µV, counts x scale."""
    path = default_recording()
    if path is None:
        fs, counts = 1000.0, synthetic_recording(int(seconds * 1000), 8, 1000.0, seed=3)
    else:
        fs = float(json.loads(path.with_suffix(".json").read_text())["sampling_rate_hz"])
        counts = np.asarray(np.load(path, mmap_mode="r")[: int(seconds * fs)])
    uv = (counts * np.float32(0.195)).astype(np.float32)
    return Recording(uv, fs, [f"E{i + 1}" for i in range(uv.shape[1])], "example-eeg", "EEG", "uV")


class Reader(threading.Thread):
    """A plain pylsl consumer of one republished stream (what LabRecorder or a decoder sees)."""

    def __init__(self, source_id: str) -> None:
        super().__init__(daemon=True)
        self.source_id, self.values, self.ts, self.stop_flag = source_id, [], [], threading.Event()

    def run(self) -> None:
        inlet = pylsl.StreamInlet(resolve_stream(f"source_id='{self.source_id}'", 20.0), max_buflen=30,
                                  processing_flags=pylsl.proc_clocksync)
        inlet.open_stream(timeout=10)
        while not self.stop_flag.is_set():
            data, ts = inlet.pull_chunk(timeout=0.1, max_samples=4096)
            self.values += data
            self.ts += ts


async def bridge(seconds: float) -> int:
    tag = uuid.uuid4().hex[:8]
    eeg_id, mk_id = f"example-eeg-{tag}", f"example-markers-{tag}"
    rec = eeg_recording(seconds)
    eeg = ReplayOutlet(rec, eeg_id, duration_s=seconds)
    markers = pylsl.StreamOutlet(pylsl.StreamInfo("example-markers", "Markers", 1, 0.0, pylsl.cf_string, mk_id))
    pd, pf = free_port(), free_port()
    eps = dict(data=f"tcp://127.0.0.1:{pd}", feedback=f"tcp://127.0.0.1:{pf}")
    sender = Sender([StreamSpec(LSLSource(source_id=eeg_id, resolve_timeout=10), 1),
                     StreamSpec(LSLSource(source_id=mk_id, resolve_timeout=10), 2)], ZmqSender(**eps),
                    wait_receiver_s=10.0)
    receiver = Receiver(ZmqReceiver(**eps), lambda h: [LSLOutletSink(wait_consumer_s=10)])
    readers = {1: Reader(eeg_id + "@neurolink"), 2: Reader(mk_id + "@neurolink")}
    for r in readers.values():
        r.start()
    sent: list[float] = []
    async with asyncio.TaskGroup() as tg:
        rx = tg.create_task(receiver.run())
        tx = tg.create_task(sender.run())
        await asyncio.wait_for(sender.started.wait(), 20)
        eeg.start()
        for m in MARKERS:  # a marker now and then, as stimulus software sends them
            await asyncio.sleep(seconds / (len(MARKERS) + 1))
            sent.append(pylsl.local_clock())
            markers.push_sample([m], sent[-1])
        await asyncio.to_thread(eeg.done.wait, seconds + 20)
        while sender.streams[2].stats.samples_in < len(MARKERS) or sender.streams[1].stats.samples_in < eeg.samples_pushed:
            await asyncio.sleep(0.05)
        sender.stop()
        await tx
        await asyncio.wait_for(receiver.ended_event.wait(), 10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (len(readers[1].values) < eeg.samples_pushed
                                               or len(readers[2].values) < len(MARKERS)):
            await asyncio.sleep(0.05)
        receiver.stop()
        await rx
    for r in readers.values():
        r.stop_flag.set()
    eeg.stop()
    got = np.asarray(readers[1].values, np.float32)
    src = rec.data[: eeg.samples_pushed]
    exact = got.shape == src.shape and np.array_equal(got.view(np.uint32), src.view(np.uint32))
    dt = np.abs(np.asarray(readers[1].ts) - eeg.expected_timestamps()).max() if exact else float("nan")
    tx_eeg = sender.summary()[1]
    print(f"EEG: {got.shape[0]}/{src.shape[0]} samples x {src.shape[1]} ch float32, bit-exact {exact}, "
          f"timestamps within {1e3 * dt:.3f} ms of the source's; codec {sender.streams[1].ladder[0]['id']}, "
          f"ratio {tx_eeg['codec_ratio']:.2f}")
    marks = [v[0] for v in readers[2].values]
    mdt = np.abs(np.asarray(readers[2].ts) - np.asarray(sent)).max() if len(marks) == len(sent) else float("nan")
    print(f"markers: {marks == MARKERS and 'all' or 'NOT all'} {len(marks)}/{len(MARKERS)} exact, timestamps within "
          f"{1e3 * mdt:.3f} ms; codec {sender.streams[2].ladder[0]['id']}")
    return 0 if exact and marks == MARKERS else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    return asyncio.run(bridge(ap.parse_args(argv).seconds))




if __name__ == "__main__":
    raise SystemExit(main())
