"""Keyframe requests: after a lost frame the receiver asks for a keyframe at once (ClockProbe kind 3)
instead of concealing until the next scheduled keyframe; with encryption on too."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from neurolink.codecs import Ladder
from neurolink.codecs.warmup import warm_up
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.security.aead import FrameCipher
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.replay import Recording, ReplaySource
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports.zmq import ZmqReceiver, ZmqSender
from neurolink.wire import format as w

KEYFRAME_INTERVAL = 100  # frames: a loss mid-interval costs ~50 undecodable frames without requests


class _Lossy:
    """A real ZeroMQ sender transport that loses data frames number 650, 1050, 1450, ... (a bursty link)."""

    def __init__(self, inner: ZmqSender) -> None:
        self.inner = inner
        self.n = 0
        self.dropped = 0

    async def __aenter__(self):
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self.inner.__aexit__(*exc)

    async def send(self, msg: bytes, *, stream_id: int = 0, kind: str = "data") -> bool:
        if kind == "data" and len(msg) > 5 and msg[5] == w.MSG_FRAME:
            self.n += 1
            if self.n > 400 and self.n % 400 == 250:  # mid keyframe interval, past the start-up
                self.dropped += 1
                return True
        return await self.inner.send(msg, stream_id=stream_id, kind=kind)

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def _run(seconds: float, encrypted: bool) -> tuple[dict, dict, int]:
    fs, ch = 15000.0, 8
    rec = Recording(synthetic_recording(int(fs * seconds), ch, fs, seed=5), fs, [], "kfr-test", "EEG", "uV")
    ladder = Ladder([{"id": "nl-nearlossless", "k": 2, "keyframe_interval": KEYFRAME_INTERVAL}])
    warm_up(list(ladder), ch, 15, np.dtype(np.int16))  # no compile stall: the replay would burst to catch up
    p_data, p_fb = free_port(), free_port()
    tx_t = _Lossy(ZmqSender(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}"))
    rx_t = ZmqReceiver(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    key = os.urandom(32)
    sealer = FrameCipher(key, 1, role="sender") if encrypted else None
    opener = FrameCipher(key, 1, role="receiver") if encrypted else None
    sink = MemorySink()
    sender = Sender([StreamSpec(ReplaySource(rec), 1, ladder)], tx_t, wait_receiver_s=10.0, sealer=sealer)
    receiver = Receiver(rx_t, lambda h: [sink], conceal="zeros", opener=opener)
    rx_task = asyncio.create_task(receiver.run())
    await asyncio.wait_for(sender.run(), seconds + 30)
    await asyncio.wait_for(receiver.ended_event.wait(), 10)
    receiver.stop()
    await rx_task
    assert sink.data().shape == rec.data.shape  # every sample slot filled, lost ones concealed
    return sender.summary()[1], receiver.summary()[1], tx_t.dropped


@pytest.mark.parametrize("encrypted", [False, True])
def test_loss_costs_a_round_trip_not_a_keyframe_interval(encrypted):
    tx, rx, dropped = asyncio.run(_run(4.0, encrypted))
    assert dropped >= 6 and rx["frames_lost"] == dropped
    assert rx["keyframe_requests"] >= 1 and tx["keyframe_requests"] >= 1
    per_loss = rx["frames_undecodable"] / dropped
    # without requests ~50 (to the next scheduled keyframe); with them the feedback round trip
    assert per_loss < 20, (per_loss, rx, tx)


def test_keyframe_request_wire_and_direction():
    msg = w.pack_clock(w.ClockProbe(7, 3, 1.0, 4.0, 0.0))
    c = w.parse_clock(msg)
    assert (c.kind, int(c.t1)) == (3, 4)
    key = np.random.default_rng(0).bytes(32)
    rx, tx = FrameCipher(key, 1, role="receiver"), FrameCipher(key, 1, role="sender")
    for kind in (0, 2, 3):  # upstream requests: the sender's endpoint must accept them
        assert tx.open(rx.seal(w.pack_clock(w.ClockProbe(7, kind, 1.0, 0.0, 0.0)))) is not None
