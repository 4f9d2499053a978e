"""Fixtures for transport tests: a real mosquitto broker per test on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from neurolink.testing_broker import MosquittoBroker, find_mosquitto


@pytest.fixture
def mosquitto() -> Iterator[tuple[str, int, Callable[..., None]]]:
    """(host, port, restart_fn): a real broker; ``restart_fn(down_s=0.0)`` kills it and starts it again."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto; scripts/setup.sh does it)")
    broker = MosquittoBroker().start()
    try:
        yield broker.host, broker.port, broker.restart
    finally:
        broker.close()
