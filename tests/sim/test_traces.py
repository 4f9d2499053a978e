"""Trace loaders on each format (real files and synthetic), malformed files, and the scaling rule."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED

from sim.traces import TraceError, load_trace, load_traces

AKAMAI_HEAD = "step\tlatency_ms\tthroughput_kbit_s\tgap_s\tloss_pct\n"


def test_pensieve_synthetic(tmp_path):
    p = tmp_path / "a.log"
    p.write_text("0.0\t1.0\n1.0\t2.0\n2.0\t3.0\n")
    tr = load_trace(p)
    assert tr.fmt == "pensieve" and tr.period_s == pytest.approx(3.0)
    cap = tr.capacity_ms(0, 3000) * 8000.0
    assert cap[0] == pytest.approx(1e6) and cap[1500] == pytest.approx(2e6) and cap[2999] == pytest.approx(3e6)
    assert tr.median_1s_bps() == pytest.approx(2e6)
    assert tr.scale_for(stream_bps=4e6, k=0.5) == pytest.approx(1.0)


def test_mahimahi_synthetic(tmp_path):
    p = tmp_path / "m.down"
    p.write_text("0\n0\n1\n3\n4\n")
    tr = load_trace(p)
    assert tr.fmt == "mahimahi"
    cap = tr.capacity_ms(0, 4)
    assert cap.tolist() == [4500.0, 1500.0, 0.0, 1500.0]  # ms 4 wraps onto ms 0 (the trace loops)


def test_akamai_synthetic_loss_windows(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text(AKAMAI_HEAD + "0\t40\t1000\t0.1\t50\n1\t60\t2000\t99999\t0\n")
    tr = load_trace(p)
    assert tr.fmt == "akamai" and tr.period_s == pytest.approx(0.14)
    assert tr.prop_delay_ms(0, 140, 20.0)[0] == pytest.approx(20.0) and tr.prop_delay_ms(0, 140, 20.0)[100] == 30.0
    lp = tr.loss_prob_ms(0, 200)
    assert lp[100] == pytest.approx(0.5) and lp[50] == 0.0  # burst at 100..170 ms after a 0.1 s gap


@pytest.mark.parametrize(
    "name,content,line",
    [
        ("bad.log", "0.0\t1.0\n1.0\tabc\n", 2),
        ("three.log", "0.0\t1.0\n1.0\t2.0\t3\n", 2),
        ("back.log", "0.0\t1.0\n2.0\t1.0\n1.0\t1.0\n", 3),
        ("neg.log", "0.0\t-1.0\n1.0\t1.0\n", 1),
        ("m.down", "0\n5\nx\n", 3),
        ("m2.down", "0\n5\n3\n", 3),
        ("a.tsv", AKAMAI_HEAD + "0\t40\t1000\t0.1\n", 2),
        ("h.tsv", "step latency\n0 1\n", 1),
    ],
)
def test_malformed_names_file_and_line(tmp_path, name, content, line):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(TraceError) as ei:
        load_trace(p)
    assert ei.value.line == line and name in str(ei.value) and f":{line}" in str(ei.value)


def test_empty_and_missing(tmp_path):
    (tmp_path / "e.log").write_text("\n")
    with pytest.raises(TraceError, match="empty"):
        load_trace(tmp_path / "e.log")
    with pytest.raises(TraceError, match="no such file"):
        load_traces([tmp_path / "nope"])


@pytest.mark.skipif(SHARED is None, reason="../shared/traces not found")
@pytest.mark.parametrize("family", ["pensieve_fcc_hsdpa_train", "mahimahi_cellular", "akamai_cellular_loss"])
def test_real_families_load(family):
    if not (SHARED / "traces" / family).is_dir():
        pytest.skip(f"../shared/traces/{family} not present")
    trs = load_traces(SHARED / "traces" / family)
    assert trs
    for tr in trs:
        assert tr.period_s > 0 and np.all(tr.rate_bps >= 0)
        scale = tr.scale_for(1e8, 1.0)
        assert tr.median_1s_bps() * scale == pytest.approx(1e8)


def test_csv_with_header_and_nested_folders(tmp_path):
    """Any folder of traces: CSV two-column exports with a header, families in subfolders, notes beside
    them (skipped with a warning naming the file), only a folder with no trace at all is an error."""
    (tmp_path / "fam_a").mkdir()
    (tmp_path / "fam_b" / "deeper").mkdir(parents=True)
    (tmp_path / "fam_a" / "t1.csv").write_text("time_s,throughput_mbps\n0,1.5\n1,2.5\n2,0.5\n")
    (tmp_path / "fam_b" / "deeper" / "m.down").write_text("0\n1\n1\n2\n")
    (tmp_path / "fam_b" / "notes.txt").write_text("captured on a train, see the paper\n")
    (tmp_path / "README.md").write_text("# traces\n")
    trs = load_traces(tmp_path)
    assert sorted(t.fmt for t in trs) == ["mahimahi", "pensieve"]
    csv = next(t for t in trs if t.fmt == "pensieve")
    assert csv.capacity_ms(1000, 1)[0] * 8000.0 == pytest.approx(2.5e6)
    with pytest.raises(TraceError):  # a file named directly must load
        load_traces([tmp_path / "fam_b" / "notes.txt"])
    empty = tmp_path / "only_notes"
    empty.mkdir()
    (empty / "n.txt").write_text("hello world here\n")
    with pytest.raises(TraceError, match="no loadable trace"):
        load_traces(empty)
