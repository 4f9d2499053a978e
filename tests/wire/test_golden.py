"""Golden fixtures: bytes written by wire v1 must parse to the same values forever."""

from pathlib import Path

from neurolink.wire import format as w

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "wire"


def test_golden_frame():
    f = w.parse_frame((FIX / "frame_v1.bin").read_bytes())
    h = f.header
    assert (h.stream_id, h.seq, h.timestamp, h.n_samples, h.n_channels, h.dtype, h.level) == (
        3, 123456789, 1234.5678, 30, 2, "int16", 2)
    assert h.keyframe and f.payload == bytes(range(40))


def test_golden_stream_header():
    h = w.parse_stream_header((FIX / "stream_header_v1.bin").read_bytes())
    assert h.name == "probe-A" and h.source_id == "rig1-probeA" and h.channel_count == 2
    assert h.nominal_srate == 30000.0 and h.frame_samples == 30 and h.codec == {"id": "delta-zstd", "level": 3}
    assert "<label>b</label>" in h.desc_xml


def test_golden_feedback_and_clock():
    fb = w.parse_feedback((FIX / "feedback_v1.bin").read_bytes())
    assert (fb.stream_id, fb.interval, fb.throughput_bps, fb.loss_fraction, fb.frames_lost) == (3, 9, 2048000.0, 0.125, 7)
    c = w.parse_clock((FIX / "clock_v1.bin").read_bytes())
    assert (c.kind, c.t0, c.t1, c.t2) == (1, 10.0, 10.5, 10.75)
