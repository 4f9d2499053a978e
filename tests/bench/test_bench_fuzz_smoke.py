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
    # the reliable archive path (archive frame, ack/NACK, archive block, nl-lossless archive mode as Zarr
    # reads it) and the MQTT group control records
    assert {"wire.parse_archive_frame", "wire.parse_ack", "reliable.unpack_block", "codec.nl-lossless.archive",
            "numcodecs.neurolink.lossless", "mqtt_group.control"} <= names
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


def test_mqtt_group_control_records_reject_garbage_and_count_it():
    # found by the fuzzer: deeply nested JSON raised RecursionError out of the MQTT message handler
    from neurolink.transports import mqtt_group as g

    nested = b'{"session":"s","epoch":1,"member":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert g._parse(nested) is None and g._parse(b"\xff\xfe") is None and g._parse(b"x" * 10000) is None
    assert g._parse(b'{"session":"s","epoch":1,"member":"m"}') == {"session": "s", "epoch": 1, "member": "m"}
    fn = fuzz._mqtt_target()
    for data in (nested, b"", b"[]", b"null", b'{"session":1}'):
        try:
            fn(data)
        except fuzz.EXPECTED:
            pass
    fn(b'{"session":"0123456789abcdef","epoch":1,"member":"rx-1"}')  # a valid record is not rejected


def test_archive_frame_mutations_reach_the_inner_frame():
    # the archive frame wraps a whole frame message: the mutator re-fixes both CRCs, so edits of the inner
    # header get past the checksums and are rejected (or accepted) by the deeper checks
    fn, seeds, fix, _ = fuzz._build({"name": "wire.parse_archive_frame", "kind": "wire", "fn": "parse_archive_frame"})
    assert callable(fix)
    reasons = set()
    for data in fuzz.Mutator(seeds, fix, seed=1).chunk(0):
        try:
            fn(data)
            reasons.add("ok")
        except fuzz.EXPECTED as exc:
            reasons.add(getattr(exc, "field", type(exc).__name__))
    assert "ok" in reasons and len(reasons) > 3, reasons


def test_forged_nack_ranges_are_clamped_to_the_spool(tmp_path):
    # found by the fuzzer (reliable.ReliableSender.on_feedback): 256 NACK ranges of 2**32 - 1 blocks each
    # made the sender iterate over ~10**12 sequence numbers on its event loop
    import asyncio

    import numpy as np

    from neurolink.framer import RawFrame
    from neurolink.reliable.sender import ReliableSender
    from neurolink.wire import ack as wack

    async def send(_m):
        return None

    rs = ReliableSender(tmp_path, block_frames=2)
    rs.attach(1, send)
    tx = rs.streams[1]
    for i in range(20):  # 10 blocks
        asyncio.run(rs.on_frame(1, RawFrame(i, float(i), np.zeros((3, 2), np.int16))))
    assert tx.next_seq == 10
    rs.on_feedback(wack.pack_ack(wack.Ack(1, 4, tuple((i, 2**32 - 1) for i in range(wack.MAX_NACK_RANGES)))))
    assert tx.acked == 4 and list(tx.pending) == [4, 5, 6, 7, 8, 9]  # only blocks produced and not yet acked
    rs.on_feedback(wack.pack_ack(wack.Ack(1, 4, ((2**63, 2**32 - 1), (100, 5)))))  # beyond anything sent: ignored
    assert list(tx.pending) == [4, 5, 6, 7, 8, 9]
    rs.close()


def test_archive_block_of_another_dtype_is_rejected():
    # a block whose payload decodes to another dtype than its frame header says would be cast silently
    import numpy as np
    import pytest

    from neurolink.codecs import get_codec
    from neurolink.errors import CodecError, WireFormatError
    from neurolink.framer import RawFrame
    from neurolink.reliable.block import pack_block, unpack_block
    from neurolink.sinks.archive import ARCHIVE_CODEC

    codec = get_codec(ARCHIVE_CODEC)
    _, payload = pack_block([RawFrame(0, 1.0, np.arange(30, dtype=np.int32).reshape(10, 3))], codec)
    assert unpack_block(payload, 10, 3, codec, 100.0, "int32")[0].dtype == np.int32
    # refused before decoding: 10x3 int32 is more than the 60 bytes a 10x3 int16 block may decode to
    with pytest.raises(CodecError, match="above the decode limit of 60 bytes"):
        unpack_block(payload, 10, 3, codec, 100.0, "int16")
    # and after decoding when the sizes agree (int32 values, the header says float32)
    with pytest.raises(WireFormatError, match="int32, header says float32"):
        unpack_block(payload, 10, 3, codec, 100.0, "float32")
