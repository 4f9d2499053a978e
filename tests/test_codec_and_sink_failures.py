"""A frame the codec refuses, or a sink that cannot open, costs that frame or that sink, never the daemon."""

from __future__ import annotations

import asyncio

import numpy as np

from neurolink.codecs import Ladder, register_codec
from neurolink.codecs.delta_zstd import DeltaZstd
from neurolink.errors import CodecError
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.replay import Recording, ReplaySource
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports.zmq import ZmqReceiver, ZmqSender

POISON = 12345  # a sample value the test codec refuses


class _Refuses(DeltaZstd):
    """delta-zstd that refuses any frame holding POISON (stands in for a frame beyond a codec's limits)."""

    codec_id = "test-refuses-poison"

    def encode(self, x):
        if np.any(x == POISON):
            raise CodecError(f"{self.codec_id}: refusing a frame with {POISON}")
        return super().encode(x)

    def get_config(self):
        return {"id": self.codec_id, "level": self.level, "delta": self.delta}


register_codec(_Refuses)

BUG_ENC, BUG_DEC = 23456, 24567  # sample values on which the buggy codec's encoder / decoder blow up


class _Buggy(DeltaZstd):
    """A codec with bugs (not CodecError): stands in for a plugin or a future regression."""

    codec_id = "test-buggy"

    def encode(self, x):
        if np.any(x == BUG_ENC):
            raise IndexError("bug in the encoder")
        return super().encode(x)

    def decode(self, blob):
        y = super().decode(blob)
        if np.any(y == BUG_DEC):
            raise ZeroDivisionError("bug in the decoder")
        return y

    def get_config(self):
        return {"id": self.codec_id, "level": self.level, "delta": self.delta}


register_codec(_Buggy)


class _BrokenSink(MemorySink):
    def open(self, header):
        raise OSError("No space left on device")


async def _run(x: np.ndarray, fs: float, sinks, codec: str = "test-refuses-poison"):
    rec = Recording(x, fs, [], "refuse-test", "EEG", "uV")
    p_data, p_fb = free_port(), free_port()
    tx = ZmqSender(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    rx = ZmqReceiver(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    sender = Sender([StreamSpec(ReplaySource(rec), 1, Ladder([{"id": codec}]))], tx, wait_receiver_s=10.0)
    receiver = Receiver(rx, lambda h: sinks, conceal="zeros")
    rx_task = asyncio.create_task(receiver.run())
    await asyncio.wait_for(sender.run(), 30)
    await asyncio.wait_for(receiver.ended_event.wait(), 10)
    receiver.stop()
    await rx_task
    return sender.summary()[1], receiver.summary()[1]


def test_refused_frames_are_dropped_counted_and_concealed():
    fs, frame = 1000.0, 1
    x = synthetic_recording(1500, 4, fs, seed=2)
    x[[300, 301, 900]] = POISON  # three frames (1 ms = 1 sample at 1 kHz) the codec refuses
    mem = MemorySink()
    tx, rx = asyncio.run(_run(x, fs, [mem]))
    assert tx["dropped_codec"] == 3 and tx["frames_sent"] == 1500 // frame - 3
    assert rx["frames_lost"] == 3 and rx["samples_concealed"] == 3
    y = mem.data()
    assert y.shape == x.shape  # every slot filled, the refused ones concealed (zeros)
    keep = np.ones(len(x), bool)
    keep[[300, 301, 900]] = False
    assert np.array_equal(y[keep], x[keep]) and not y[~keep].any()


def test_a_sink_that_cannot_open_does_not_stop_the_others():
    fs = 1000.0
    x = synthetic_recording(800, 3, fs, seed=3)
    mem = MemorySink()
    _tx, rx = asyncio.run(_run(x, fs, [_BrokenSink(), mem]))
    assert rx["sinks_failed"] == 1
    assert np.array_equal(mem.data(), x)


def test_codec_bugs_cost_their_frames_not_the_daemons():
    fs = 1000.0
    x = synthetic_recording(1200, 3, fs, seed=4)
    x[[200, 700]] = BUG_ENC  # the sender's encoder raises IndexError on these
    x[[400, 401]] = BUG_DEC  # the receiver's decoder raises ZeroDivisionError on these
    mem = MemorySink()
    tx, rx = asyncio.run(_run(x, fs, [mem], codec="test-buggy"))
    assert tx["dropped_codec"] == 2
    assert rx["frames_lost"] == 2 and rx["frames_undecodable"] == 2 and rx["samples_concealed"] == 4
    y = mem.data()
    keep = np.ones(len(x), bool)
    keep[[200, 700, 400, 401]] = False
    assert y.shape == x.shape and np.array_equal(y[keep], x[keep])
