"""ZeroMQ transport on real sockets: high-water-mark drops are counted, ipc:// works, bad config is named."""

from __future__ import annotations

import asyncio

import pytest

from neurolink.errors import ConfigError
from neurolink.netutil import free_port
from neurolink.transports import make_sender_transport
from neurolink.transports.zmq import ZmqReceiver, ZmqSender


def _tcp() -> dict[str, str]:
    return {"data": f"tcp://127.0.0.1:{free_port()}", "feedback": f"tcp://127.0.0.1:{free_port()}"}


async def _wait_subscribed(tx: ZmqSender, rx: ZmqReceiver) -> None:
    """PUB/SUB joins are asynchronous: send probes until one gets through."""
    for _ in range(200):
        await tx.send(b"probe")
        try:
            await asyncio.wait_for(rx.recv(), 0.02)
            return
        except TimeoutError:
            pass
    raise AssertionError("subscriber never joined")


def test_xpub_nodrop_hwm_drops_are_counted():
    eps = _tcp()

    async def run():
        async with ZmqSender(**eps, hwm=1) as tx, ZmqReceiver(**eps, hwm=1) as rx:
            await _wait_subscribed(tx, rx)
            while True:  # drain the probes so we start from a clean state
                try:
                    await asyncio.wait_for(rx.recv(), 0.1)
                except TimeoutError:
                    break
            sent0, dropped0 = tx.stats.sent, tx.stats.dropped
            blob = bytes(256 * 1024)
            results = [await tx.send(blob) for _ in range(400)]  # 100 MB at a reader that never reads
            assert results.count(False) > 0  # refused at the high-water mark ...
            assert tx.stats.dropped - dropped0 == results.count(False)  # ... and every refusal counted
            assert tx.stats.sent - sent0 == results.count(True)
            assert tx.stats.sent - sent0 + tx.stats.dropped - dropped0 == 400

    asyncio.run(run())


def test_pushpull_without_peer_counts_drops():
    async def run():
        async with ZmqSender(**_tcp(), pattern="pushpull", hwm=1) as tx:
            results = [await tx.send(b"x" * 100) for _ in range(20)]
        assert results == [False] * 20 and tx.stats.dropped == 20 and tx.stats.sent == 0

    asyncio.run(run())


@pytest.mark.parametrize("pattern", ["pubsub", "pushpull"])
def test_ipc_endpoint_round_trip(tmp_path, pattern):
    eps = {"data": f"ipc://{tmp_path}/data.sock", "feedback": f"ipc://{tmp_path}/fb.sock", "pattern": pattern}

    async def run():
        async with ZmqSender(**eps) as tx, ZmqReceiver(**eps) as rx:
            if pattern == "pubsub":
                await _wait_subscribed(tx, rx)
            else:  # PUSH refuses (and counts) sends until the PULL peer has connected
                for _ in range(500):
                    if await tx.send(b"warmup", stream_id=1):
                        break
                    await asyncio.sleep(0.01)
                assert await asyncio.wait_for(rx.recv(), 5) == b"warmup"
                tx.stats.dropped = 0
            msgs = [i.to_bytes(4, "big") * 50 for i in range(300)]
            for m in msgs:
                assert await tx.send(m, stream_id=1)
            got = [await asyncio.wait_for(rx.recv(), 5) for _ in msgs]
            assert got == msgs
            assert await rx.send_feedback(b"fb")
            assert await asyncio.wait_for(tx.recv_feedback(), 5) == b"fb"
        assert tx.stats.dropped == 0 and rx.stats.received >= 300

    asyncio.run(run())


@pytest.mark.parametrize("bad", ["127.0.0.1:5556", "udp://127.0.0.1:1", "", 5556])
def test_bad_endpoint_names_the_key(bad):
    with pytest.raises(ConfigError, match="transport.data"):
        make_sender_transport({"kind": "zmq", "data": bad})
    with pytest.raises(ConfigError, match="transport.feedback"):
        ZmqReceiver(feedback=bad)


def test_bad_hwm_and_pattern():
    with pytest.raises(ConfigError, match="transport.hwm"):
        ZmqSender(hwm=0)
    with pytest.raises(ConfigError, match="transport.pattern"):
        ZmqSender(pattern="fanout")
