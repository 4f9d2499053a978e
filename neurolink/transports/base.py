"""Transport contract: async context managers moving opaque wire messages, bounded and counted.

The sender side publishes data messages and receives feedback; the receiver side does the reverse.
Messages are already-serialised wire-format bytes: a transport never inspects or alters them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from neurolink.errors import ConfigError


@dataclass
class TransportStats:
    sent: int = 0
    bytes_sent: int = 0
    dropped: int = 0  # refused by a full queue / high-water mark: counted, never silent
    received: int = 0
    bytes_received: int = 0
    errors: int = 0
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Base(ABC):
    stats: TransportStats

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class SenderTransport(_Base):
    @abstractmethod
    async def send(self, msg: bytes, *, stream_id: int = 0, kind: str = "data") -> bool:
        """Queue one message; False if it was dropped (already counted in ``stats.dropped``).

        ``kind`` is "data" or "header" (stream headers may be retained by brokers)."""

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until at least one receiver is attached (so no first sample is lost); True if one is."""
        return True

    @abstractmethod
    async def recv_feedback(self) -> bytes:
        """Next message from a receiver (feedback report or clock probe)."""


class ReceiverTransport(_Base):
    @abstractmethod
    async def recv(self) -> bytes:
        """Next data message from a sender."""

    @abstractmethod
    async def send_feedback(self, msg: bytes, *, stream_id: int = 0) -> bool:
        """Send one message back to the sender(s)."""


_SENDERS: dict[str, type] = {}
_RECEIVERS: dict[str, type] = {}


def register_transport(name: str, sender: type, receiver: type) -> None:
    _SENDERS[name] = sender
    _RECEIVERS[name] = receiver


def _lookup(table: dict[str, type], config: dict[str, Any]) -> type:
    kind = config.get("kind", "zmq")
    if kind not in table:
        raise ConfigError("transport.kind", f"expected one of {sorted(table)}, got {kind!r}")
    return table[kind]


def _build(cls: type, config: dict[str, Any]) -> Any:
    params = {k: v for k, v in config.items() if k != "kind"}
    try:
        return cls(**params)
    except TypeError as exc:  # an unknown or misspelt key: name it instead of a traceback
        raise ConfigError("transport", f"{config.get('kind', 'zmq')} transport does not take these keys "
                          f"{sorted(params)}: {exc}") from None


def make_sender_transport(config: dict[str, Any]) -> SenderTransport:
    return _build(_lookup(_SENDERS, config), config)


def make_receiver_transport(config: dict[str, Any]) -> ReceiverTransport:
    return _build(_lookup(_RECEIVERS, config), config)
