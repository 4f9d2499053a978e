"""Bounded run of ``neurolink bench fuzz``: every registered decoder survives 500 mutated inputs (CI budget; `neurolink bench fuzz` runs 1,000,000)."""

from __future__ import annotations

import json

from neurolink.bench import fuzz


def test_fuzz_every_decoder_bounded(tmp_path, capsys):
    out = tmp_path / "fuzz.json"
    rc = fuzz.main(["--inputs", "500", "--json", str(out), "--no-progress"])
    res = json.loads(out.read_text())["decoders"]
    from neurolink.codecs import list_codecs

    # every registered codec (with a default config) and the wire/AEAD parsers were fuzzed
    names = set(res)
    assert {"wire.parse_frame", "wire.parse_stream_header", "wire.parse_feedback", "wire.parse_clock",
            "aead.FrameCipher.open"} <= names
    assert {f"codec.{c}" for c in list_codecs()} <= names | {n for n in names if n.startswith("ladder.")}
    bad = {k: (v["crashes"], v["hangs"], v["examples"]) for k, v in res.items() if v["crashes"] or v["hangs"]}
    assert bad == {}, bad
    assert rc == 0
    for v in res.values():
        assert not v["setup_failed"] and v["inputs"] == 500 and v["peak_rss_mb"] > 0 and v["rejected"] > 0
    assert "wire.parse_frame" in capsys.readouterr().out


def test_mutator_is_deterministic_and_watchdog_counts_hangs():
    m = fuzz.Mutator([b"NLNK\x01\x02" + bytes(40)], True, seed=3)
    chunk = list(m.chunk(2))
    assert m.nth(2 * fuzz.CHUNK + 17) == chunk[17]
    assert len({bytes(x) for x in chunk}) > fuzz.CHUNK // 2


def _sleepy(data: bytes):
    if data[:1] == b"\x00":
        while True:  # burns CPU, as a real infinite loop would
            pass


def test_watchdog_detects_hang(monkeypatch):
    # a decoder that hangs on some inputs: each hang is counted, the child is restarted after it
    monkeypatch.setattr(fuzz, "_build", lambda t: (_sleepy, [b"\x00\x01", b"\x01\x02"], False, lambda: None))
    r = fuzz.fuzz_target({"name": "sleepy", "kind": "test"}, 300, hang_s=0.3, hyp_fraction=0.0, max_restarts=2)
    assert r["hangs"] >= 1 and r["crashes"] == 0


def _segv(data: bytes):
    import ctypes

    if data[:1] == b"\x07":
        ctypes.string_at(0)  # a real segfault in the child


def test_watchdog_survives_segfault(monkeypatch):
    monkeypatch.setattr(fuzz, "_build", lambda t: (_segv, [b"\x07\x00", b"\x01\x02"], False, lambda: None))
    r = fuzz.fuzz_target({"name": "segv", "kind": "test"}, 200, hyp_fraction=0.0)
    assert r["hard_crashes"] >= 1 and r["crashes"] >= 1 and r["inputs"] > 10
