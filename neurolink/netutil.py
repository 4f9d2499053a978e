"""Network helpers."""

from __future__ import annotations

import ipaddress
import random
import socket
from urllib.parse import urlparse

_LOW_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (for tests, the demo and benchmarks).

    Picked below the kernel's ephemeral range where there is one: a port the kernel hands out for
    ``bind(0)`` is also where it takes source ports for outgoing connections (liblsl, libzmq and MQTT
    clients make many), so one of those could take it before the caller binds. Never the same port
    twice in one process, so ``free_port(), free_port()`` are two different ports.
    """
    top = _ephemeral_start()
    rng = random.SystemRandom()
    for _ in range(200 if top > _LOW_PORT + 1000 else 0):
        port = rng.randrange(_LOW_PORT, top)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    while True:  # no usable range below the ephemeral one: let the kernel pick
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// endpoints on a loopback address."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = urlparse(endpoint.replace("tcp://", "http://", 1)).hostname or ""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
