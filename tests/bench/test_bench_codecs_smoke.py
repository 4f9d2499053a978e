"""Smoke run of ``neurolink bench codecs --quick``: table, JSON and PNG are produced, all round trips exact."""

from __future__ import annotations

import json

import pytest

from neurolink.data import shared_dir


@pytest.mark.skipif(shared_dir() is None, reason="../shared/data not found")
def test_bench_codecs_quick(tmp_path, capsys):
    from neurolink.bench.codecs import main

    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["--quick", "--json", str(out), "--png", str(png)]) == 0
    res = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    assert "acceptance" in res and res["latency_1024ch_30khz"]["stream"]["p99_us"] > 0
    for rec in res["recordings"].values():
        for name, r in rec["codecs"].items():
            assert r["exact"], name
    # the derived 30 kHz rows (the 15 kHz tetrodes resampled): round trips exact, the prefilter at work
    derived = res["derived_30khz"]
    assert derived, "no 10-20 kHz recording to derive a 30 kHz row from"
    for rec in derived.values():
        assert rec["fs"] >= 20000
        for name, r in rec["codecs"].items():
            assert r["exact"], name
        assert rec["codecs"]["nl-lossless archive"]["ratio"] > rec["codecs"]["nl-lossless stream (1 ms)"]["ratio"] * 0.9
    assert "nl-lossless archive" in capsys.readouterr().out
