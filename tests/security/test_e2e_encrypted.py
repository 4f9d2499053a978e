"""Encrypted end to end with real liblsl and real ZeroMQ (CURVE on): nothing readable crosses the wire,
forged/replayed/foreign frames are rejected and counted while the stream stays bit-exact."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections import deque

import numpy as np
import pytest

from neurolink.codecs.ladder import Ladder
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.security.aead import FrameCipher
from neurolink.security.keys import authorize_client, write_curve_keypair
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.lsl_inlet import LSLSource
from neurolink.sources.replay import Recording, ReplayOutlet
from neurolink.testing_pipeline import stop_pipeline, wait_replayed
from neurolink.transports.zmq import ZmqReceiver, ZmqSender
from neurolink.wire import format as wire

KEY = os.urandom(32)
# raw-ish codec (zstd stores incompressible data verbatim) so that, unencrypted, samples DO show on the wire
RAW_LADDER = Ladder([{"id": "delta-zstd", "level": 1, "delta": False}])


class TapReceiver(ZmqReceiver):
    """Records every message exactly as the transport delivered it, and can inject attacker messages."""

    def __init__(self, *a, inject=None, **kw):
        super().__init__(*a, **kw)
        self.captured: list[bytes] = []
        self.pending: deque[bytes] = deque()
        self.inject = inject
        self.injected = 0

    async def recv(self) -> bytes:
        if self.pending:
            return self.pending.popleft()
        msg = await super().recv()
        self.captured.append(msg)
        if self.inject is not None:
            extra = self.inject(len(self.captured), msg, self.captured)
            self.injected += len(extra)
            self.pending.extend(extra)
        return msg


_FRAMES: list[bytes] = []


def _attacks(n: int, msg: bytes, captured: list[bytes]) -> list[bytes]:
    """Replay, bit-flip (CRC re-fixed so it reaches the AEAD), foreign key, unknown key id, plaintext."""
    if msg[5] != wire.MSG_FRAME or wire.parse_frame_header(msg).n_samples == 0:
        return []
    _FRAMES.append(msg)
    n = len(_FRAMES)
    captured = _FRAMES
    if n == 30:
        return [captured[20]]
    if n == 40:
        b = bytearray(msg[:-4])
        b[-5] ^= 0x10
        return [bytes(b) + wire._CRC.pack(zlib.crc32(bytes(b)))]
    if n in (50, 60, 70):
        h = wire.parse_frame_header(msg)
        plain = wire.pack_frame(h.stream_id, h.seq + 1, h.timestamp, h.n_samples, h.n_channels, h.dtype, 0,
                                b"\x00" * 16, 0)
        if n == 50:
            return [FrameCipher(os.urandom(32), 1).seal(plain)]
        if n == 60:
            return [FrameCipher(os.urandom(32), 77).seal(plain)]
        return [plain]
    return []


@pytest.fixture(scope="module")
def curve_keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    spub, ssec = write_curve_keypair(d, "server")
    cpub, csec = write_curve_keypair(d, "client")
    allowed = authorize_client(cpub, d / "allowed").parent
    return ({"secret_key": str(ssec), "authorized_clients": str(allowed)},
            {"secret_key": str(csec), "server_key": str(spub)})


async def _bridge(rec: Recording, source_id: str, seconds: float, *, encrypt: bool, curve=None, inject=None,
                  ladder=None):
    n_total = int(seconds * rec.fs)
    outlet = ReplayOutlet(rec, source_id, duration_s=seconds)  # started once the (CURVE) link is up
    pd, pf = free_port(), free_port()
    eps = dict(data=f"tcp://127.0.0.1:{pd}", feedback=f"tcp://127.0.0.1:{pf}")
    sealer = FrameCipher(KEY, 1, role="sender") if encrypt else None
    opener = FrameCipher(KEY, 1, role="receiver") if encrypt else None
    spec = StreamSpec(LSLSource(source_id=source_id, resolve_timeout=10), 1, ladder=ladder)
    sender = Sender([spec], ZmqSender(**eps, curve=curve[0] if curve else None), sealer=sealer,
                    control_interval_s=0.05)
    mem = MemorySink()
    tap = TapReceiver(**eps, curve=curve[1] if curve else None, inject=inject)
    receiver = Receiver(tap, lambda h: [mem], opener=opener, control_interval_s=0.05)
    async with asyncio.TaskGroup() as tg:
        rx = tg.create_task(receiver.run())
        tx = tg.create_task(sender.run())
        # PUB/SUB drops what is sent before the subscription (and CURVE handshake) completes: wait for
        # the first stream header to arrive before the source starts pushing samples
        await asyncio.wait_for(receiver.header_event.wait(), 30)
        outlet.start()
        await wait_replayed(outlet, sender, n_total, seconds + 20)
        await asyncio.sleep(0.2)  # let feedback flow
        await stop_pipeline(sender, tx, receiver, rx)
    outlet.stop()
    return outlet, sender, receiver, mem, tap


def _random_recording(seconds: float) -> Recording:
    x = np.random.default_rng(1).integers(-32000, 32000, (int(seconds * 1000) + 500, 16), dtype=np.int16)
    return Recording(x, 1000.0, [f"SecretLabel{i}" for i in range(16)], "nl-sec", "EEG")


def _leaks(rec: Recording, n: int, wire_bytes: bytes) -> tuple[int, int]:
    rows = [rec.data[i].tobytes() for i in range(0, n, max(1, n // 200))]
    return sum(r in wire_bytes for r in rows), len(rows)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plaintext-control", "encrypted"])
def test_samples_never_cross_the_transport_in_clear(source_id, curve_keys, encrypt):
    rec = _random_recording(1.0)
    outlet, sender, receiver, mem, tap = asyncio.run(
        _bridge(rec, source_id, 1.0, encrypt=encrypt, curve=curve_keys if encrypt else None, ladder=RAW_LADDER))
    n = outlet.samples_pushed
    assert np.array_equal(mem.data(), rec.data[:n])  # delivered bit-exact either way
    blob = b"".join(tap.captured)
    hits, total = _leaks(rec, n, blob)
    if encrypt:
        assert hits == 0 and b"SecretLabel" not in blob
        assert all(m[5] != wire.MSG_FRAME or wire.parse_frame_header(m).flags & wire.FLAG_ENCRYPTED for m in tap.captured)
        assert sender.bad_feedback == 0 and sender.streams[1].stats.last_feedback is not None  # sealed feedback works
    else:  # the control proves the search would see samples that were sent in clear
        assert hits > 0.9 * total and b"SecretLabel" in blob


def test_forged_replayed_foreign_frames_rejected_stream_continues(source_id, curve_keys):
    from tests.conftest import load_recording, recordings

    _FRAMES.clear()

    paths = recordings()
    if not paths:
        pytest.skip("../shared/data not found")
    x, fs = load_recording(paths[-1])
    x = x[: int(1.5 * fs)]
    rec = Recording(x, fs, [f"c{i}" for i in range(x.shape[1])], "nl-sec-real", "EEG")
    outlet, sender, receiver, mem, tap = asyncio.run(
        _bridge(rec, source_id, 1.0, encrypt=True, curve=curve_keys, inject=_attacks))
    n = outlet.samples_pushed
    assert tap.injected == 5
    assert receiver.rejected_security == 5  # each attack counted, none raised
    st = receiver.streams[1].stats
    assert st.frames_lost == 0 and st.samples_concealed == 0 and receiver.bad_messages == 0
    assert np.array_equal(mem.data(), rec.data[:n])  # the genuine stream went on, bit-exact
