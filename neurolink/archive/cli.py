"""``neurolink archive read|verify|transcode|export|replay``: inspect, check and convert archives.

``main(argv) -> int``: 0 on success, 1 when verify finds a problem, 2 on bad input (one-line error).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from neurolink.archive.reader import open_archive, verify_archive
from neurolink.errors import NeurolinkError

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurolink archive", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read", help="print an archive's header and summary; optionally a sample range")
    r.add_argument("path")
    r.add_argument("--start", type=int, default=0)
    r.add_argument("--stop", type=int)
    r.add_argument("--json", action="store_true", help="print the metadata as JSON")
    v = sub.add_parser("verify", help="recompute per-chunk checksums, list gaps; exit 1 on any problem")
    v.add_argument("path")
    v.add_argument("--json", action="store_true")
    t = sub.add_parser("transcode", help="copy to another store (folder or fsspec URL), optionally re-chunked")
    t.add_argument("src")
    t.add_argument("dst")
    t.add_argument("--chunk-s", type=float, help="new chunk length in seconds")
    e = sub.add_parser("export", help="export samples + timestamps (npy or, for string streams, jsonl; json sidecar)")
    e.add_argument("path")
    e.add_argument("out", help="npy: output prefix (OUT.npy, OUT_timestamps.npy, OUT.json); jsonl: OUT.jsonl + "
                               "OUT.json; xdf: the .xdf file")
    e.add_argument("--format", choices=["npy", "jsonl", "xdf"], default=None,
                   help="default: npy for numeric streams, jsonl for string (marker) streams")
    rp = sub.add_parser("replay", help="publish the archive as an LSL stream, paced by its timestamps")
    rp.add_argument("path")
    rp.add_argument("--speed", type=float, default=1.0, help="1 = real time")
    rp.add_argument("--source-id-suffix", default="@replay")
    return p


def _read(args: argparse.Namespace) -> int:
    a = open_archive(args.path)
    if args.json:
        print(json.dumps(a.meta, indent=1))
        return 0
    h = a.header
    print(f"{args.path}: {h['name']!r} ({h['type']}, source_id {h['source_id']!r}) {h['channel_count']} ch "
          f"{h['channel_format']} @ {a.fs:g} Hz" + (" (irregular)" if not a.fs else ""))
    print(f"  samples {a.n_samples} ({a.n_samples / a.fs if a.fs else 0:.2f} s), chunk {a.meta['chunk_samples']}, "
          f"gaps {len(a.gaps)}, timestamps clock {a.meta['timestamps_clock']}, next_seq {a.meta.get('next_seq')}")
    if args.stop is not None:
        x, ts = a.read(args.start, args.stop)
        if a.is_text:  # one marker per line: its timestamp and its values, escaped (NULs, line breaks)
            for t, row in zip(ts.tolist(), x.tolist(), strict=True):
                print(f"{t!r}\t" + "\t".join(json.dumps(v, ensure_ascii=False) for v in row))
            return 0
        np.set_printoptions(linewidth=160, threshold=200)
        print(ts)
        print(x)
    return 0


def _verify(args: argparse.Namespace) -> int:
    rep = verify_archive(args.path)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(f"{args.path}: {'OK' if rep['ok'] else 'FAILED'}  {rep['n_samples']} samples in {rep['chunks']} chunks, "
              f"{rep['gaps']} gaps ({rep['frames_lost_for_good']} frames lost for good, {rep['samples_concealed']} samples concealed)")
        for p in rep["problems"]:
            print(f"  problem: {p}")
    return 0 if rep["ok"] else 1


def _transcode(args: argparse.Namespace) -> int:
    from neurolink.sinks.archive import ArchiveSink
    from neurolink.wire.format import StreamHeader

    a = open_archive(args.src)
    h = dict(a.header)
    sink = ArchiveSink(args.dst, chunk_s=args.chunk_s or 1.0,
                       chunk_samples=None if args.chunk_s else int(a.meta["chunk_samples"]))
    sink.open(StreamHeader(stream_id=int(a.meta.get("stream_id", 1)), **h))
    if sink.resumed or sink.meta["n_samples"]:
        raise NeurolinkError(f"transcode target {args.dst} already holds data")
    for _i, x, t in a.iter_chunks():
        sink._append(x, t, None)
    sink.adopt_history(a.meta)
    sink.close()
    print(f"transcoded {a.n_samples} samples to {args.dst}")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.format == "xdf":
        from neurolink.archive.xdf import export_xdf

        n = export_xdf(args.path, args.out)
        print(f"exported {n} samples to {args.out}")
        return 0
    a = open_archive(args.path)
    fmt = args.format or ("jsonl" if a.is_text else "npy")
    if fmt == "npy" and a.is_text:
        raise NeurolinkError(f"{args.path} is a string (marker) stream: .npy cannot hold variable-length text without "
                             f"pickle; use --format jsonl (one JSON line per marker) or --format xdf")
    if fmt == "jsonl" and not a.is_text:
        raise NeurolinkError(f"{args.path} is a numeric ({a.header['channel_format']}) stream: use --format npy or xdf")
    x, ts = a.read()
    out = Path(args.out)
    side = {"sampling_rate_hz": a.fs, "channel_format": a.header["channel_format"], "name": a.header["name"],
            "type": a.header["type"], "source_id": a.header["source_id"], "desc_xml": a.header.get("desc_xml", ""),
            "shape": list(x.shape), "gaps": a.gaps, "clock_offsets": a.meta["clock_offsets"],
            "timestamps_clock": a.meta["timestamps_clock"]}
    if fmt == "jsonl":
        # one line per sample: {"t": timestamp, "v": [value per channel]}; JSON floats round-trip exactly and
        # JSON strings hold any text (NULs and line breaks escaped)
        dst = out.with_suffix(".jsonl")
        with open(dst, "w", encoding="utf-8") as f:
            for t, row in zip(ts.tolist(), x.tolist(), strict=True):
                f.write(json.dumps({"t": t, "v": row}, ensure_ascii=False) + "\n")
        side["values_file"] = dst.name
    else:
        dst = out.with_suffix(".npy")
        np.save(dst, x)
        np.save(out.parent / f"{out.name}_timestamps.npy", ts)
    out.with_suffix(".json").write_text(json.dumps(side, indent=1))
    print(f"exported {x.shape[0]} samples to {dst}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from neurolink.archive.replay import replay_archive

    n = replay_archive(args.path, speed=args.speed, source_id_suffix=args.source_id_suffix)
    print(f"replayed {n} samples")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cmds = {"read": _read, "verify": _verify, "transcode": _transcode, "export": _export, "replay": _replay}
        return cmds[args.cmd](args)
    except NeurolinkError as exc:
        print(f"neurolink archive {args.cmd}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
