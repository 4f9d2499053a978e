import json

import pytest

from neurolink.bench import rd
from tests.conftest import SHARED


@pytest.mark.skipif(SHARED is None, reason="../shared/data not found")
def test_quick_run_writes_json_and_png(tmp_path):
    out, png = tmp_path / "rd.json", tmp_path / "rd.png"
    rc = rd.main(["--quick", "--seconds", "0.5", "--only", "nl-nearlossless-lpc,nl-spike,truncate,wavpack",
                  "--latency-frames", "20", "--json", str(out), "--png", str(png)])
    assert rc == 0 and png.stat().st_size > 1000
    data = json.loads(out.read_text())
    rows = [r for r in data["results"] if "ratio" in r]
    assert rows and all(r["ratio"] > 0 and "snr_db" in r and "spike_f1" in r for r in rows)
    assert len(data["ladder"]) == 8 and data["latency"][0]["encode_us"]["p99"] > 0
    # WavPack runs in streaming (short blocks) and archive mode (1 s blocks, whole recording); every
    # WavPack point is compared with the best neurolink codec at >= its ratio, streaming and archive
    fams = {r["family"] for r in data["results"] if "ratio" in r}
    assert {"wavpack-archive-1000ms", "wavpack-archive-whole"} <= fams
    assert {r.get("mode") for r in rows} == {"stream", "archive"}
    comp = data["comparison"]
    n_wv = sum(r["family"].startswith("wavpack") for r in rows)
    assert len(comp) == 2 * n_wv and {c["neurolink_mode"] for c in comp} == {"stream", "archive"}
    for c in comp:
        assert set(c["wavpack"]) >= {"ratio", "snr_db", "spike_f1", "bps", "block_ms"}
        if c["best"] is not None:
            assert c["best"]["ratio"] >= c["wavpack"]["ratio"] and isinstance(c["wins_both"], bool)
