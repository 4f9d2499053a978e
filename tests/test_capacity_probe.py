"""Capacity probes: a FLAG_PROBE copy right behind a frame lets the receiver estimate the link's capacity
(packet-pair dispersion), so adaptive controllers see the link and not only their own sending rate."""

from __future__ import annotations

import asyncio
import collections

import numpy as np

from neurolink.codecs import Ladder, get_codec
from neurolink.control.link_shaper import LinkShaper
from neurolink.netutil import free_port
from neurolink.receiver import Receiver
from neurolink.sender import PROBE_MIN_BYTES, Sender, StreamSpec
from neurolink.sinks.base import MemorySink
from neurolink.sources.replay import Recording, ReplaySource
from neurolink.sources.synthetic import synthetic_recording
from neurolink.transports.zmq import ZmqReceiver, ZmqSender
from neurolink.wire import format as w


class _NullTransport:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *a):
        pass


def test_probe_is_paired_measured_and_never_republished():
    sink = MemorySink()
    rx = Receiver(_NullTransport(), lambda h: [sink], conceal="zeros", clock_settle_s=0.0)
    ladder = [{"id": "delta-zstd"}]
    rx.handle(w.pack_stream_header(w.StreamHeader(1, "s", "EEG", "sid", 1000.0, 3, "int16", "", ladder[0], ladder, 10, "h")))
    codec = get_codec(ladder[0])
    x = np.arange(30, dtype=np.int16).reshape(10, 3)
    payload = codec.encode(x)

    def frame(seq: int, flags: int = w.FLAG_KEYFRAME, pad: int = 0) -> bytes:
        return w.pack_frame(1, seq, 10.0 + seq / 100, 10, 3, "int16", 0, payload + bytes(pad), flags)

    rx.handle(frame(0))
    rx.handle(frame(0, w.FLAG_KEYFRAME | w.FLAG_PROBE, pad=PROBE_MIN_BYTES))  # the pair
    rx.handle(frame(1))
    rx.handle(frame(7, w.FLAG_PROBE))  # its frame never arrived: no sample, counted
    st = rx.streams[1]
    assert st.stats.capacity_probes == 1 and st.stats.capacity_probes_unpaired == 1
    assert st.stats.frames_late == 0 and st.stats.frames_lost == 0  # a probe is not a duplicate or a gap
    assert len(st.iv_pairs) == 1 and st.iv_pairs[0][0] > PROBE_MIN_BYTES and st.iv_pairs[0][1] > 0
    assert np.array_equal(sink.data(), np.concatenate([x, x]))  # only the two real frames came out
    delivered = 8.0 * st.iv_bytes / 0.1
    assert Receiver._capacity(st, 0.1) >= delivered
    st.iv_pairs.clear()
    st.capacity_window.clear()
    assert Receiver._capacity(st, 0.1) == delivered  # no pairs (fixed-level sender): the delivered rate


def test_capacity_estimate_pools_the_recent_pairs_gaps():
    from neurolink.receiver import CAPACITY_MAX_AGE, CAPACITY_WINDOW, _RxStream

    st = _RxStream.__new__(_RxStream)  # only the estimator's fields
    st.iv_bytes, st.interval, st.iv_pairs = 0, 0, []
    st.capacity_window = collections.deque(maxlen=CAPACITY_WINDOW)
    st.stats = type("S", (), {"capacity_bps": 0.0})()

    def interval(pairs, delivered_bytes=0):
        st.iv_pairs, st.iv_bytes = list(pairs), delivered_bytes
        e = Receiver._capacity(st, 0.1)
        st.interval += 1
        return e

    # a bursty 1 Mbit/s link (1500-byte slots every 12 ms): a 1000-byte probe leaves in its frame's slot
    # (gap ~0, one pair alone reads 8000 Mbit/s) a third of the time, else waits for the next slot (12 ms)
    slots = [(1000, 1e-6), (1000, 0.012), (1000, 0.012)]
    est = [interval([p]) for p in slots * 5]
    assert all(0.6e6 <= e <= 1.1e6 for e in est[CAPACITY_WINDOW:])  # one collapsed pair never reads 1000x
    # the link steps down to 0.2 Mbit/s: followed once the window has turned over
    est = [interval([(1000, 0.04)]) for _ in range(CAPACITY_WINDOW)]
    assert abs(est[-1] - 0.2e6) < 1.0
    # a receiver stall of 0.5 s between a frame and its probe: that gap is capped at the probe's time at the
    # delivered rate, so the window does not read a tenth of the link for the next 8 intervals
    est = interval([(1000, 0.5)], delivered_bytes=2000)  # 0.16 Mbit/s delivered in this interval
    assert est >= 0.17e6
    # never below what was delivered in the interval (a backlogged link delivers its capacity)
    assert interval([(1000, 0.04)], delivered_bytes=5000) == 8.0 * 5000 / 0.1
    # the sender stops probing (a fixed level): old pairs expire and the delivered rate is reported
    for _ in range(CAPACITY_MAX_AGE + 1):
        e = interval([], delivered_bytes=1000)
    assert e == 8.0 * 1000 / 0.1



def test_old_parsers_reject_nothing_new_but_the_flag():
    msg = w.pack_frame(1, 0, 1.0, 1, 1, "int16", 0, b"x", w.FLAG_PROBE)
    assert w.parse_frame(msg).header.flags == w.FLAG_PROBE


async def _closed_loop(tmp_path, seconds: float) -> tuple[dict, dict]:
    fs, ch = 15000.0, 4
    rec = Recording(synthetic_recording(int(fs * seconds), ch, fs, seed=3), fs, [], "probe-test", "EEG", "uV")
    trace = tmp_path / "flat.log"
    trace.write_text("".join(f"{t}\t5.0\n" for t in range(60)))  # a steady link ...
    raw_bps = ch * fs * 16
    shaper = LinkShaper(trace, raw_bps, k=8.0, seed=0)  # ... 8x the raw bitrate: lossless fits easily
    p_data, p_fb = free_port(), free_port()
    tx_t = ZmqSender(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    rx_t = ZmqReceiver(data=f"tcp://127.0.0.1:{p_data}", feedback=f"tcp://127.0.0.1:{p_fb}")
    sink = MemorySink()
    ladder = Ladder([{"id": "delta-zstd"}, {"id": "nl-nearlossless", "k": 3}, {"id": "nl-spike", "step": 16.0}])
    sender = Sender([StreamSpec(ReplaySource(rec), 1, ladder, controller={"id": "rate"})], tx_t,
                    shaper=shaper, wait_receiver_s=10.0)
    receiver = Receiver(rx_t, lambda h: [sink], conceal="zeros")
    rx_task = asyncio.create_task(receiver.run())
    await asyncio.wait_for(sender.run(), seconds + 30)
    await asyncio.wait_for(receiver.ended_event.wait(), 10)
    receiver.stop()
    await rx_task
    return sender.summary()[1], receiver.summary()[1]


def test_rate_controller_keeps_lossless_on_a_generous_shaped_link(tmp_path):
    """Without probes the receiver reports only what the (acquisition-paced) sender chose to send, and a
    throughput-driven controller ratchets down to its smallest level even on an idle link."""
    tx, rx = asyncio.run(_closed_loop(tmp_path, 4.0))
    assert tx["capacity_probes"] > 0 and rx["capacity_probes"] > 0
    by_level = np.asarray(tx["frames_by_level"])
    assert by_level.sum() == tx["frames_sent"]
    assert by_level[0] >= 0.5 * by_level.sum(), f"frames per level {by_level.tolist()}"
    assert rx["capacity_mbps"] * 1e6 > 2 * 4 * 15000 * 16  # well above the raw bitrate
