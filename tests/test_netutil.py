"""neurolink/netutil.py: free ports for tests, the demo and benchmarks."""

from __future__ import annotations

import socket

from neurolink.netutil import _ephemeral_start, free_port, is_loopback_endpoint


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50  # free_port(), free_port() never hands out the same port twice
    start = _ephemeral_start()
    for p in ports:
        if start > 11000:  # outgoing connections take their source ports from [start, ...]: never collide
            assert p < start
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_not_handed_out() -> None:
    held = []
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            held.append(s)
        busy = {s.getsockname()[1] for s in held}
        assert not busy & {free_port() for _ in range(50)}
    finally:
        for s in held:
            s.close()


def test_loopback_endpoints() -> None:
    assert is_loopback_endpoint("tcp://127.0.0.1:5556") and is_loopback_endpoint("ipc:///tmp/x")
    assert not is_loopback_endpoint("tcp://10.0.0.2:5556")
