"""QoS 0 fast path: send() writes through paho at once and paho's callback feeds the inbox directly;
large messages that fill the socket are finished by aiomqtt's writer, in order, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from neurolink.netutil import free_port
from neurolink.transports.mqtt import MqttReceiver, MqttSender

pytestmark = pytest.mark.mqtt


def test_inline_publish_in_order_with_partial_writes(mosquitto):
    host, port, _ = mosquitto

    async def run():
        prefix = f"nltest/{free_port()}"
        tx, rx = MqttSender(host=host, port=port, prefix=prefix), MqttReceiver(host=host, port=port, prefix=prefix)
        async with tx, rx:
            assert tx._inline is not None  # connected at QoS 0: the fast path is on
            # small frames and 1-4 MB ones (a socket buffer cannot take those in one write)
            msgs = [i.to_bytes(4, "big") + bytes([i % 251]) * (i * 9973 % (4 << 20) if i % 10 == 0 else 300)
                    for i in range(200)]
            for m in msgs:
                assert await tx.send(m, stream_id=1)
            got = [await asyncio.wait_for(rx.recv(), 20) for _ in msgs]
            assert [g[:4] for g in got] == [m[:4] for m in msgs]
            assert got == msgs
            assert tx._outbox is not None and not tx._outbox.items  # nothing went through the queue
        assert tx.stats.sent == len(msgs) and tx.stats.dropped == 0 and rx.stats.received == len(msgs)
        assert rx.inbox_dropped == 0

    asyncio.run(run())
