"""ZeroMQ transport (brokerless, the embedded default): tcp or ipc, PUB/SUB fan-out or PUSH/PULL.

PUB sockets drop silently at the high-water mark; we use XPUB with ``XPUB_NODROP`` so a full queue
raises EAGAIN on a non-blocking send, and count it. Feedback flows back on a second PUSH -> PULL pair.

Hot path: data sends are non-blocking anyway, so they go through a plain (synchronous) shadow of the
asyncio socket (~15 us less per message than pyzmq's future bookkeeping). The receiver likewise
receives without blocking while messages are queued and otherwise waits on the socket's FD itself
(one event-loop wake-up per message instead of pyzmq's future chain: ~40 us less per message at
1024 channels). Messages below ``ZERO_COPY_MIN`` are copied into libzmq: for a ~30 kB frame a memcpy
is cheaper than pyzmq's zero-copy frame tracking.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import zmq
import zmq.asyncio

from neurolink.errors import ConfigError, TransportError
from neurolink.transports.base import ReceiverTransport, SenderTransport, TransportStats, register_transport

log = logging.getLogger(__name__)

DEFAULT_DATA = "tcp://127.0.0.1:5556"
DEFAULT_FEEDBACK = "tcp://127.0.0.1:5557"
PATTERNS = ("pubsub", "pushpull")
ZERO_COPY_MIN = 1 << 18  # bytes: hand larger messages to libzmq without copying


def _check_endpoint(key: str, ep: Any) -> str:
    if not isinstance(ep, str) or not ep.startswith(("tcp://", "ipc://", "inproc://")):
        raise ConfigError(f"transport.{key}", f"expected a tcp://, ipc:// or inproc:// endpoint, got {ep!r}")
    return ep


class _ZmqCommon:
    def __init__(
        self,
        data: str = DEFAULT_DATA,
        feedback: str = DEFAULT_FEEDBACK,
        pattern: str = "pubsub",
        hwm: int = 10000,
        bind: bool | None = None,
        context: zmq.asyncio.Context | None = None,
        curve: dict[str, Any] | None = None,
    ) -> None:
        self.data_ep = _check_endpoint("data", data)
        self.feedback_ep = _check_endpoint("feedback", feedback)
        if pattern not in PATTERNS:
            raise ConfigError("transport.pattern", f"expected one of {list(PATTERNS)}, got {pattern!r}")
        if not isinstance(hwm, int) or hwm < 1:
            raise ConfigError("transport.hwm", f"expected a positive int, got {hwm!r}")
        self.pattern = pattern
        self.hwm = hwm
        self.bind = bind
        self.curve = curve
        self._ctx = context or zmq.asyncio.Context.instance()
        self.stats = TransportStats()
        self._data_now: zmq.Socket | None = None
        self._fb_now: zmq.Socket | None = None

    def _closed(self) -> TransportError:
        return TransportError(f"zmq: {self.data_ep} is not open (start() not called or already closed)")

    def _open(self, data_type: int, fb_type: int, fb_hwm: int, data_linger: int, bind: bool) -> None:
        """Create, secure and bind/connect the data and feedback sockets (both ends share this)."""
        try:
            self._data = self._ctx.socket(data_type)
            if data_type == zmq.XPUB:
                self._data.setsockopt(zmq.XPUB_NODROP, 1)  # a full queue raises EAGAIN: counted, not silent
            elif data_type == zmq.SUB:
                self._data.setsockopt(zmq.SUBSCRIBE, b"")
            self._data.setsockopt(zmq.SNDHWM if data_type in (zmq.XPUB, zmq.PUSH) else zmq.RCVHWM, self.hwm)
            self._data.setsockopt(zmq.LINGER, data_linger)
            self._fb = self._ctx.socket(fb_type)
            self._fb.setsockopt(zmq.RCVHWM if fb_type == zmq.PULL else zmq.SNDHWM, fb_hwm)
            # the receiver's last acks (archive path) still go out when it closes right after the end of
            # stream; at most 200 ms at shutdown when the sender is gone
            self._fb.setsockopt(zmq.LINGER, 200 if fb_type == zmq.PUSH else 0)
            for sock, ep in ((self._data, self.data_ep), (self._fb, self.feedback_ep)):
                self._apply_security(sock, server=bind)
                if bind:
                    sock.bind(ep)
                else:
                    sock.connect(ep)
            # non-owning synchronous views of the same sockets, for non-blocking hot-path calls
            self._data_now = zmq.Socket.shadow(self._data.underlying)
            self._fb_now = zmq.Socket.shadow(self._fb.underlying)
        except zmq.ZMQError as exc:
            raise TransportError(f"zmq: cannot open {self.data_ep} / {self.feedback_ep}: {exc}") from exc

    async def close(self) -> None:
        self._data_now = self._fb_now = None  # never touch a closed socket through a stale shadow
        for s in (getattr(self, "_data", None), getattr(self, "_fb", None)):
            if s is not None:
                s.close()

    def _apply_security(self, sock: zmq.Socket, server: bool) -> None:
        if self.curve:
            from neurolink.security.curve import apply_curve  # optional layer

            apply_curve(sock, self.curve, server=server)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _readable(fd: int) -> None:
    """Wait until ``fd`` is readable: one event-loop wake-up, none of pyzmq's per-message futures."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


class ZmqSender(_ZmqCommon, SenderTransport):
    """Binds (by default) the data socket and the feedback PULL socket."""

    async def start(self) -> None:
        bind = True if self.bind is None else self.bind
        data_type = zmq.XPUB if self.pattern == "pubsub" else zmq.PUSH
        self._open(data_type, zmq.PULL, self.hwm, 200, bind)

    async def wait_ready(self, timeout: float) -> bool:
        """XPUB sees subscriptions: wait for the first one (PUSH has no such signal)."""
        if self.pattern != "pubsub" or timeout <= 0:
            return True
        if await self._data.poll(int(timeout * 1000)):  # flags default to POLLIN
            await self._data.recv()  # the subscription message
            return True
        return False

    async def send(self, msg: bytes, *, stream_id: int = 0, kind: str = "data") -> bool:
        sock = self._data_now
        if sock is None:
            raise self._closed()
        try:
            sock.send(msg, zmq.NOBLOCK, copy=len(msg) < ZERO_COPY_MIN)
        except zmq.Again:
            self.stats.dropped += 1
            return False
        except zmq.ZMQError as exc:
            self.stats.errors += 1
            raise TransportError(f"zmq: send on {self.data_ep} failed: {exc}") from exc
        self.stats.sent += 1
        self.stats.bytes_sent += len(msg)
        return True

    async def recv_feedback(self) -> bytes:
        msg = await self._fb.recv()
        self.stats.received += 1
        self.stats.bytes_received += len(msg)
        return msg


class ZmqReceiver(_ZmqCommon, ReceiverTransport):
    """Connects (by default) to the sender's data and feedback sockets."""

    async def start(self) -> None:
        bind = False if self.bind is None else self.bind
        data_type = zmq.SUB if self.pattern == "pubsub" else zmq.PULL
        self._open(data_type, zmq.PUSH, 100, 0, bind)

    async def recv(self) -> bytes:
        while True:
            sock = self._data_now
            if sock is None:
                raise self._closed()
            try:  # a frame already queued: no future, no event-loop round trip
                msg = sock.recv(zmq.NOBLOCK)
                break
            except zmq.Again:
                pass
            # ZMQ_EVENTS also re-arms the (edge-triggered) socket FD: nothing queued now means the FD
            # turns readable when the next message arrives
            if not int(sock.get(zmq.EVENTS)) & zmq.POLLIN:
                await _readable(sock.FD)
        self.stats.received += 1
        self.stats.bytes_received += len(msg)
        return msg

    async def send_feedback(self, msg: bytes, *, stream_id: int = 0) -> bool:
        sock = self._fb_now
        if sock is None:
            raise self._closed()
        try:
            sock.send(msg, zmq.NOBLOCK)
        except zmq.Again:
            self.stats.dropped += 1
            return False
        self.stats.sent += 1
        self.stats.bytes_sent += len(msg)
        return True


register_transport("zmq", ZmqSender, ZmqReceiver)
