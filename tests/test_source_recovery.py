"""An LSL source that vanishes and comes back (same source_id): the sender recovers on its own."""

import asyncio
import time

import numpy as np

from neurolink.lsl import make_info, pylsl
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.lsl_inlet import LSLSource
from neurolink.transports.zmq import ZmqReceiver, ZmqSender


def _push(outlet, start: int, n: int, fs: float, ch: int) -> None:
    for i in range(start, start + n, 10):
        x = (np.arange(i, i + 10)[:, None] * np.ones((1, ch))).astype(np.int16)
        outlet.push_chunk(x, timestamp=pylsl.local_clock())
        time.sleep(10 / fs)


def test_source_vanishes_and_returns(source_id):
    fs, ch = 1000.0, 2

    def make_outlet():
        return pylsl.StreamOutlet(make_info("nl-recover", "EEG", ch, fs, "int16", source_id))

    async def run():
        pd, pf = free_port(), free_port()
        eps = dict(data=f"tcp://127.0.0.1:{pd}", feedback=f"tcp://127.0.0.1:{pf}")
        outlet = make_outlet()
        src = LSLSource(source_id=source_id, resolve_timeout=10)
        sender = Sender([StreamSpec(src, 1)], ZmqSender(**eps), wait_receiver_s=5)
        mem = MemorySink()
        receiver = Receiver(ZmqReceiver(**eps), lambda h: [mem])
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            rx = tg.create_task(receiver.run())
            tx = tg.create_task(sender.run())
            while not (1 in sender.streams and outlet.have_consumers()):
                await asyncio.sleep(0.05)
            await loop.run_in_executor(None, _push, outlet, 0, 500, fs, ch)
            await asyncio.sleep(0.3)
            del outlet  # the acquisition app goes away ...
            await asyncio.sleep(1.5)
            outlet2 = make_outlet()  # ... and comes back with the same source_id
            for _ in range(200):
                if outlet2.have_consumers():
                    break
                await asyncio.sleep(0.05)
            assert outlet2.have_consumers(), "sender did not reconnect to the returning source"
            await loop.run_in_executor(None, _push, outlet2, 1000, 500, fs, ch)
            await asyncio.sleep(0.5)
            sender.stop()
            await tx
            await asyncio.sleep(0.3)
            receiver.stop()
            await rx
        return src, mem

    src, mem = asyncio.run(run())
    assert src.lost_events >= 1
    vals = mem.data()[:, 0]
    # samples from before and after the outage both arrived, in order
    assert np.any(vals < 500) and np.any(vals >= 1000)
    assert np.all(np.diff(vals.astype(np.int64)) > 0)
