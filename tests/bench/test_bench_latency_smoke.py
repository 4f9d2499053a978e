"""Smoke run of ``neurolink bench latency --quick``: real LSL, worker processes, ZeroMQ and a real mosquitto."""

from __future__ import annotations

import json
import time

import numpy as np

from neurolink.testing_broker import find_mosquitto


def test_bench_latency_quick(tmp_path, capsys):
    from neurolink.bench.latency import main

    transports = "zmq,mqtt" if find_mosquitto() else "zmq"
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["--quick", "--transports", transports, "--json", str(out), "--png", str(png)]) == 0
    res = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    runs = [(r["transport"], r["encrypted"]) for r in res["runs"]]
    assert runs == [(t, False) for t in transports.split(",")] + [("zmq", True)]
    for r in res["runs"]:
        assert {"transport", "channels", "fs", "encrypted", "added_latency_ms", "frames_sent", "frames_lost",
                "sender_cpu", "receiver_cpu"} <= set(r)
        assert r["fs"] == 30000
        assert set(r["added_latency_ms"]) == {"p50", "p99", "p999"}
        assert r["added_latency_ms"]["p50"] > 0  # the republished copy cannot arrive before the source
        # lossless, loopback: every sample republished, first channel identical to the source
        assert r["frames_sent"] >= r["samples_pushed"] // 30 and r["frames_lost"] == 0
        assert r["samples_republished"] == r["samples_pushed"] and r["values_match_ch0"]
        assert 0 < r["sender_cpu"] < 2 and 0 < r["receiver_cpu"] < 2
    assert "p99.9 ms" in capsys.readouterr().out
    (cost,) = res["encryption_cost"]  # the AEAD steps timed on their own, on the same payloads
    assert cost["channels"] == 16 and cost["sealed_us"]["p50"] > 0 and cost["plain_us"]["p50"] > 0
    assert cost["added_us"]["p50"] == cost["sealed_us"]["p50"] - cost["plain_us"]["p50"]
    for r in res["runs"]:
        assert r["added_latency_p99_typical_1s_ms"] > 0
        assert r["host_steal_fraction"] is None or 0 <= r["host_steal_fraction"] <= 1
        if r["steal_free_seconds"] is not None:  # --quick measures 1 s
            assert r["measured_seconds"] == 1 and r["steal_free_seconds"] in (0, 1)


def test_bench_latency_quick_with_the_archive_path_on(tmp_path):
    from neurolink.bench.latency import main

    out = tmp_path / "a.json"
    assert main(["--quick", "--transports", "zmq", "--no-encrypted", "--archive", "background", "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())["runs"]
    assert r["archive"] == "background" and r["frames_lost"] == 0  # the live path beside the archive copy
    assert r["samples_republished"] == r["samples_pushed"] and r["values_match_ch0"]


def _run(transport: str, ch: int, enc: bool, rep: int, p99: float) -> dict:
    return {"transport": transport, "channels": ch, "encrypted": enc, "repeat": rep, "samples_measured": 10,
            "frames_lost": 0, "added_latency_ms": {"p50": p99 / 2, "p99": p99, "p999": p99 * 2},
            "added_latency_p99_typical_1s_ms": p99 / 2}


def test_summary_pairs_encrypted_with_plain_runs_of_the_same_repeat():
    from neurolink.bench.latency import summarise

    # plain p99 drifts 1 -> 3 ms between repeats; encryption adds exactly 10 % within each pair
    runs = [_run("zmq", 1024, False, 0, 1.0), _run("zmq", 1024, True, 0, 1.1),
            _run("zmq", 1024, True, 1, 3.3), _run("zmq", 1024, False, 1, 3.0),
            _run("zmq", 1024, False, 2, 2.0), _run("zmq", 1024, True, 2, 2.2),
            _run("mqtt", 1024, False, 0, 9.0)]
    s = summarise(runs)
    o = s["encryption_p99_overhead"]["1024"]
    assert len(o["pairs"]) == 3 and abs(o["median"] - 0.10) < 1e-9
    assert abs(s["encryption_p99_typical_1s_overhead"]["1024"]["median"] - 0.10) < 1e-9
    # the medians of the groups alone would say +10 % too here, but not when drift and order differ:
    assert s["median"]["zmq/1024"]["p99"] == 2.0 and s["median"]["zmq+aead/1024"]["p99"] == 2.2
    assert s["median"]["mqtt/1024"]["runs"] == 1 and "mqtt" not in "".join(s["encryption_p99_overhead"])
    # a failed run (nothing measured) is left out rather than counted as zero latency
    failed = _run("zmq", 1024, True, 3, float("nan")) | {"samples_measured": 0}
    assert summarise(runs + [failed])["encryption_p99_overhead"]["1024"]["pairs"] == o["pairs"]


def test_summary_keeps_the_tail_of_seconds_without_host_steal_apart():
    from neurolink.bench.latency import MIN_CLEAN_SECONDS, summarise

    def run(enc: bool, rep: int, p99: float, clean_p99: float | None, clean_s: int) -> dict:
        return _run("zmq", 1024, enc, rep, p99) | {"added_latency_p99_steal_free_ms": clean_p99,
                                                   "steal_free_seconds": clean_s, "measured_seconds": 10}

    # pair 0: the host stole CPU during the encrypted run (p99 140 ms) but 8 of its seconds were clean;
    # pair 1: the plain run has too few clean seconds to say anything; pair 2: no steal counter at all
    runs = [run(False, 0, 2.0, 2.0, 10), run(True, 0, 140.0, 2.2, 8),
            run(False, 1, 2.0, 1.5, MIN_CLEAN_SECONDS - 1), run(True, 1, 2.1, 2.1, 10),
            run(False, 2, 2.0, None, 0), run(True, 2, 2.2, None, 0)]
    s = summarise(runs)
    assert len(s["encryption_p99_overhead"]["1024"]["pairs"]) == 3
    clean = s["encryption_p99_steal_free_overhead"]["1024"]
    assert len(clean["pairs"]) == 1 and abs(clean["median"] - 0.10) < 1e-9
    m = s["median"]["zmq+aead/1024"]
    assert m["steal_free_runs"] == 2 and abs(m["p99_steal_free"] - 2.15) < 1e-9
    assert s["median"]["zmq/1024"]["steal_free_runs"] == 1


def test_steal_free_windows_from_the_counter_samples():
    from neurolink.bench.latency import StealSampler

    s = StealSampler()
    s.times, s.steal = [0.0, 1.0, 2.0, 3.0, 4.0], [5, 5, 5, 7, 7]
    assert s.clean(0.5, 1.5) and s.clean(1.0, 2.0)
    assert not s.clean(1.5, 2.5)  # the counter moved between 2.0 and 3.0
    assert not s.clean(3.5, 4.5) and not s.clean(-1.0, 0.5)  # not bracketed by samples
    real = StealSampler(0.005).start()
    time.sleep(0.1)
    real.stop()
    if real.available:  # Linux: monotonic times, a counter that never goes back
        assert (np.diff(real.times) > 0).all() and (np.diff(real.steal) >= 0).all()


def test_bad_tuning_flags_are_one_line_errors(capsys):
    from neurolink.bench.latency import main

    assert main(["--quick", "--realtime", "-3"]) == 2
    assert main(["--quick", "--cpu-wakeup-latency", "-5"]) == 2
    out = capsys.readouterr().out
    assert "--realtime must be 0 (off) or a SCHED_FIFO priority 1..99, got -3" in out
    assert "--cpu-wakeup-latency must be -1 (off) or 0..1000000 us, got -5" in out
