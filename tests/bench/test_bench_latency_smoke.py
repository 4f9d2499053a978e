"""Smoke run of ``neurolink bench latency --quick``: real LSL, worker processes, ZeroMQ and a real mosquitto."""

from __future__ import annotations

import json

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
