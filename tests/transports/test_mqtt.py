"""MQTT transport against a real mosquitto broker: ordering, counters, retained headers, the full
LSL -> sender -> MQTT -> receiver pipeline, and recovery from a broker crash mid-stream."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from neurolink.errors import ConfigError
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.lsl_inlet import LSLSource
from neurolink.sources.replay import Recording, ReplayOutlet
from neurolink.sources.synthetic import synthetic_recording
from neurolink.testing_pipeline import stop_pipeline, wait_replayed
from neurolink.transports import make_receiver_transport, make_sender_transport
from neurolink.transports.mqtt import MqttReceiver, MqttSender

pytestmark = pytest.mark.mqtt


def _pair(host: str, port: int, **kw):
    prefix = kw.pop("prefix", f"nltest/{free_port()}")
    return MqttSender(host=host, port=port, prefix=prefix, **kw), MqttReceiver(host=host, port=port, prefix=prefix, **kw)


async def _recv_n(rx, n: int, timeout: float = 5.0) -> list[bytes]:
    return [await asyncio.wait_for(rx.recv(), timeout) for _ in range(n)]


@pytest.mark.parametrize("qos", [0, 1])
def test_round_trip_order_and_counters(mosquitto, qos):
    host, port, _ = mosquitto

    async def run():
        tx, rx = _pair(host, port, qos=qos)
        async with tx, rx:
            msgs = [i.to_bytes(4, "big") + bytes(i % 251 for _ in range(i % 700)) for i in range(500)]
            for m in msgs:
                assert await tx.send(m, stream_id=3)
            got = await _recv_n(rx, len(msgs))
            assert got == msgs  # every message, in order, unaltered
            assert await rx.send_feedback(b"feedback-1", stream_id=3)
            assert await asyncio.wait_for(tx.recv_feedback(), 5) == b"feedback-1"
            await tx.close()  # drains the outbox before disconnecting
            await rx.close()
        assert tx.stats.sent == 500 and tx.stats.bytes_sent == sum(map(len, msgs))
        assert rx.stats.received == 500 and rx.stats.bytes_received == tx.stats.bytes_sent
        assert tx.stats.dropped == rx.stats.dropped == 0
        assert tx.stats.received == 1 and rx.stats.sent == 1
        assert tx.stats.reconnects == rx.stats.reconnects == 0

    asyncio.run(run())


def test_topic_layout(mosquitto):
    """Frames and clock replies share the data topic; headers go to a retained header topic."""
    import aiomqtt

    host, port, _ = mosquitto

    async def run():
        tx = MqttSender(host=host, port=port, name="lab1")
        assert tx.prefix == "neurolink/lab1"
        async with aiomqtt.Client(host, port) as spy, tx:
            await spy.subscribe("neurolink/lab1/#")
            await tx.send(b"h", stream_id=7, kind="header")
            await tx.send(b"d", stream_id=7, kind="data")
            await tx.send(b"c", stream_id=7, kind="clock")
            seen = []
            async with asyncio.timeout(5):
                async for m in spy.messages:
                    seen.append((str(m.topic), m.payload, m.retain))
                    if len(seen) == 3:
                        break
        assert seen == [("neurolink/lab1/7/header", b"h", False), ("neurolink/lab1/7/data", b"d", False),
                        ("neurolink/lab1/7/data", b"c", False)]

    asyncio.run(run())


def test_retained_header_reaches_late_receiver(mosquitto):
    host, port, _ = mosquitto

    async def run():
        tx, rx = _pair(host, port)
        async with tx:
            await tx.send(b"HEADER-v1", stream_id=2, kind="header")
            await tx.send(b"frame-before-receiver", stream_id=2)
            await tx.close()
            # the sender is gone; a receiver joining now still gets the header at once (retained)
            async with rx:
                assert await asyncio.wait_for(rx.recv(), 5) == b"HEADER-v1"
                with pytest.raises(TimeoutError):  # plain data is not retained
                    await asyncio.wait_for(rx.recv(), 0.3)

    asyncio.run(run())


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="transport.qos"):
        MqttSender(qos=3)
    with pytest.raises(ConfigError, match="transport.port"):
        MqttReceiver(port=70000)
    with pytest.raises(ConfigError, match="transport.queue"):
        MqttSender(queue=0)
    with pytest.raises(ConfigError, match="transport.prefix"):
        MqttSender(prefix="a/#")
    with pytest.raises(ConfigError, match="transport.hots"):
        make_sender_transport({"kind": "mqtt", "hots": "x"})
    with pytest.raises(ConfigError, match="transport.password"):
        MqttSender(password="p")
    assert isinstance(make_receiver_transport({"kind": "mqtt", "qos": 1}), MqttReceiver)


def test_no_broker_sends_are_dropped_and_counted(caplog):
    port = free_port()  # nobody listens here

    async def run():
        tx = MqttSender(port=port, connect_timeout_s=0.2, backoff_max_s=0.1)
        with caplog.at_level(logging.WARNING, logger="neurolink.transports.mqtt"):
            async with tx:  # the daemon starts anyway and keeps retrying
                results = [await tx.send(b"x", stream_id=1) for _ in range(50)]
                await asyncio.sleep(0.5)
        assert results == [False] * 50
        assert tx.stats.dropped == 50 and tx.stats.sent == 0
        # one warning for the outage, not one per frame or per retry
        assert len([r for r in caplog.records if "not reachable" in r.message]) == 1

    asyncio.run(run())


# -- the full pipeline ------------------------------------------------------------------------------

async def _pipeline(rec: Recording, source_id: str, seconds: float, host: str, port: int, during=None):
    n_total = int(seconds * rec.fs)
    outlet = ReplayOutlet(rec, source_id, duration_s=seconds).start()
    cfg = {"kind": "mqtt", "host": host, "port": port, "prefix": f"nltest/{source_id}", "backoff_max_s": 0.2}
    sender = Sender([StreamSpec(LSLSource(source_id=source_id, resolve_timeout=10), 1)], make_sender_transport(cfg))
    mem = MemorySink()
    receiver = Receiver(make_receiver_transport(cfg), lambda h: [mem])
    async with asyncio.TaskGroup() as tg:
        rx = tg.create_task(receiver.run())
        await asyncio.wait_for(receiver.transport.connected.wait(), 5)  # type: ignore[attr-defined]
        tx = tg.create_task(sender.run())
        hook = tg.create_task(during(sender, receiver)) if during else None
        await wait_replayed(outlet, sender, n_total, seconds + 20)
        if hook is not None:
            await hook
        await stop_pipeline(sender, tx, receiver, rx)
    outlet.stop()
    return outlet, sender, receiver, mem


def test_pipeline_over_mqtt_exact(mosquitto, source_id):
    host, port, _ = mosquitto
    fs = 2000.0
    rec = Recording(synthetic_recording(int(2.0 * fs), 16, fs, seed=3), fs, [], "nl-mqtt", "EEG")
    outlet, sender, receiver, mem = asyncio.run(_pipeline(rec, source_id, 1.5, host, port))
    n = outlet.samples_pushed
    assert n == int(1.5 * fs)
    assert np.array_equal(mem.data(), rec.data[:n])  # exact count and values
    ts = mem.timestamps()
    assert np.max(np.abs(ts - outlet.expected_timestamps())) < 1e-3
    st = receiver.streams[1].stats
    assert st.frames_lost == 0 and st.samples_concealed == 0 and receiver.bad_messages == 0
    assert sender.transport.stats.dropped == 0 and sender.streams[1].stats.frames_dropped_transport == 0


def test_pipeline_survives_broker_restart(mosquitto, source_id):
    host, port, restart = mosquitto
    fs = 2000.0
    seconds = 3.0
    rec = Recording(synthetic_recording(int((seconds + 0.5) * fs), 8, fs, seed=4), fs, [], "nl-mqtt-rs", "EEG")
    marks = {}

    async def crash(sender: Sender, receiver: Receiver):
        for _ in range(400):  # crash only once frames flow (start-up can be slow on a loaded machine)
            if 1 in receiver.streams and receiver.streams[1].stats.frames_ok >= 300:
                break
            await asyncio.sleep(0.01)
        marks["before"] = receiver.streams[1].stats.frames_ok
        await asyncio.to_thread(restart, 0.4)  # SIGKILL, 0.4 s down, same port again
        await asyncio.sleep(0.1)

    outlet, sender, receiver, mem = asyncio.run(_pipeline(rec, source_id, seconds, host, port, crash))
    tx_t, rx_t = sender.transport.stats, receiver.transport.stats
    st = receiver.streams[1].stats
    # both sides came back on their own, in the same process, with the same objects
    assert tx_t.reconnects >= 1 and rx_t.reconnects >= 1
    # the outage is counted, not silent
    assert st.frames_lost > 0 or tx_t.dropped > 0
    assert st.frames_lost > 0 and sender.streams[1].stats.frames_dropped_transport > 0
    # delivery resumed: many frames after the crash, and the stream's last samples arrived intact
    assert marks["before"] >= 300 and st.frames_ok > marks["before"] + 500
    n = outlet.samples_pushed
    got = mem.data()
    assert got.shape[0] == n  # gaps were concealed in place, so the sample count still matches
    tail = int(0.5 * fs)
    assert np.array_equal(got[-tail:], rec.data[n - tail:n])
    # lost frames, and predicted frames before the next keyframe, are concealed in place
    assert st.samples_concealed == (st.frames_lost + st.frames_undecodable) * receiver.streams[1].header.frame_samples
