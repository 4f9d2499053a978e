"""Receiver logic without sockets: gaps, concealment, malformed input, sender restarts."""

import numpy as np
import pytest

from neurolink.codecs import get_codec
from neurolink.receiver import Receiver
from neurolink.sinks.base import MemorySink
from neurolink.wire import format as w


class _NullTransport:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *a):
        pass


def _setup(conceal="hold", fs=1000.0, ch=3, fsz=10):
    sink = MemorySink()
    rx = Receiver(_NullTransport(), lambda h: [sink], conceal=conceal, clock_settle_s=0.0)
    ladder = [{"id": "delta-zstd"}]
    h = w.StreamHeader(1, "s", "EEG", "sid", fs, ch, "int16", "", ladder[0], ladder, fsz, "h")
    rx.handle(w.pack_stream_header(h))
    return rx, sink


def _frames(x, fsz, fs=1000.0, t0=10.0):
    codec = get_codec({"id": "delta-zstd"})
    out = []
    for seq, i in enumerate(range(0, x.shape[0], fsz)):
        part = x[i : i + fsz]
        out.append(w.pack_frame(1, seq, t0 + i / fs, part.shape[0], x.shape[1], "int16", 0, codec.encode(part), w.FLAG_KEYFRAME))
    return out


def test_exact_delivery_and_timestamps():
    rx, sink = _setup()
    x = np.random.default_rng(0).integers(-1000, 1000, (100, 3)).astype(np.int16)
    for m in _frames(x, 10):
        rx.handle(m)
    assert np.array_equal(sink.data(), x)
    assert np.allclose(sink.timestamps(), 10.0 + np.arange(100) / 1000.0)
    assert rx.streams[1].stats.frames_lost == 0


@pytest.mark.parametrize("mode", ["hold", "zeros", "linear"])
def test_gap_is_concealed_and_counted(mode):
    rx, sink = _setup(conceal=mode)
    x = (np.arange(100)[:, None] * np.ones((1, 3))).astype(np.int16)
    msgs = _frames(x, 10)
    for i, m in enumerate(msgs):
        if i not in (3, 4):
            rx.handle(m)
    st = rx.streams[1].stats
    assert st.frames_lost == 2 and st.samples_concealed == 20
    y = sink.data()
    assert y.shape == x.shape  # every sample slot is filled, timestamps continuous
    assert np.allclose(np.diff(sink.timestamps()), 1e-3)
    filled = y[30:50, 0]
    if mode == "hold":
        assert np.all(filled == 29)
    elif mode == "zeros":
        assert np.all(filled == 0)
    else:
        assert np.all(np.diff(filled) >= 0) and filled[0] >= 29 and filled[-1] <= 50
    assert np.array_equal(np.delete(y, np.s_[30:50], axis=0), np.delete(x, np.s_[30:50], axis=0))


def test_frames_lost_right_before_the_end_are_concealed_not_missing():
    rx, sink = _setup(conceal="hold")
    x = (np.arange(100)[:, None] * np.ones((1, 3))).astype(np.int16)
    msgs = _frames(x, 10)
    for m in msgs[:8]:  # frames 8 and 9 are lost; then the end-of-stream marker (seq 10) arrives
        rx.handle(m)
    eos = w.pack_frame(1, 10, 0.0, 0, 3, "int16", 0, b"", w.FLAG_END_OF_STREAM)
    rx.handle(eos)
    rx.handle(eos)  # repeated: nothing more is filled or counted
    st = rx.streams[1].stats
    assert st.frames_lost == 2 and st.samples_concealed == 20 and st.ended
    y = sink.data()
    assert y.shape == x.shape and np.all(y[80:] == 79)  # the output is complete, the tail held
    assert np.allclose(sink.timestamps(), 10.0 + np.arange(100) / 1000.0)


def test_malformed_and_tampered_messages_are_counted_not_raised():
    rx, sink = _setup()
    x = np.ones((20, 3), np.int16)
    good = _frames(x, 10)
    bad = bytearray(good[0])
    bad[-10] ^= 0xFF
    for m in (b"", b"garbage", bytes(bad), good[0][:20]):
        rx.handle(m)
    assert rx.bad_messages == 4
    for m in good:
        rx.handle(m)
    assert np.array_equal(sink.data(), x)


def test_frames_before_header_wait_for_it_and_duplicates_are_dropped():
    sink = MemorySink()
    rx = Receiver(_NullTransport(), lambda h: [sink], clock_settle_s=0.0)
    x = np.arange(60, dtype=np.int16).reshape(20, 3)
    msgs = _frames(x, 10)
    rx.handle(msgs[0])  # PUB/SUB slow joiner: a frame before the stream header
    assert 1 not in rx.streams
    ladder = [{"id": "delta-zstd"}]
    rx.handle(w.pack_stream_header(w.StreamHeader(1, "s", "EEG", "sid", 1000.0, 3, "int16", "", ladder[0], ladder, 10, "h")))
    for m in msgs[1:] + [msgs[0]]:
        rx.handle(m)
    assert np.array_equal(sink.data(), x)  # nothing lost, in order
    assert rx.streams[1].stats.frames_late == 1


def test_bad_conceal_mode_names_key():
    from neurolink.errors import ConfigError

    with pytest.raises(ConfigError, match="receiver.conceal"):
        Receiver(_NullTransport(), lambda h: [], conceal="magic")


def test_jitter_buffer_reorders_within_window():
    import asyncio

    async def run():
        sink = MemorySink()
        rx = Receiver(_NullTransport(), lambda h: [sink], clock_settle_s=0.0, jitter_ms=50.0)
        ladder = [{"id": "delta-zstd"}]
        rx.handle(w.pack_stream_header(w.StreamHeader(1, "s", "EEG", "sid", 1000.0, 3, "int16", "", ladder[0], ladder, 10, "h")))
        x = np.arange(150, dtype=np.int16).reshape(50, 3)
        m = _frames(x, 10)
        for i in (0, 2, 1, 4):  # 1 arrives late but within the window; 3 never arrives
            rx.handle(m[i])
        await asyncio.sleep(0.15)
        return rx, sink, x

    rx, sink, x = asyncio.run(run())
    st = rx.streams[1].stats
    assert st.frames_lost == 1 and st.frames_late == 0
    y = sink.data()
    assert y.shape == x.shape
    assert np.array_equal(y[:30], x[:30]) and np.array_equal(y[40:], x[40:])
    assert np.all(y[30:40] == x[29])  # hold concealment of the one lost frame


def test_payload_that_passes_crc_but_does_not_decode_is_concealed_and_counted():
    """A well-formed frame whose payload is garbage (CRC recomputed, as a tamperer would): its samples are
    concealed in place, not skipped, and the following frames decode normally."""
    rx, sink = _setup(conceal="zeros")
    x = np.random.default_rng(1).integers(1, 1000, (50, 3)).astype(np.int16)
    msgs = _frames(x, 10)
    bad = w.pack_frame(1, 2, 10.0 + 20 / 1000.0, 10, 3, "int16", 0, b"\x00not a delta-zstd payload", w.FLAG_KEYFRAME)
    for i, m in enumerate(msgs):
        rx.handle(bad if i == 2 else m)
    st = rx.streams[1].stats
    assert st.frames_undecodable == 1 and st.frames_ok == 4
    y = sink.data()
    assert y.shape == x.shape
    assert np.all(y[20:30] == 0)
    assert np.array_equal(np.delete(y, np.s_[20:30], axis=0), np.delete(x, np.s_[20:30], axis=0))
    assert np.allclose(np.diff(sink.timestamps()), 1e-3)


def test_a_lost_partial_last_frame_is_filled_to_the_end_timestamp_only():
    rx, sink = _setup(conceal="zeros")
    x = (np.arange(95)[:, None] * np.ones((1, 3)) + 1).astype(np.int16)  # 9 frames of 10 and one of 5
    msgs = _frames(x, 10)
    for m in msgs[:9]:  # the partial last frame (5 samples) is lost
        rx.handle(m)
    end_ts = 10.0 + 95 / 1000.0  # one past the last sample, sender clock (same host: offset 0)
    rx.handle(w.pack_frame(1, 10, end_ts, 0, 3, "int16", 0, b"", w.FLAG_END_OF_STREAM))
    y = sink.data()
    assert y.shape == x.shape and np.all(y[90:] == 0) and rx.streams[1].stats.samples_concealed == 5
    assert np.allclose(sink.timestamps(), 10.0 + np.arange(95) / 1000.0)


def test_output_held_for_the_clock_is_delivered_when_the_stream_ends_early():
    sink = MemorySink()
    rx = Receiver(_NullTransport(), lambda h: [sink], conceal="hold", clock_settle_s=60.0)
    ladder = [{"id": "delta-zstd"}]
    h = w.StreamHeader(1, "s", "EEG", "sid", 1000.0, 3, "int16", "", ladder[0], ladder, 10, "another-host")
    rx.handle(w.pack_stream_header(h))
    x = (np.arange(100)[:, None] * np.ones((1, 3))).astype(np.int16)
    for m in _frames(x, 10)[:8]:
        rx.handle(m)
    assert sink.data().shape[0] == 0  # a cross-host stream waits for its clock offset
    rx.handle(w.pack_frame(1, 10, 10.1, 0, 3, "int16", 0, b"", w.FLAG_END_OF_STREAM))
    assert sink.data().shape == x.shape and rx.streams[1].stats.samples_concealed == 20


def test_gaps_longer_than_the_conceal_limit_jump_in_time_instead_of_being_filled():
    from neurolink.receiver import MAX_CONCEAL_S

    rx, sink = _setup(conceal="hold")  # 1 kHz, 10-sample frames
    x = (np.arange(100)[:, None] * np.ones((1, 3))).astype(np.int16)
    msgs = _frames(x, 10)
    for m in msgs[:5]:
        rx.handle(m)
    jump = int(MAX_CONCEAL_S * 1000 / 10) + 50  # frames: a gap longer than the limit
    codec = get_codec({"id": "delta-zstd"})
    rx.handle(w.pack_frame(1, 5 + jump, 10.05 + jump / 100, 10, 3, "int16", 0, codec.encode(x[50:60]), w.FLAG_KEYFRAME))
    st = rx.streams[1].stats
    assert st.frames_lost == jump and st.gaps_unfilled == 1 and st.samples_concealed == 0
    assert sink.data().shape == (60, 3)  # nothing filled: the output jumps in time
    assert sink.timestamps()[50] - sink.timestamps()[49] > MAX_CONCEAL_S
    # the same at the end of stream: a huge final gap is counted, not allocated
    rx.handle(w.pack_frame(1, 6 + 2 * jump, 0.0, 0, 3, "int16", 0, b"", w.FLAG_END_OF_STREAM))
    assert st.gaps_unfilled == 2 and st.samples_concealed == 0 and st.ended


def test_max_conceal_s_is_a_setting_and_validated():
    from neurolink.config import validate_receiver
    from neurolink.errors import ConfigError

    sink = MemorySink()
    rx = Receiver(_NullTransport(), lambda h: [sink], conceal="hold", clock_settle_s=0.0, max_conceal_s=0.05)
    h = w.StreamHeader(1, "s", "EEG", "sid", 1000.0, 3, "int16", "", {"id": "delta-zstd"}, [{"id": "delta-zstd"}], 10, "h")
    rx.handle(w.pack_stream_header(h))
    x = (np.arange(200)[:, None] * np.ones((1, 3))).astype(np.int16)
    msgs = _frames(x, 10)
    for i in (0, 1, 2, 6, 7, 17):  # gaps of 3 frames (30 ms: filled) and 9 frames (90 ms > 50 ms: a jump)
        rx.handle(msgs[i])
    st = rx.streams[1].stats
    assert st.samples_concealed == 30 and st.gaps_unfilled == 1 and sink.data().shape == (90, 3)
    assert validate_receiver({"receiver": {"max_conceal_s": 10}})["receiver"]["max_conceal_s"] == 10
    with pytest.raises(ConfigError, match="receiver.max_conceal_s"):
        validate_receiver({"receiver": {"max_conceal_s": -1}})
    with pytest.raises(ConfigError, match="receiver.max_conceal_s"):
        Receiver(_NullTransport(), lambda h: [sink], max_conceal_s=1e9)


def test_a_frame_longer_than_the_streams_frames_is_rejected_and_counted():
    # a sender never frames more than the header's frame_samples: a forged n_samples would raise the decode
    # limit and the length of the concealment with it
    rx, sink = _setup()  # frame_samples 10
    x = (np.arange(40)[:, None] * np.ones((1, 3))).astype(np.int16)
    msgs = _frames(x, 10)
    rx.handle(msgs[0])
    big = (np.arange(5000)[:, None] * np.ones((1, 3))).astype(np.int16)
    rx.handle(w.pack_frame(1, 1, 10.01, 5000, 3, "int16", 0, get_codec({"id": "delta-zstd"}).encode(big), w.FLAG_KEYFRAME))
    assert rx.bad_messages == 1 and sink.data().shape == (10, 3)
    for m in msgs[1:]:
        rx.handle(m)
    assert np.array_equal(sink.data(), x) and rx.streams[1].stats.frames_lost == 0
