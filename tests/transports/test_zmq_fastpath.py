"""ZeroMQ hot path: non-blocking sends/receives through the sockets' synchronous shadows keep order,
fall back to awaiting when nothing is queued, and fail cleanly (TransportError) once closed."""

from __future__ import annotations

import asyncio

import pytest

from neurolink.errors import TransportError
from neurolink.netutil import free_port
from neurolink.transports.zmq import ZmqReceiver, ZmqSender


@pytest.mark.parametrize("pattern", ["pubsub", "pushpull"])
def test_order_kept_across_queued_and_awaited_receives(pattern):
    async def run():
        eps = {"data": f"tcp://127.0.0.1:{free_port()}", "feedback": f"tcp://127.0.0.1:{free_port()}", "pattern": pattern}
        async with ZmqSender(**eps) as tx, ZmqReceiver(**eps) as rx:
            if pattern == "pubsub":
                assert await tx.wait_ready(5)
            await asyncio.sleep(0.1)
            big = bytes(40_000)  # above the old zero-copy cut-off, below ZERO_COPY_MIN
            for i in range(50):  # a burst: most receives find the message already queued
                assert await tx.send(i.to_bytes(4, "little") + big)
            got = [int.from_bytes((await asyncio.wait_for(rx.recv(), 5))[:4], "little") for _ in range(50)]
            assert got == list(range(50))
            late = asyncio.create_task(rx.recv())  # nothing queued: must await, then wake on arrival
            await asyncio.sleep(0.05)
            assert not late.done()
            await tx.send(b"late")
            assert await asyncio.wait_for(late, 5) == b"late"
            assert await rx.send_feedback(b"fb") and await asyncio.wait_for(tx.recv_feedback(), 5) == b"fb"
            assert tx.stats.sent == 51 and rx.stats.received == 51
        with pytest.raises(TransportError, match="not open"):
            await tx.send(b"x")
        with pytest.raises(TransportError, match="not open"):
            await rx.recv()

    asyncio.run(run())
