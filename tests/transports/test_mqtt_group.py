"""Shared-subscription receiver groups (issue 8): streams, not messages, are split between members.

Real mosquitto; eight senders (one stream each), two receivers in one group. Every stream must be
delivered by exactly one receiver, complete, bit-exact, without duplicates, and both receivers must get
some. Then failover: a member that leaves hands its streams to the survivor.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import aiomqtt
import numpy as np
import pytest

from neurolink.errors import ConfigError
from neurolink.receiver import Receiver
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.replay import Recording, ReplaySource
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports import make_receiver_transport, make_sender_transport
from neurolink.transports.mqtt import _Outbox
from neurolink.transports.mqtt_group import MqttGroupReceiver, MqttGroupSender

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(120)]  # a hang fails fast instead of taking 300 s

FS = 1000.0
LADDER = [{"id": "delta-zstd"}]


def _rec(sid: int, seconds: float) -> Recording:
    return Recording(synthetic_recording(int(seconds * FS), 4, FS, seed=sid), FS, [], f"grp-{sid}", "EEG")


class _Member:
    """A receiver in the group with one MemorySink per stream."""

    def __init__(self, cfg: dict) -> None:
        self.sinks: dict[int, MemorySink] = {}
        self.receiver = Receiver(make_receiver_transport(cfg), self._sinks)

    def _sinks(self, h) -> list[MemorySink]:
        assert h.stream_id not in self.sinks, "a stream header was opened twice on one receiver"
        self.sinks[h.stream_id] = MemorySink()
        return [self.sinks[h.stream_id]]

    @property
    def transport(self) -> MqttGroupReceiver:
        return self.receiver.transport  # type: ignore[return-value]


def _ended(members: list[_Member], sids: list[int]) -> bool:
    done = {sid for m in members for sid, st in m.receiver.streams.items() if st.stats.ended}
    return set(sids) <= done


def _assert_tail(sink: MemorySink, rec: Recording, n_sent: int, n: int = 200) -> None:
    """The last ``n`` samples the sender read arrived bit-exact. (A multi-stream Sender stops every stream
    when the first finite replay ends, so the others may stop a few samples short of their recording.)"""
    assert n_sent >= n and np.array_equal(sink.data()[-n:], rec.data[n_sent - n:n_sent])


async def _until(cond, timeout: float) -> bool:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


class _EndsOnCue(ReplaySource):
    """A paced replay whose last ``tail`` samples wait for ``cue``. The failover tests move streams between
    members mid-stream; on a loaded machine getting there can take longer than the whole recording, and a
    stream that already ended has nothing left to move. With the end held back, the move always happens
    while the stream is live, and the tail (sent after the cue) shows delivery resumed at the new owner."""

    def __init__(self, rec: Recording, cue: asyncio.Event, tail: int = 500) -> None:
        super().__init__(rec)
        self.cue, self.tail = cue, tail

    async def chunks(self):
        n, i = self.rec.data.shape[0], 0
        async for c in super().chunks():
            if i + c.data.shape[0] > n - self.tail:
                await self.cue.wait()
            i += c.data.shape[0]
            yield c


def test_two_receivers_split_eight_streams_exactly_once(mosquitto):
    host, port, _ = mosquitto
    seconds = 1.5
    base = {"kind": "mqtt", "host": host, "port": port, "prefix": "nltest/group8", "share_group": "archivers",
            "connect_timeout_s": 3.0}
    recs = {sid: _rec(sid, seconds) for sid in range(1, 9)}

    async def run():
        cue = asyncio.Event()  # the streams' last 0.5 s wait until all are owned: a sender that ends gives an
        # unowned stream 2 s to find an owner, which a loaded machine can miss (held data dropped, counted)
        members = [_Member(base), _Member(base)]
        async with asyncio.TaskGroup() as tg:
            rx = [tg.create_task(m.receiver.run()) for m in members]
            assert await _until(lambda: all(m.transport.connected.is_set() for m in members), 30)
            # one sender per stream: a multi-stream Sender stops all its streams when the first finite
            # replay ends, which would cut the others' last samples (unrelated to the group logic)
            senders = [Sender([StreamSpec(_EndsOnCue(recs[sid], cue), sid, LADDER, frame_ms=5.0)],
                              make_sender_transport({**base, "announce_interval_s": 0.1})) for sid in recs]
            tx = [tg.create_task(s.run()) for s in senders]
            assert await _until(lambda: sum(len(m.transport.owned) for m in members) == len(recs), 30)
            cue.set()
            await asyncio.gather(*tx)
            assert await _until(lambda: _ended(members, list(recs)), 30), "not every stream reached its end"
            for m in members:
                m.receiver.stop()
            await asyncio.gather(*rx)
        return members, senders

    members, senders = asyncio.run(run())
    owned = [set(m.sinks) for m in members]
    assert owned[0].isdisjoint(owned[1]), "a stream was delivered to both receivers"
    assert owned[0] | owned[1] == set(recs)
    assert owned[0] and owned[1], f"one receiver got every stream: {owned}"
    for m in members:
        for sid, sink in m.sinks.items():
            st = m.receiver.streams[sid].stats
            assert np.array_equal(sink.data(), recs[sid].data), f"stream {sid}: samples differ"  # none lost, none twice
            assert st.frames_lost == 0 and st.frames_late == 0 and st.samples_concealed == 0
        assert m.receiver.bad_messages == 0 and m.receiver.frames_without_header == 0
        assert set(m.transport.owned) <= set(m.sinks) | set()  # owns only what it delivered
    for s in senders:
        t = s.transport
        assert isinstance(t, MqttGroupSender)
        assert t.stats.dropped == 0 and t.held_dropped == 0 and t.reassignments == 0
        assert all(st.released for st in t.streams.values())
        assert sum(x.stats.frames_dropped_transport for x in s.streams.values()) == 0


def test_member_leaving_hands_its_streams_to_the_survivor(mosquitto, caplog):
    host, port, _ = mosquitto
    seconds = 3.0
    base = {"kind": "mqtt", "host": host, "port": port, "prefix": "nltest/failover", "share_group": "archivers",
            "connect_timeout_s": 3.0}
    recs = {sid: _rec(sid, seconds) for sid in range(1, 5)}
    marks: dict[str, object] = {}

    async def run():
        cue = asyncio.Event()  # the streams' last 0.5 s wait for it: still live whenever the member leaves
        a, b = _Member(base), _Member(base)
        sender = Sender([StreamSpec(_EndsOnCue(recs[sid], cue), sid, LADDER, frame_ms=5.0) for sid in recs],
                        make_sender_transport({**base, "announce_interval_s": 0.1}))
        t = sender.transport
        # generous bounds (hang guards, not timings): on a loaded 2-core machine each step below can lag seconds
        async with asyncio.TaskGroup() as tg:
            ta = tg.create_task(a.receiver.run())
            tb = tg.create_task(b.receiver.run())
            assert await _until(lambda: a.transport.connected.is_set() and b.transport.connected.is_set(), 30)
            tx = tg.create_task(sender.run())
            assert await _until(lambda: len(a.transport.owned) + len(b.transport.owned) == 4, 30)
            leaver, stayer = (a, b) if a.transport.owned else (b, a)
            moved = set(leaver.transport.owned)
            assert {sid for sid, st in t.streams.items() if st.owner == leaver.transport.member} == moved
            # the leaver really had them: it decoded frames of each (then leaves mid-stream)
            rs = leaver.receiver.streams
            assert await _until(lambda: all(sid in rs and rs[sid].stats.frames_ok > 0 for sid in moved), 30)
            marks["moved"] = moved
            leaver.receiver.stop()  # a clean stop says "offline": no keepalive wait
            await (ta if leaver is a else tb)
            assert await _until(lambda: moved <= set(stayer.transport.owned), 30), "orphaned streams were not re-assigned"
            assert not tx.done()
            cue.set()  # the streams' ends go out now, to the new owner
            await tx
            assert await _until(lambda: _ended([stayer], list(recs)), 30), "not every stream reached its end"
            stayer.receiver.stop()
        return leaver, stayer, sender

    with caplog.at_level(logging.WARNING, logger="neurolink.transports.mqtt_group"):
        leaver, stayer, sender = asyncio.run(run())
    moved = marks["moved"]
    assert moved and sender.transport.reassignments == len(moved)  # once per moved stream (no second count)
    assert set(stayer.sinks) == set(recs)  # the survivor finished every stream
    for sid in recs:  # each stream's end arrived at the survivor, bit-exact
        _assert_tail(stayer.sinks[sid], recs[sid], sender.streams[sid].stats.samples_in)
    assert any("went away" in r.getMessage() for r in caplog.records)


def test_group_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="transport.share_group"):
        MqttGroupReceiver(share_group="a/b")
    with pytest.raises(ConfigError, match="transport.max_streams"):
        make_receiver_transport({"kind": "mqtt", "share_group": "g", "max_streams": -1})
    with pytest.raises(ConfigError, match="transport.announce_interval_s"):
        make_sender_transport({"kind": "mqtt", "share_group": "g", "announce_interval_s": 0})
    with pytest.raises(ConfigError, match="transport.max_streams"):  # a receiver-only key on a sender
        make_sender_transport({"kind": "mqtt", "share_group": "g", "max_streams": 2})
    assert isinstance(make_receiver_transport({"kind": "mqtt", "share_group": "g"}), MqttGroupReceiver)
    assert isinstance(make_sender_transport({"kind": "mqtt", "share_group": "g"}), MqttGroupSender)


def test_group_archives_each_stream_once_bit_exact(mosquitto, tmp_path):
    """The reliable archive path through a group: each stream archived by one member, bit-exact, no gaps."""
    from neurolink.archive import read_archive
    from neurolink.reliable.receiver import ReliableReceiver
    from neurolink.reliable.sender import ReliableSender
    from neurolink.sinks.archive import ArchiveSink

    host, port, _ = mosquitto
    seconds = 1.0
    base = {"kind": "mqtt", "host": host, "port": port, "prefix": "nltest/grparch", "share_group": "archivers",
            "connect_timeout_s": 3.0}
    recs = {sid: _rec(sid, seconds) for sid in range(1, 5)}
    path = tmp_path / "archives"

    async def run():
        receivers = [Receiver(make_receiver_transport(base), lambda h: [],
                              reliable=ReliableReceiver(lambda h: ArchiveSink(str(path / f"{h.stream_id}.zarr"))))
                     for _ in range(2)]
        async with asyncio.TaskGroup() as tg:
            rx = [tg.create_task(r.run()) for r in receivers]
            assert await _until(lambda: all(r.transport.connected.is_set() for r in receivers), 10)  # type: ignore[attr-defined]
            senders = [Sender([StreamSpec(ReplaySource(recs[sid]), sid, LADDER, frame_ms=5.0)],
                              make_sender_transport({**base, "announce_interval_s": 0.1}),
                              reliable=ReliableSender(tmp_path / f"spool{sid}", block_frames=20, linger_s=10))
                       for sid in recs]
            await asyncio.gather(*(s.run() for s in senders))  # returns once the archive acknowledged everything
            for r in receivers:
                r.stop()
            await asyncio.gather(*rx)
        return receivers, senders

    receivers, senders = asyncio.run(run())
    archived = [set(r.reliable.streams) for r in receivers]
    assert archived[0].isdisjoint(archived[1]) and archived[0] | archived[1] == set(recs)
    for sid, rec in recs.items():
        x, ts = read_archive(str(path / f"{sid}.zarr"))
        assert np.array_equal(x, rec.data), f"stream {sid}: archive differs"
    for s in senders:
        assert all(v.get("spool_overflow_frames", 0) == 0 for v in s.reliable.summary().values())


_VICTIM = """
import asyncio, sys
from neurolink.transports.mqtt_group import MqttGroupReceiver

async def main():
    rx = MqttGroupReceiver(host=sys.argv[1], port=int(sys.argv[2]), prefix=sys.argv[3], share_group="archivers",
                           client_id="nl-victim", keepalive=1)
    async with rx:
        print("up", flush=True)
        while True:
            await rx.recv()

asyncio.run(main())
"""


def test_crashed_member_streams_move_via_will(mosquitto, tmp_path):
    """A member SIGKILLed mid-stream: the broker's will message makes the sender re-assign its streams."""
    import subprocess

    host, port, _ = mosquitto
    seconds = 4.0
    prefix = "nltest/crash"
    base = {"kind": "mqtt", "host": host, "port": port, "prefix": prefix, "share_group": "archivers",
            "connect_timeout_s": 3.0}
    recs = {sid: _rec(sid, seconds) for sid in range(1, 5)}
    script = tmp_path / "victim.py"
    script.write_text(_VICTIM)
    victim = subprocess.Popen([sys.executable, str(script), host, str(port), prefix], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "up"

        async def run():
            cue = asyncio.Event()  # the streams' last 0.5 s wait for it: still live whenever the member dies
            survivor = _Member(base)
            sender = Sender([StreamSpec(_EndsOnCue(recs[sid], cue), sid, LADDER, frame_ms=5.0) for sid in recs],
                            make_sender_transport({**base, "announce_interval_s": 0.1}))
            t = sender.transport
            async with asyncio.TaskGroup() as tg:
                rx = tg.create_task(survivor.receiver.run())
                assert await _until(lambda: survivor.transport.connected.is_set(), 30)
                tx = tg.create_task(sender.run())
                assert await _until(lambda: len(t.streams) == 4 and all(s.released for s in t.streams.values()), 30)
                lost = {sid for sid, s in t.streams.items() if s.owner == "nl-victim"}
                if lost:
                    victim.kill()  # no DISCONNECT: only the will tells anyone
                    assert await _until(lambda: lost <= set(survivor.transport.owned), 30), "streams stayed with the dead member"
                    assert not tx.done()
                cue.set()
                await tx
                assert await _until(lambda: _ended([survivor], list(recs)), 30), "not every stream reached its end"
                survivor.receiver.stop()
                await rx
            return survivor, sender, lost

        survivor, sender, lost = asyncio.run(run())
    finally:
        victim.kill()
        victim.wait(5)
    assert lost, "the crashed member never got a stream (round-robin should give it some)"
    assert sender.transport.reassignments == len(lost)
    assert set(survivor.sinks) == set(recs)
    for sid in recs:
        _assert_tail(survivor.sinks[sid], recs[sid], sender.streams[sid].stats.samples_in)


def test_group_survives_broker_restart(mosquitto):
    """The broker (no persistence) restarts mid-stream: owners keep their streams, delivery resumes."""
    host, port, restart = mosquitto
    seconds = 3.0
    base = {"kind": "mqtt", "host": host, "port": port, "prefix": "nltest/grprestart", "share_group": "archivers",
            "connect_timeout_s": 3.0, "backoff_max_s": 0.2}
    recs = {sid: _rec(sid, seconds) for sid in range(1, 5)}

    async def run():
        cue = asyncio.Event()  # the streams' last 0.5 s wait for it: the outage is always mid-stream
        members = [_Member(base), _Member(base)]
        sender = Sender([StreamSpec(_EndsOnCue(recs[sid], cue), sid, LADDER, frame_ms=5.0) for sid in recs],
                        make_sender_transport({**base, "announce_interval_s": 0.1}))
        t = sender.transport
        async with asyncio.TaskGroup() as tg:
            rx = [tg.create_task(m.receiver.run()) for m in members]
            assert await _until(lambda: all(m.transport.connected.is_set() for m in members), 30)
            tx = tg.create_task(sender.run())
            assert await _until(lambda: sum(len(m.transport.owned) for m in members) == 4, 30)
            before = [dict(m.transport.owned) for m in members]
            await asyncio.to_thread(restart, 0.3)
            # everyone back (subscribed again) before the ends go out: frames sent to a broker nobody is
            # subscribed to yet are lost to the live path, and which of us reconnects first is luck
            assert await _until(lambda: all(x.stats.reconnects >= 1 and x.connected.is_set()
                                            for x in [t, *(m.transport for m in members)]), 30)
            assert not tx.done()
            cue.set()
            await tx
            assert await _until(lambda: _ended(members, list(recs)), 30), "not every stream reached its end"
            for m in members:
                m.receiver.stop()
            await asyncio.gather(*rx)
        return members, sender, before

    members, sender, before = asyncio.run(run())
    assert [set(m.transport.owned) for m in members] == [set(b) for b in before]  # same owners after the outage
    assert all(m.transport.stats.reconnects >= 1 for m in members) and sender.transport.stats.reconnects >= 1
    owned = [set(m.sinks) for m in members]
    assert owned[0].isdisjoint(owned[1]) and owned[0] | owned[1] == set(recs)
    for m in members:
        for sid, sink in m.sinks.items():
            _assert_tail(sink, recs[sid], sender.streams[sid].stats.samples_in)  # delivery resumed to the end


# -- the arbitration state machine, without a broker -------------------------------------------------

class _FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def publish(self, topic, payload=None, qos=0, retain=False, **kw):
        self.calls.append(("publish", topic, payload, retain))

    async def subscribe(self, topics, **kw):
        self.calls.append(("subscribe", topics))

    async def unsubscribe(self, topics, **kw):
        self.calls.append(("unsubscribe", topics))


class _Msg:
    def __init__(self, topic: str) -> None:
        self.topic = type("T", (), {"value": topic})()


def test_simultaneous_claims_one_winner_and_held_frames_go_to_it():
    import json

    async def run():
        tx = MqttGroupSender(share_group="g", prefix="p")
        tx._outbox = _Outbox(100)
        tx.connected.set()
        tx._live = fake = _FakeClient()  # type: ignore[assignment]
        await tx.send(b"H", stream_id=3, kind="header")
        for i in range(5):
            assert await tx.send(b"f%d" % i, stream_id=3)
        assert [m for _, m, _ in tx._outbox.items] == [b"H"]  # data held: no owner yet
        claim = lambda who: json.dumps({"session": tx.session, "epoch": 0, "member": who}).encode()  # noqa: E731
        tx._on_message(_Msg("p/3/claim/g"), claim("A"))
        tx._on_message(_Msg("p/3/claim/g"), claim("B"))  # arrives before the first grant finished
        tx._on_message(_Msg("p/3/claim/g"), json.dumps({"session": "old", "epoch": 0, "member": "C"}).encode())
        await asyncio.sleep(0.01)
        records = [json.loads(c[2]) for c in fake.calls if c[0] == "publish" and c[1] == "p/3/owner/g"]
        assert records and all(r["member"] == "A" for r in records) and all(c[3] for c in fake.calls)
        assert tx.owner_of(3) == "A"
        assert [m for _, m, _ in tx._outbox.items] == [b"H"] + [b"f%d" % i for i in range(5)]  # in order, once
        tx._on_message(_Msg("p/members/g/A"), b"offline")
        await asyncio.sleep(0.01)
        assert tx.owner_of(3) is None and tx.streams[3].epoch == 1 and tx.reassignments == 1
        assert json.loads(fake.calls[-1][2]) == {"session": tx.session, "epoch": 1, "member": None}
        # A, still draining, saw the new offer and claims it: refused (it would vanish without a will)
        claim1 = lambda who: json.dumps({"session": tx.session, "epoch": 1, "member": who}).encode()  # noqa: E731
        tx._on_message(_Msg("p/3/claim/g"), claim1("A"))
        assert tx.streams[3].owner is None
        tx._on_message(_Msg("p/members/g/A"), b"online")  # A came back (e.g. a restart with a fixed client_id)
        tx._on_message(_Msg("p/3/claim/g"), claim1("A"))
        await asyncio.sleep(0.01)
        assert tx.owner_of(3) == "A"

    asyncio.run(run())


def test_member_buffers_until_decided_and_lets_go_when_it_loses():
    import json

    async def run():
        rx = MqttGroupReceiver(share_group="g", prefix="p", client_id="me")
        rx._inbox = asyncio.Queue(100)
        rx._live = fake = _FakeClient()  # type: ignore[assignment]
        ann = json.dumps({"session": "s", "epoch": 0}).encode()
        rec = lambda who, epoch=0: json.dumps({"session": "s", "epoch": epoch, "member": who}).encode()  # noqa: E731
        for sid in (1, 2):
            rx._on_message(_Msg(f"p/{sid}/announce/g"), ann)
        await asyncio.sleep(0.01)
        assert fake.calls[0] == ("subscribe", [("p/1/header", 0), ("p/1/data", 0)])
        for sid in (1, 2):
            rx._on_message(_Msg(f"p/{sid}/data"), b"early-%d" % sid)
        rx._on_message(_Msg("p/3/data"), b"not mine")
        assert rx._inbox.empty()  # undecided: buffered, nothing delivered yet
        rx._on_message(_Msg("p/1/owner/g"), rec(None))  # "no owner yet" of the same epoch: keep waiting
        rx._on_message(_Msg("p/1/owner/g"), rec("me"))
        rx._on_message(_Msg("p/2/owner/g"), rec("other"))
        await asyncio.sleep(0.01)
        assert rx._inbox.get_nowait() == b"early-1" and rx._inbox.empty()
        assert set(rx.owned) == {1} and not rx.claims and rx.not_owned_dropped == 2
        assert ("unsubscribe", ["p/2/header", "p/2/data"]) in fake.calls
        assert not await rx.send_feedback(b"fb", stream_id=2)  # no feedback for streams of other members
        rx._on_message(_Msg("p/1/owner/g"), rec(None, epoch=1))  # the sender took it back (new epoch)
        assert not rx.owned and rx.released == 1

    asyncio.run(run())


def test_leaving_member_says_goodbye_without_waiting_for_the_unsuback():
    """A clean close publishes "offline" even when the unsubscribe is not acknowledged in time (a loaded
    event loop can read the UNSUBACK seconds late). It used to skip the goodbye then; its clean DISCONNECT
    discards the will, so the sender never heard of it and the member's streams stayed orphaned."""

    class _LateUnsuback(_FakeClient):
        async def unsubscribe(self, topics, **kw):
            self.calls.append(("unsubscribe", topics))
            raise aiomqtt.MqttError("Operation timed out")  # what aiomqtt raises when the ack is late

    async def run():
        rx = MqttGroupReceiver(share_group="g", prefix="p", client_id="me")
        rx.owned[1] = ("s", 0)
        rx._live = fake = _LateUnsuback()  # type: ignore[assignment]
        await rx.close()
        return fake.calls

    calls = asyncio.run(run())
    # the unsubscribe goes out first (the broker handles it before the goodbye), the goodbye regardless
    assert calls == [("unsubscribe", "$share/g/p/+/announce/g"), ("publish", "p/members/g/me", b"offline", False)]


def test_held_frames_are_bounded_and_counted_without_members():
    async def run():
        tx = MqttGroupSender(share_group="g", prefix="p", queue=5)
        await tx.send(b"H", stream_id=1, kind="header")
        for i in range(12):
            assert await tx.send(b"%d" % i, stream_id=1)
        assert not await tx.send(b"x", stream_id=9)  # never announced by a header: not this sender's stream
        return tx

    tx = asyncio.run(run())
    assert [m for _, m in tx.streams[1].held] == [b"7", b"8", b"9", b"10", b"11"]  # the newest, in order
    # 7 evicted held frames + the unknown stream's frame + the header (refused: never connected here)
    assert tx.held_dropped == 7 and tx.stats.dropped == 9
