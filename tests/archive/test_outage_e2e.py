"""Issue 8 at reduced scale: the archiving receiver process is SIGKILLed for ~2 s mid-stream, then restarted.

Real processes, real ZeroMQ sockets, real (tiled) data: the archive must come out bit-exact with no frame
missing, and the JSON must carry the keys DESIGN.md promises for ``bench archive``.
"""

from __future__ import annotations

import json

from neurolink.bench import archive as bench_archive


def test_receiver_killed_and_restarted_archive_bit_exact(tmp_path):
    out, png = tmp_path / "archive.json", tmp_path / "archive.png"
    rc = bench_archive.main(["--quick", "--scenarios", "kill", "--json", str(out), "--png", str(png),
                             "--workdir", str(tmp_path)])
    res = json.loads(out.read_text())
    for key in ("channels", "fs", "outage_s", "frames_sent", "frames_archived", "bit_exact", "sender_peak_rss_mb"):
        assert key in res, key
    run = res["scenarios"]["kill"]
    assert run["outage_measured_s"] >= 2.0
    assert run["retransmits"] > 0  # the outage really cost frames that had to come back from the spool
    assert res["frames_sent"] > 0 and res["frames_archived"] == res["frames_sent"]
    assert run["mismatched_samples"] == 0 and run["samples_archived"] == run["samples_expected"]
    assert res["bit_exact"] is True and run["verify_ok"] and run["spool_overflow_frames"] == 0
    assert rc == 0 and png.stat().st_size > 1000
