"""Per-stream work sharing between receivers, on top of MQTT shared subscriptions.

A shared subscription (``$share/<group>/<topic>``) hands each *message* to one member of the group,
round-robin. Frames of one stream must all reach the same receiver (decoders keep state between
frames, archives have one writer), so the group shares *streams*, not messages:

1. the sender publishes a small **announce** per unowned stream (QoS 1, repeated every
   ``announce_interval_s`` until owned) on ``{prefix}/{sid}/announce/{group}``; members subscribe to it
   through ``$share/{group}/...``, so exactly one member gets each announce;
2. that member subscribes to the stream's header and data topics, waits for the SUBACK, then publishes
   a **claim** on ``{prefix}/{sid}/claim/{group}``;
3. the **sender arbitrates**: the first claim it sees for the stream's current epoch wins. It publishes a
   RETAINED **owner record** on ``{prefix}/{sid}/owner/{group}`` (all members subscribe to it, not
   shared), waits for the broker's PUBACK, and only then releases the stream's data. Later claims get
   the record again, so a loser unsubscribes and drops what it buffered;
4. until then the sender **holds** the stream's data (bounded by ``queue``; overflow drops the oldest,
   counted). Because the owner subscribed before it claimed, and the data is published after the
   claim was answered, the broker routes every released frame to the owner: nothing is lost or
   duplicated. A member buffers a claimed stream's messages until the owner record says whether to
   deliver or drop them.

Failover: each member publishes ``online`` on ``{prefix}/members/{group}/{member}`` when it connects,
has ``offline`` there as its will message, and on a clean close stops taking offers (unsubscribes the
shared topic) and publishes ``offline`` itself. The sender then bumps the stream's epoch, publishes an
owner record without owner (the old owner, if alive, lets go), holds data again and re-announces; it
ignores claims from a member it heard ``offline`` from until that member says ``online`` again. Frames in
flight to the departed owner are lost to the live path; the reliable archive path (spool + NACK)
recovers them when the archive lives on storage the new owner can reach.

All JSON control payloads are tiny: ``{"session", "epoch"}`` (announce), plus ``"member"`` (claim, owner
record; ``null`` = no owner). ``session`` is random per sender transport, so records of an earlier
sender run are never mistaken for current ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from neurolink.errors import ConfigError
from neurolink.transports.mqtt import _KINDS, MqttReceiver, MqttSender, _check

log = logging.getLogger(__name__)


def _check_group(group: Any) -> str:
    if not isinstance(group, str) or not group or any(c in group for c in "/+#$\0"):
        raise ConfigError("transport.share_group", f"expected a non-empty name without '/', '+', '#' or '$', got {group!r}")
    return group


def _payload(**kw: Any) -> bytes:
    return json.dumps(kw, separators=(",", ":")).encode()


MAX_CONTROL_BYTES = 4096  # control records are < 100 bytes; anything far larger is not one of ours


def _parse(payload: bytes | bytearray) -> dict[str, Any] | None:
    """An announce / claim / owner record, or None for anything malformed (the callers count those)."""
    if len(payload) > MAX_CONTROL_BYTES:
        return None
    try:
        d = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested JSON
        return None
    return d if isinstance(d, dict) and isinstance(d.get("session"), str) and isinstance(d.get("epoch"), int) else None


class _Tasks:
    """Fire-and-forget control tasks, referenced until done; failures are logged, never silent."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.live: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.ensure_future(coro)
        self.live.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self.live.discard(t)
        if not t.cancelled() and t.exception() is not None:
            exc = t.exception()
            lvl = logging.DEBUG if isinstance(exc, aiomqtt.MqttError) else logging.ERROR  # a broken link: the supervisor reconnects
            log.log(lvl, "mqtt group %s: control task failed: %s", self.owner, exc)

    def cancel(self) -> None:
        for t in list(self.live):
            t.cancel()


# -- sender side ------------------------------------------------------------------------------------

@dataclass
class _Owned:
    owner: str | None = None
    epoch: int = 0
    released: bool = False
    announced: float = -1e9
    held: deque[tuple[str, bytes]] = field(default_factory=deque)


class MqttGroupSender(MqttSender):
    """MqttSender that gives each stream to one member of a receiver group and holds its data until then."""

    def __init__(self, share_group: str, announce_interval_s: float = 0.25, **kw: Any) -> None:
        super().__init__(**kw)
        self.group = _check_group(share_group)
        self.announce_interval_s = float(_check("announce_interval_s", announce_interval_s, (int, float), 0.01))
        self.session = uuid.uuid4().hex[:16]
        self.streams: dict[int, _Owned] = {}
        self.held_dropped = 0  # held messages evicted by the bound (also in stats.dropped)
        self.reassignments = 0
        self.bad_control = 0  # malformed claim records (ignored)
        self._gone: dict[str, None] = {}  # members that said offline (until they say online again); bounded
        self._live: aiomqtt.Client | None = None
        self._wake = asyncio.Event()
        self._tasks = _Tasks("sender")
        self._plen = len(self.prefix) + 1

    def gtopic(self, stream_id: int, kind: str) -> str:
        return f"{self.prefix}/{int(stream_id)}/{kind}/{self.group}"

    def owner_of(self, stream_id: int) -> str | None:
        st = self.streams.get(stream_id)
        return st.owner if st is not None and st.released else None

    def _subscriptions(self) -> list[str]:
        return [*super()._subscriptions(), f"{self.prefix}/+/claim/{self.group}", f"{self.prefix}/members/{self.group}/+"]

    def _register(self, stream_id: int) -> _Owned:
        st = self.streams.get(stream_id)
        if st is None:
            st = self.streams[stream_id] = _Owned()
            self._wake.set()  # announce at once
        return st

    async def send(self, msg: bytes, *, stream_id: int = 0, kind: str = "data") -> bool:
        st = self.streams.get(stream_id)
        if kind == "header":  # retained: the owner gets it on subscribe; the first one registers the stream
            if st is None:
                self._register(stream_id)
            return await super().send(msg, stream_id=stream_id, kind=kind)
        if st is None:  # no header yet: not a stream of this sender (the Sender always sends its header first)
            self.stats.dropped += 1
            return False
        if st.released:
            return await super().send(msg, stream_id=stream_id, kind=kind)
        sub = _KINDS.get(kind)
        if sub is None:
            return await super().send(msg, stream_id=stream_id, kind=kind)  # raises the usual error
        if len(st.held) >= self.queue:  # bounded like the outbox: drop the oldest, count it
            st.held.popleft()
            self.held_dropped += 1
            self.stats.dropped += 1
            if self.held_dropped in (1, 10, 100, 1000) or self.held_dropped % 10000 == 0:
                log.warning("mqtt group %s: no member owns stream %d yet; dropped %d held messages so far",
                            self.group, stream_id, self.held_dropped)
        st.held.append((self.topic(stream_id, sub), bytes(msg)))
        return True

    # -- control ------------------------------------------------------------------------------------
    def _on_message(self, m: aiomqtt.Message, payload: bytes | bytearray) -> None:
        topic = m.topic.value
        if topic.endswith("/feedback"):
            self._deliver(payload)
            return
        parts = topic[self._plen:].split("/")
        if len(parts) != 3:
            return
        if parts[0] == "members":
            if bytes(payload) == b"offline":
                self._gone[parts[2]] = None
                if len(self._gone) > 4096:
                    del self._gone[next(iter(self._gone))]
                self._on_member_gone(parts[2])
            elif bytes(payload) == b"online":
                self._gone.pop(parts[2], None)
        elif parts[1] == "claim":
            self._on_claim(parts[0], payload)

    def _on_claim(self, sid_text: str, payload: bytes | bytearray) -> None:
        d = _parse(payload)
        if d is None:
            self.bad_control += 1
        try:
            sid = int(sid_text)
        except ValueError:
            return
        st = self.streams.get(sid)
        member = d.get("member") if d else None
        if d is None or st is None or d["session"] != self.session or d["epoch"] != st.epoch or not isinstance(member, str):
            return  # stale (an earlier run or epoch) or malformed
        if member in self._gone:
            return  # a leaving member that still saw an offer before it disconnected
        if st.owner is None:
            st.owner = member
            log.info("mqtt group %s: stream %d -> %s (epoch %d)", self.group, sid, member, st.epoch)
        if self._live is not None:  # (re)publish the decision: the winner starts, a loser lets go
            self._tasks.spawn(self._grant(self._live, sid, st))

    async def _grant(self, client: aiomqtt.Client, sid: int, st: _Owned) -> None:
        owner, epoch = st.owner, st.epoch
        await client.publish(self.gtopic(sid, "owner"), _payload(session=self.session, epoch=epoch, member=owner),
                             qos=1, retain=True)  # returns after the broker's PUBACK
        if st.released or st.owner != owner or st.epoch != epoch or owner is None:
            return
        st.released = True
        n = len(st.held)
        while st.held:  # in order, ahead of anything sent from now on
            topic, msg = st.held.popleft()
            self._enqueue(topic, msg, False)
        log.debug("mqtt group %s: stream %d released to %s with %d held messages", self.group, sid, owner, n)

    def _on_member_gone(self, member: str) -> None:
        for sid, st in self.streams.items():
            if st.owner == member:
                st.owner, st.released, st.announced = None, False, -1e9
                st.epoch += 1
                self.reassignments += 1
                log.warning("mqtt group %s: owner %s of stream %d went away; re-announcing (epoch %d)",
                            self.group, member, sid, st.epoch)
                if self._live is not None:
                    self._tasks.spawn(self._grant(self._live, sid, st))  # owner record without owner
        self._wake.set()

    async def _pump(self, client: aiomqtt.Client) -> None:
        self._live = client
        ctl = asyncio.create_task(self._control(client), name="mqtt-group-sender-control")
        try:
            await super()._pump(client)
        finally:
            self._live = None
            ctl.cancel()
            await asyncio.gather(ctl, return_exceptions=True)

    async def _control(self, client: aiomqtt.Client) -> None:
        """After each (re)connect: re-assert decisions (the broker may have lost retained records), then
        announce unowned streams until someone owns them."""
        for sid, st in list(self.streams.items()):
            if st.owner is not None:
                await self._grant(client, sid, st)
        while True:
            self._wake.clear()
            now = time.monotonic()
            for sid, st in list(self.streams.items()):
                if st.owner is None and now - st.announced >= self.announce_interval_s:
                    st.announced = now
                    await client.publish(self.gtopic(sid, "announce"), _payload(session=self.session, epoch=st.epoch), qos=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.announce_interval_s)

    async def close(self, drain_s: float = 2.0) -> None:
        """Give unowned streams up to ``drain_s`` to find an owner (their held frames), then drain and clear
        the retained owner records of this session."""
        deadline = time.monotonic() + drain_s
        while any(not st.released for st in self.streams.values()) and time.monotonic() < deadline and self._supervisor:
            await asyncio.sleep(0.02)
        unowned = [sid for sid, st in self.streams.items() if not st.released]
        if unowned:
            lost = sum(len(self.streams[s].held) for s in unowned)
            self.stats.dropped += lost
            log.warning("mqtt group %s: streams %s never found an owner; %d held messages dropped", self.group, unowned, lost)
        if self._outbox is not None and self.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.idle.wait(), max(0.0, deadline - time.monotonic()) + 0.5)
        client = self._live
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                for sid in self.streams:
                    await client.publish(self.gtopic(sid, "owner"), b"", qos=1, retain=True, timeout=1.0)
        self._tasks.cancel()
        await super().close(drain_s=0.5)


# -- receiver side ----------------------------------------------------------------------------------

class MqttGroupReceiver(MqttReceiver):
    """MqttReceiver that takes streams from a shared-subscription group, one owner per stream."""

    def __init__(self, share_group: str, max_streams: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.group = _check_group(share_group)
        self.max_streams = _check("max_streams", max_streams, int, 0)  # 0 = no limit
        self.member = self.client_id
        self.claims: dict[int, tuple[str, int]] = {}  # sid -> (session, epoch) claimed, not yet decided
        self.owned: dict[int, tuple[str, int]] = {}
        self.pending: dict[int, deque[bytes]] = {}  # messages of claimed streams, until the decision
        self.not_owned_dropped = 0  # messages of streams this member does not own (claims it lost, leftovers)
        self.released = 0
        self.bad_control = 0  # malformed announce / owner records (ignored)
        self._leaving = False
        self._live: aiomqtt.Client | None = None
        self._tasks = _Tasks("receiver")
        self._plen = len(self.prefix) + 1
        self._member_topic = f"{self.prefix}/members/{self.group}/{self.member}"
        self._announce_sub = f"$share/{self.group}/{self.prefix}/+/announce/{self.group}"

    def gtopic(self, stream_id: int, kind: str) -> str:
        return f"{self.prefix}/{int(stream_id)}/{kind}/{self.group}"

    def _stream_topics(self, sid: int) -> list[str]:
        return [self.topic(sid, "header"), self.topic(sid, "data")]

    def _subscriptions(self) -> list[str]:
        mine = [t for sid in sorted({*self.owned, *self.claims}) for t in self._stream_topics(sid)]
        return [f"{self.prefix}/+/owner/{self.group}", *mine, self._announce_sub]

    def _client_options(self) -> dict[str, Any]:
        return {"will": aiomqtt.Will(self._member_topic, b"offline", qos=1, retain=False)}

    async def send_feedback(self, msg: bytes, *, stream_id: int = 0) -> bool:
        if stream_id not in self.owned:
            # feedback for a stream now owned by another member would mislead its sender's controller;
            # not counted as dropped (the Receiver keeps reporting on streams it once had)
            return False
        return await super().send_feedback(msg, stream_id=stream_id)

    def _on_message(self, m: aiomqtt.Message, payload: bytes | bytearray) -> None:
        topic = m.topic.value
        sid_text, _, kind = topic[self._plen:].partition("/")
        if kind == "data" or kind == "header":
            sid = int(sid_text)
            if sid in self.owned:
                self._deliver(payload)
            elif sid in self.claims:
                q = self.pending.setdefault(sid, deque(maxlen=self.queue))
                if len(q) == q.maxlen:
                    self.not_owned_dropped += 1
                q.append(bytes(payload))
            else:
                self.not_owned_dropped += 1
            return
        try:
            sid = int(sid_text)
        except ValueError:
            return
        if kind == f"announce/{self.group}":
            self._on_announce(sid, payload)
        elif kind == f"owner/{self.group}":
            self._on_owner(sid, payload)

    def _on_announce(self, sid: int, payload: bytes | bytearray) -> None:
        d = _parse(payload)
        if d is None:
            self.bad_control += 1
        if d is None or self._live is None or self._leaving:
            return
        key = (d["session"], d["epoch"])
        if self.owned.get(sid) == key or self.claims.get(sid) == key:
            self._tasks.spawn(self._claim(self._live, sid, key, subscribe=False))  # our claim got lost: repeat it
            return
        if self.max_streams and len(self.owned) + len(self.claims) >= self.max_streams:
            return  # full: the sender re-announces and another member gets it
        self.claims[sid] = key
        self._tasks.spawn(self._claim(self._live, sid, key, subscribe=True))

    async def _claim(self, client: aiomqtt.Client, sid: int, key: tuple[str, int], subscribe: bool) -> None:
        if subscribe:  # subscribed (SUBACK) before claiming: every frame released after the decision reaches us
            await client.subscribe([(t, self.qos) for t in self._stream_topics(sid)])
        if self._leaving:
            return
        await client.publish(self.gtopic(sid, "claim"), _payload(session=key[0], epoch=key[1], member=self.member), qos=1)

    def _on_owner(self, sid: int, payload: bytes | bytearray) -> None:
        if not payload:
            return  # cleared by a sender that closed cleanly: the stream ended, nothing to change
        d = _parse(payload)
        if d is None:
            self.bad_control += 1
        mine = self.claims.get(sid) or self.owned.get(sid)
        if d is None or mine is None:
            return
        key, member = (d["session"], d["epoch"]), d.get("member")
        if key[0] == mine[0] and key[1] < mine[1]:
            return  # an older epoch of the same sender run: superseded already
        if key == mine and member == self.member:
            self.claims.pop(sid, None)
            if sid not in self.owned:
                log.info("mqtt group %s: %s owns stream %d", self.group, self.member, sid)
            self.owned[sid] = key
            for msg in self.pending.pop(sid, ()):
                self._deliver(msg)
            return
        if key == mine and member is None:
            return  # the "no owner yet" record of the very epoch we are claiming in: wait for the decision
        # someone else won this epoch, or a newer epoch / sender run superseded ours: let go
        was_owner = sid in self.owned
        self.claims.pop(sid, None)
        self.owned.pop(sid, None)
        self.not_owned_dropped += len(self.pending.pop(sid, ()))
        if was_owner:
            self.released += 1
            log.info("mqtt group %s: %s no longer owns stream %d", self.group, self.member, sid)
        if self._live is not None:
            self._tasks.spawn(self._live.unsubscribe(self._stream_topics(sid)))

    async def _pump(self, client: aiomqtt.Client) -> None:
        self._live = client
        # "online" first (tasks start in order): a sender that saw our will or goodbye accepts claims again
        self._tasks.spawn(client.publish(self._member_topic, b"online", qos=1))
        for sid, key in list(self.claims.items()):  # a claim cut off by a reconnect: repeat it
            self._tasks.spawn(self._claim(client, sid, key, subscribe=False))
        try:
            await super()._pump(client)
        finally:
            self._live = None

    async def close(self, drain_s: float = 2.0) -> None:
        """Say goodbye first, so the sender re-assigns this member's streams at once (not after the keepalive).

        Stop taking offers before that: an offer that reached us while draining must not be claimed by a
        member that is about to vanish without a will message.

        The goodbye never waits on the unsubscribe's acknowledgement: a clean DISCONNECT discards the will,
        so a skipped goodbye would leave this member's streams with a member that is gone, for the rest of
        the sender's run (it happened when a loaded event loop read the UNSUBACK after more than the 1 s
        it once waited). Both requests are queued at once, in this order, on the one connection, so the
        broker drops the offer subscription before it passes the goodbye on; we then wait (bounded) for
        both acknowledgements, and the DISCONNECT that follows is queued behind them either way."""
        self._leaving = True
        self._tasks.cancel()
        client = self._live
        if client is not None:
            wait_s = max(1.0, drain_s)
            acks = [asyncio.ensure_future(client.unsubscribe(self._announce_sub, timeout=wait_s)),
                    asyncio.ensure_future(client.publish(self._member_topic, b"offline", qos=1, timeout=wait_s))]
            for r in await asyncio.gather(*acks, return_exceptions=True):
                if isinstance(r, Exception) and not isinstance(r, (aiomqtt.MqttError, TimeoutError)):
                    raise r
                if r is not None:  # no acknowledgement (a broken link: the broker sends the will instead)
                    log.debug("mqtt group %s: %s leaving: %s", self.group, self.member, r)
        await super().close(drain_s)


__all__ = ["MqttGroupReceiver", "MqttGroupSender"]
