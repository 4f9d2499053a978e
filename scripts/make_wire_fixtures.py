"""Write the wire-format v1 golden fixtures (run once; later versions must keep parsing them)."""

import json
from pathlib import Path

from neurolink.wire import format as w

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "wire"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cases = {
        "frame_v1.bin": w.pack_frame(3, 123456789, 1234.5678, 30, 2, "int16", 2, bytes(range(40)), w.FLAG_KEYFRAME),
        "stream_header_v1.bin": w.pack_stream_header(w.StreamHeader(
            3, "probe-A", "Extracellular", "rig1-probeA", 30000.0, 2, "int16",
            "<desc><channels><channel><label>a</label></channel><channel><label>b</label></channel></channels></desc>",
            {"id": "delta-zstd", "level": 3}, [{"id": "delta-zstd", "level": 3}], 30, "rig1")),
        "feedback_v1.bin": w.pack_feedback(w.Feedback(3, 9, 100.25, 99.5, 2048000.0, 1.5, 0.25, 0.125, 4.0, 0.75, 1000, 7, 12.5, 0.5)),
        "clock_v1.bin": w.pack_clock(w.ClockProbe(3, 1, 10.0, 10.5, 10.75)),
    }
    for name, blob in cases.items():
        (OUT / name).write_bytes(blob)
    (OUT / "README.md").write_text("Golden wire-format v1 messages. Every later version must parse them: see tests/wire/test_golden.py.\n")
    print(json.dumps({k: len(v) for k, v in cases.items()}))


if __name__ == "__main__":
    main()
