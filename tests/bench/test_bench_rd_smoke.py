import json

import pytest

from neurolink.bench import rd
from tests.conftest import SHARED


@pytest.mark.skipif(SHARED is None, reason="../shared/data not found")
def test_quick_run_writes_json_and_png(tmp_path):
    out, png = tmp_path / "rd.json", tmp_path / "rd.png"
    rc = rd.main(["--quick", "--seconds", "0.5", "--only", "nl-nearlossless,nl-spike,truncate",
                  "--latency-frames", "20", "--json", str(out), "--png", str(png)])
    assert rc == 0 and png.stat().st_size > 1000
    data = json.loads(out.read_text())
    rows = [r for r in data["results"] if "ratio" in r]
    assert rows and all(r["ratio"] > 0 and "snr_db" in r and "spike_f1" in r for r in rows)
    assert len(data["ladder"]) == 8 and data["latency"][0]["encode_us"]["p99"] > 0
