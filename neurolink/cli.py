"""Command line: ``neurolink demo | send | receive | status | bench NAME | sys-info | keys``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from neurolink.errors import NeurolinkError


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `bench` hands everything after its name to the benchmark's own parser
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    p = argparse.ArgumentParser(prog="neurolink", description=__doc__)
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = p.add_subparsers(dest="cmd", required=True)

    from neurolink import demo

    demo.add_arguments(sub.add_parser("demo", help="live LSL -> codec -> ZeroMQ -> LSL demo, verified"))
    sub.add_parser("sys-info", help="versions of liblsl, libzmq, onnxruntime, numba, CPU")
    sub.add_parser("bench", help="benchmarks: codecs, rd, latency, fuzz, archive (neurolink bench NAME -h)")
    daemon: ModuleType | None
    try:
        from neurolink import daemon
    except ImportError:  # pragma: no cover
        daemon = None
    if daemon is not None:
        daemon.add_subcommands(sub)
    args = p.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        if args.cmd == "demo":
            return demo.main(args)
        if args.cmd == "sys-info":
            from neurolink.sysinfo import main as sysinfo_main

            return sysinfo_main()
        assert daemon is not None  # its subcommands exist only when it imported
        return daemon.run_subcommand(args)
    except NeurolinkError as exc:
        print(f"neurolink: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _bench(argv: list[str]) -> int:
    names = ["codecs", "rd", "latency", "fuzz", "archive"]
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: neurolink bench {{{','.join(names)}}} [options]  (each takes -h)")
        return 0 if argv else 2
    name = argv[0]
    if name not in names:
        print(f"neurolink: error: unknown benchmark {name!r}; expected one of {names}", file=sys.stderr)
        return 2
    _setup_logging("WARNING")
    try:
        mod = importlib.import_module(f"neurolink.bench.{name}")
    except ModuleNotFoundError as exc:
        print(f"neurolink: error: benchmark {name!r} is not available: {exc}", file=sys.stderr)
        return 2
    return int(mod.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
