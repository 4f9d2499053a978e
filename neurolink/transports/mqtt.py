"""MQTT transport through a real broker (aiomqtt 2.x), for sites that already run one.

Topics (``prefix`` defaults to ``neurolink/<name>``):

- ``{prefix}/{stream_id}/data``     sender -> receiver: frames and clock replies (in order)
- ``{prefix}/{stream_id}/header``   sender -> receiver: stream header, RETAINED so late joiners get it at once
- ``{prefix}/{stream_id}/feedback`` receiver -> sender: feedback reports and clock probes

Each side owns one supervisor task running an explicit connect loop with exponential backoff: a
broker restart never ends the daemon. While disconnected, sends are refused and counted in
``stats.dropped`` (stale samples are worth less than fresh ones); reconnects are counted in
``stats.reconnects``; each outage is logged once when it starts and once when it ends. Outgoing and
incoming queues are bounded and drop the oldest message (counted). aiomqtt leaves Nagle on, which
adds ~6 ms per small QoS 0 message on loopback, so we set ``TCP_NODELAY`` through ``socket_options``.

TLS and broker credentials (``tls``, ``ca_file``, ``cert_file``, ``password_env``, ...) are validated and
turned into client arguments in mqtt_tls.py; ``share_group`` selects the receiver-group classes of
mqtt_group.py (one owner per stream on top of shared subscriptions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections import deque
from typing import Any, cast

import aiomqtt

from neurolink.errors import ConfigError, TransportError
from neurolink.transports.base import ReceiverTransport, SenderTransport, TransportStats, register_transport
from neurolink.transports.mqtt_tls import (
    TlsSettings,
    describe_connect_error,
    is_config_failure,
    resolve_password,
)

log = logging.getLogger(__name__)

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
# paho logs every failed retry at ERROR; the supervisor logs once per outage or changed reason instead.
# Lower this logger's level to see paho's own messages.
PAHO_LOG = logging.getLogger(f"{__name__}.paho")
PAHO_LOG.setLevel(logging.CRITICAL)
_KINDS = {"data": "data", "clock": "data", "header": "header"}


def _check(key: str, value: Any, types: type | tuple[type, ...], lo: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, types) or (lo is not None and cast(float, value) < lo):
        want = getattr(types, "__name__", None) or " or ".join(t.__name__ for t in types)  # type: ignore[union-attr]
        bound = f" >= {lo}" if lo is not None else ""
        raise ConfigError(f"transport.{key}", f"expected {want}{bound}, got {value!r}")
    return value


_PAHO_INLINE = ("publish", "loop_write", "want_write", "_registered_write", "_out_packet", "_call_socket_register_write")


def _publish0(pc: Any, topic: str, msg: bytes, retain: bool) -> None:
    """QoS 0 publish written to the socket now, from the event loop's own thread.

    Why: aiomqtt's ``publish`` queues the packet in paho, schedules a writer callback through
    ``call_soon_threadsafe`` (a self-pipe wake-up), writes on a later loop pass and then wakes the caller
    again from ``on_publish``: three event-loop passes per message, ~0.1-0.3 ms each on a busy machine.
    When paho has nothing pending we write inline; whatever a full socket leaves behind goes to
    aiomqtt's writer callback as usual, so order and back-pressure are unchanged."""
    idle = not pc._registered_write and not pc._out_packet
    if idle:
        pc._registered_write = True  # keep paho from scheduling a deferred writer for this packet
    try:
        info = pc.publish(topic, msg, 0, retain)
        if info.rc != 0:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if idle:
            pc.loop_write()  # unregisters (a no-op for aiomqtt) when everything was written
    finally:
        if idle and pc._registered_write:  # a full socket left bytes (or the write failed)
            pc._registered_write = False
            if pc.want_write():
                pc._call_socket_register_write()  # aiomqtt's writer callback sends the rest


class _Outbox:
    """Bounded FIFO that drops the oldest entry on overflow (the caller counts it)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: deque[tuple[str, bytes, bool]] = deque()
        self.event = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, item: tuple[str, bytes, bool]) -> bool:
        """Append; False when the oldest entry had to be evicted."""
        evicted = len(self.items) >= self.maxsize
        if evicted:
            self.items.popleft()
        self.items.append(item)
        self.idle.clear()
        self.event.set()
        return not evicted

    def clear(self) -> int:
        n = len(self.items)
        self.items.clear()
        self.idle.set()
        return n


class _MqttCommon:
    """Config, the connect/backoff supervisor, and the publish/subscribe pumps shared by both sides."""

    role = "?"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str | None = None,
        name: str = "default",
        qos: int = 0,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        password_env: str | None = None,
        password_file: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_insecure: bool = False,
        queue: int = 10000,
        keepalive: int = 30,
        backoff_min_s: float = 0.05,
        backoff_max_s: float = 2.0,
        connect_timeout_s: float = 5.0,
        **unknown: Any,
    ) -> None:
        if unknown:
            k = sorted(unknown)[0]
            raise ConfigError(f"transport.{k}", "unknown key; allowed keys are host, port, prefix, name, qos, "
                              "client_id, username, password, password_env, password_file, tls, ca_file, cert_file, key_file, "
                              "tls_insecure, queue, keepalive, backoff_min_s, backoff_max_s, connect_timeout_s "
                              "(receivers also share_group, max_streams; senders share_group, announce_interval_s)")
        self.host = _check("host", host, str)
        self.port = _check("port", port, int, 1)
        if port > 65535:
            raise ConfigError("transport.port", f"expected a port in [1, 65535], got {port}")
        _check("name", name, str)
        self.prefix = _check("prefix", prefix, str) if prefix is not None else f"neurolink/{name}"
        if not self.prefix or any(c in self.prefix for c in "+#\0") or self.prefix.endswith("/"):
            raise ConfigError("transport.prefix", f"expected a topic prefix without wildcards or trailing '/', got {self.prefix!r}")
        if qos not in (0, 1, 2) or isinstance(qos, bool):
            raise ConfigError("transport.qos", f"expected one of [0, 1, 2], got {qos!r}")
        self.qos = qos
        self.client_id = _check("client_id", client_id, str) if client_id is not None else f"nl-{self.role}-{uuid.uuid4().hex[:10]}"
        self.username = _check("username", username, str) if username is not None else None
        self.password = resolve_password(username, password, password_env, password_file)
        self.tls = TlsSettings.from_config(tls, ca_file, cert_file, key_file, tls_insecure)
        self._tls_kwargs = self.tls.client_kwargs()  # builds the SSL context now: bad files fail at startup
        self.queue = _check("queue", queue, int, 1)
        self.keepalive = _check("keepalive", keepalive, int, 1)
        self.backoff_min_s = float(_check("backoff_min_s", backoff_min_s, (int, float), 0.001))
        self.backoff_max_s = float(_check("backoff_max_s", backoff_max_s, (int, float), self.backoff_min_s))
        self.connect_timeout_s = float(_check("connect_timeout_s", connect_timeout_s, (int, float), 0))
        self.stats = TransportStats()
        self.connected = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._outbox: _Outbox | None = None
        self._inline: Any = None  # paho client while connected at QoS 0 (send() publishes directly)
        self._inbox: asyncio.Queue[bytes] | None = None
        self.inbox_dropped = 0
        self.connect_failures = 0  # every failed connection attempt (refusals and TLS failures also in stats.errors)
        self.last_error = ""

    # -- subclasses ---------------------------------------------------------------------------------
    def _subscriptions(self) -> list[str]:
        raise NotImplementedError

    def topic(self, stream_id: int, kind: str) -> str:
        return f"{self.prefix}/{int(stream_id)}/{kind}"

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self._closing = False
        self._outbox = _Outbox(self.queue)
        self._inbox = asyncio.Queue(self.queue)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt-{self.role}-supervisor")
        if self.connect_timeout_s > 0:
            try:  # give the first connection a chance, but a missing broker must not stop the daemon
                await asyncio.wait_for(self.connected.wait(), self.connect_timeout_s)
            except TimeoutError:
                log.warning("mqtt %s: broker %s:%d not reachable yet (%s); retrying in the background",
                            self.role, self.host, self.port, self.last_error or "no answer")

    async def close(self, drain_s: float = 2.0) -> None:
        if self._supervisor is None:
            return
        if self._outbox is not None and self.connected.is_set():
            with contextlib.suppress(TimeoutError):  # flush what is queued (end-of-stream frames) first
                await asyncio.wait_for(self._outbox.idle.wait(), drain_s)
            deadline = time.monotonic() + drain_s
            while (pc := self._inline) is not None and pc.want_write() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)  # bytes paho still holds for a full socket
        self._closing = True
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor
        self._supervisor = None
        self.connected.clear()

    def _client_options(self) -> dict[str, Any]:
        """Extra aiomqtt.Client arguments for subclasses (e.g. a will message)."""
        return {}

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password, identifier=self.client_id,
            keepalive=self.keepalive, timeout=max(self.connect_timeout_s, 1.0), socket_options=NODELAY,
            max_queued_incoming_messages=self.queue, logger=PAHO_LOG, **self._tls_kwargs, **self._client_options(),
        )

    def _connect_failed(self, exc: BaseException) -> str:
        """Count a failed attempt; log refusals and TLS failures (config problems) as one error line each
        time the reason changes, not once per retry."""
        reason = describe_connect_error(exc, self.tls.enabled)
        self.connect_failures += 1
        repeated = reason == self.last_error
        self.last_error = reason
        if is_config_failure(exc, self.tls.enabled):
            self.stats.errors += 1
            if not repeated:
                log.error("mqtt %s: %s:%d %s; retrying with backoff up to %.1f s", self.role, self.host, self.port,
                          reason, self.backoff_max_s)
        return reason

    async def _supervise(self) -> None:
        """Connect, run the pumps until the connection breaks, back off, repeat; until close()."""
        delay = self.backoff_min_s
        ever_connected = False
        outage_since: float | None = None
        while not self._closing:
            try:
                async with self._client() as client:
                    for t in self._subscriptions():
                        await client.subscribe(t, qos=self.qos)
                    if ever_connected:
                        self.stats.reconnects += 1
                        log.warning("mqtt %s: reconnected to %s:%d after %.2f s (reconnect #%d)", self.role, self.host,
                                    self.port, time.monotonic() - (outage_since or time.monotonic()), self.stats.reconnects)
                    else:
                        log.info("mqtt %s: connected to %s:%d, prefix %r, qos %d", self.role, self.host, self.port,
                                 self.prefix, self.qos)
                    ever_connected = True
                    self.last_error = ""
                    outage_since = None
                    delay = self.backoff_min_s
                    self.connected.set()
                    await self._pump(client)
                    reason: str = "connection closed"
            except (aiomqtt.MqttError, OSError) as exc:  # OSError includes ssl.SSLError
                # a drop of a working link is the outage logged below; a failed attempt is counted here
                reason = str(exc) or type(exc).__name__ if self.connected.is_set() else self._connect_failed(exc)
            self.connected.clear()
            if self._outbox is not None:
                lost = self._outbox.clear()  # stale by the time we are back: drop and count
                self.stats.dropped += lost
            if self._closing:
                break
            if outage_since is None:
                outage_since = time.monotonic()
                if ever_connected:
                    log.warning("mqtt %s: lost the broker %s:%d (%s); reconnecting with backoff up to %.1f s",
                                self.role, self.host, self.port, reason, self.backoff_max_s)
            log.debug("mqtt %s: connect failed (%s), next try in %.2f s", self.role, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Run the reader and writer until either fails (the connection broke); re-raise MQTT errors."""
        pc = getattr(client, "_client", None)  # the paho client under aiomqtt
        if self.qos == 0 and pc is not None and all(hasattr(pc, a) for a in _PAHO_INLINE):
            self._inline = pc  # QoS 0: publish from send() itself (see _publish0)
        if type(self)._on_message is _MqttCommon._on_message and pc is not None and hasattr(pc, "on_message"):
            # no per-topic routing: take messages straight from paho's callback into the inbox, skipping
            # aiomqtt's Message copy, its queue and our reader task (two event-loop passes per frame)
            pc.on_message = self._paho_message
        tasks = [asyncio.create_task(self._reader(client)), asyncio.create_task(self._writer(client))]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._inline = None
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    async def _reader(self, client: aiomqtt.Client) -> None:
        assert self._inbox is not None
        on_message = self._on_message
        async for m in client.messages:
            payload = m.payload
            if isinstance(payload, (bytes, bytearray)):
                on_message(m, payload)

    def _paho_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        payload = message.payload
        if isinstance(payload, (bytes, bytearray)):
            self._deliver(payload)

    def _on_message(self, m: aiomqtt.Message, payload: bytes | bytearray) -> None:
        """One incoming message; subclasses route by ``m.topic`` (shared-subscription groups)."""
        self._deliver(payload)

    def _deliver(self, payload: bytes | bytearray) -> None:
        inbox = self._inbox
        assert inbox is not None
        if inbox.full():  # the consumer is behind: drop the oldest, count it
            inbox.get_nowait()
            self.inbox_dropped += 1
            self.stats.dropped += 1
        inbox.put_nowait(bytes(payload))

    async def _writer(self, client: aiomqtt.Client) -> None:
        box = self._outbox
        assert box is not None
        while True:
            while box.items:
                topic, msg, retain = box.items[0]
                try:
                    if self._inline is not None:
                        _publish0(self._inline, topic, msg, retain)
                    else:
                        await client.publish(topic, msg, qos=self.qos, retain=retain)
                except aiomqtt.MqttError:
                    self.stats.errors += 1
                    raise
                if box.items and box.items[0][0] is topic and box.items[0][1] is msg:
                    box.items.popleft()  # (unless a clear() raced us)
                self.stats.sent += 1
                self.stats.bytes_sent += len(msg)
            box.idle.set()
            box.event.clear()
            await box.event.wait()

    def _enqueue(self, topic: str, msg: bytes, retain: bool) -> bool:
        if not self.connected.is_set() or self._outbox is None:
            self.stats.dropped += 1
            return False
        pc = self._inline
        if pc is not None and not self._outbox.items:  # nothing queued ahead of it: publish now
            try:
                _publish0(pc, topic, msg, retain)
            except (aiomqtt.MqttError, OSError) as exc:  # the connection broke: the supervisor reconnects
                self.stats.errors += 1
                self.stats.dropped += 1
                log.debug("mqtt %s: publish failed: %s", self.role, exc)
                return False
            self.stats.sent += 1
            self.stats.bytes_sent += len(msg)
            return True
        if not self._outbox.put((topic, bytes(msg), retain)):
            self.stats.dropped += 1  # the oldest queued message was evicted
        return True

    async def _next(self) -> bytes:
        if self._inbox is None:
            raise TransportError(f"mqtt {self.role}: used before start()")
        msg = await self._inbox.get()
        self.stats.received += 1
        self.stats.bytes_received += len(msg)
        return msg


class MqttSender(_MqttCommon, SenderTransport):
    """Publishes data/header topics; subscribes to every stream's feedback topic under the prefix."""

    role = "sender"

    def _subscriptions(self) -> list[str]:
        return [f"{self.prefix}/+/feedback"]

    async def send(self, msg: bytes, *, stream_id: int = 0, kind: str = "data") -> bool:
        sub = _KINDS.get(kind)
        if sub is None:
            raise TransportError(f"mqtt: unknown message kind {kind!r} (expected one of {sorted(_KINDS)})")
        return self._enqueue(self.topic(stream_id, sub), msg, retain=(sub == "header"))

    async def recv_feedback(self) -> bytes:
        return await self._next()


class MqttReceiver(_MqttCommon, ReceiverTransport):
    """Subscribes to every stream's data and (retained) header topics; publishes feedback."""

    role = "receiver"

    def _subscriptions(self) -> list[str]:
        return [f"{self.prefix}/+/header", f"{self.prefix}/+/data"]

    async def recv(self) -> bytes:
        return await self._next()

    async def send_feedback(self, msg: bytes, *, stream_id: int = 0) -> bool:
        return self._enqueue(self.topic(stream_id, "feedback"), msg, retain=False)


def _make_sender(**cfg: Any) -> MqttSender:
    """``transport.share_group`` set: streams go to one member each of a receiver group (mqtt_group.py)."""
    if cfg.get("share_group") is not None:
        from neurolink.transports.mqtt_group import MqttGroupSender

        return MqttGroupSender(**cfg)
    return MqttSender(**cfg)


def _make_receiver(**cfg: Any) -> MqttReceiver:
    if cfg.get("share_group") is not None:
        from neurolink.transports.mqtt_group import MqttGroupReceiver

        return MqttGroupReceiver(**cfg)
    return MqttReceiver(**cfg)


register_transport("mqtt", _make_sender, _make_receiver)  # type: ignore[arg-type]
