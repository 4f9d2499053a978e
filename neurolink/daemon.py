"""``neurolink send`` / ``neurolink receive`` / ``neurolink status``: the long-running daemons.

Both shut down cleanly on SIGINT/SIGTERM: the sender flushes its partial frame and an end-of-stream
marker, the receiver closes its outlets; exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from neurolink.codecs import load_ladder
from neurolink.codecs.warmup import warm_up
from neurolink.config import load_receiver_config, load_sender_config
from neurolink.errors import ConfigError
from neurolink.receiver import Receiver
from neurolink.reliable.config import build_reliable_receiver, build_reliable_sender
from neurolink.runtime import CpuWakeupLatency, freeze_heap, in_bulk_thread, set_realtime_priority
from neurolink.sender import Sender, StreamSpec
from neurolink.sinks.lsl_outlet import LSLOutletSink
from neurolink.sources.base import Source
from neurolink.telemetry import Telemetry, read_status
from neurolink.transports import make_receiver_transport, make_sender_transport

log = logging.getLogger("neurolink.daemon")


def build_source(cfg: dict[str, Any]) -> Source:
    kind = cfg["kind"]
    if kind == "lsl":
        from neurolink.sources.lsl_inlet import LSLSource

        return LSLSource(name=cfg.get("name"), type=cfg.get("type"), source_id=cfg.get("source_id"),
                         resolve_timeout=float(cfg.get("resolve_timeout", 5.0)), max_buffer_s=float(cfg.get("max_buffer_s", 2.0)))
    from neurolink.sources.replay import Recording, ReplaySource, load_recording, tile_channels
    from neurolink.sources.synthetic import synthetic_recording

    if kind == "replay":
        rec = load_recording(cfg["path"])
        if cfg.get("channels"):
            rec.data = tile_channels(rec.data, int(cfg["channels"]))
        return ReplaySource(rec, loop=bool(cfg.get("loop", False)))
    fs = float(cfg.get("rate", 30000.0))
    ch = int(cfg.get("channels", 64))
    n = int(fs * float(cfg.get("seconds", 60.0)))
    return ReplaySource(Recording(synthetic_recording(n, ch, fs, seed=int(cfg.get("seed", 0))), fs, [], "synthetic", "Extracellular"))


def _security(cfg: dict[str, Any], transport: dict[str, Any], role: str) -> Any:
    """Refuse non-loopback links without keys (unless ``security.insecure``); build the frame cipher."""
    from neurolink.security import cipher_from_config
    from neurolink.security.curve import require_security

    sec = dict(cfg.get("security") or {})
    if transport.get("curve"):
        sec.setdefault("curve", transport["curve"])
    if transport.get("kind", "zmq") == "zmq":
        require_security(transport.get("data", "tcp://127.0.0.1:5556"), sec)
    else:  # MQTT: TLS + client authentication counts as link security too
        from neurolink.transports.mqtt_tls import require_mqtt_security

        require_mqtt_security(transport, sec)
    return cipher_from_config(cfg.get("security"), role=role)


def build_specs(cfg: dict[str, Any]) -> list[StreamSpec]:
    """The sender's streams from a validated config."""
    specs = []
    for st in cfg["stream"]:
        # no ladder configured: None, so the sender picks the packaged one per channel format (its lossy
        # levels are calibrated for int16 counts; see neurolink/codecs/dtype_ladder.py)
        ladder = load_ladder(st["ladder"]) if st.get("ladder") else None
        specs.append(StreamSpec(build_source(st["source"]), int(st["id"]), ladder, float(st["frame_ms"]),
                                int(st["queue_frames"]), dict(st["controller"])))
    return specs


async def run_sender(cfg: dict[str, Any]) -> int:
    specs = build_specs(cfg)
    tcfg = dict(cfg["transport"])
    sealer = _security(cfg, tcfg, "sender")
    sender = Sender(specs, make_sender_transport(tcfg), control_interval_s=cfg["sender"]["control_interval_s"],
                    header_interval_s=cfg["sender"]["header_interval_s"], sealer=sealer,
                    wait_receiver_s=cfg["sender"]["wait_receiver_s"],
                    reliable=build_reliable_sender(cfg["reliable"]))
    await _warm_codecs([list(sp.ladder or load_ladder()) for sp in specs])
    m = cfg["metrics"]
    tel = Telemetry("sender", sender.summary, status_file=m["status_file"], prometheus_port=m["prometheus_port"],
                    log_interval_s=m["log_interval_s"])
    return await _serve(sender, tel)


async def run_receiver(cfg: dict[str, Any]) -> int:
    o = cfg["outlet"]

    def sinks(h):
        return [LSLOutletSink(o["name_suffix"], o["source_id_suffix"], o["wait_consumer_s"])] if o["enabled"] else []

    tcfg = dict(cfg["transport"])
    opener = _security(cfg, tcfg, "receiver")
    ids = set(cfg["receiver"]["streams"]) or None
    receiver = Receiver(make_receiver_transport(tcfg), sinks, conceal=cfg["receiver"]["conceal"],
                        control_interval_s=cfg["receiver"]["control_interval_s"], stream_ids=ids, opener=opener,
                        jitter_ms=cfg["receiver"]["jitter_ms"], reliable=build_reliable_receiver(cfg["archive"]),
                        max_conceal_s=cfg["receiver"]["max_conceal_s"])
    # the receiver learns each stream's codecs from its header; warm the packaged ladder, the usual case
    await _warm_codecs([list(load_ladder())])
    m = cfg["metrics"]
    tel = Telemetry("receiver", receiver.summary, status_file=m["status_file"], prometheus_port=m["prometheus_port"],
                    log_interval_s=m["log_interval_s"])
    return await _serve(receiver, tel)


async def _warm_codecs(ladders: list[list[dict[str, Any]]]) -> None:
    """Compile codec kernels before any frame flows (numba specialises on dtype, not on shape)."""
    from neurolink.codecs.dtype_ladder import float_configs

    configs = [c for ladder in ladders for c in ladder]
    configs += [c for ladder in ladders for c in float_configs(ladder) if c not in configs]  # other formats
    spent = 0.0
    for dtype in (np.int16, np.int32, np.float32, np.float64):
        # at normal priority: a first start compiles for tens of seconds, which must not hold a CPU at
        # SCHED_FIFO ([runtime] realtime_priority) away from the acquisition software
        spent += await in_bulk_thread(warm_up, configs, 8, 30, dtype)
    log.info("codec kernels ready in %.1f s", spent)
    # start-up is over: later garbage collections need not walk the imports and compiled kernels again
    log.debug("froze %d start-up objects", freeze_heap())


async def _serve(node: Sender | Receiver, tel: Telemetry) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.stop)
    tel_task = asyncio.create_task(tel.run(), name="telemetry")
    try:
        await node.run()
    finally:
        tel_task.cancel()
        tel.publish()
    log.info("shut down cleanly")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    for name, helptext, default in (("send", "run the sender daemon", "configs/sender.toml"),
                                    ("receive", "run the receiver daemon", "configs/receiver.toml")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", default=default, help=f"TOML config (default {default})")
        p.add_argument("--transport", choices=["zmq", "mqtt"], help="override transport.kind")
        p.add_argument("--status-file", help="override metrics.status_file")
        p.add_argument("--prometheus-port", type=int, help="override metrics.prometheus_port")
        if name == "receive":
            p.add_argument("--conceal", choices=["hold", "zeros", "nan", "linear"], help="override receiver.conceal")
    p = sub.add_parser("status", help="print a daemon's status file")
    p.add_argument("--file", required=True, help="the daemon's metrics.status_file")
    p.add_argument("--json", action="store_true", help="raw JSON")
    k = sub.add_parser("keys", help="key tooling (neurolink keys generate --out DIR)")
    k.add_argument("rest", nargs=argparse.REMAINDER)
    a = sub.add_parser("archive", help="archives: neurolink archive read|verify|transcode|export PATH ...")
    a.add_argument("rest", nargs=argparse.REMAINDER)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if getattr(args, "transport", None):
        o.setdefault("transport", {})["kind"] = args.transport
    if getattr(args, "status_file", None):
        o.setdefault("metrics", {})["status_file"] = args.status_file
    if getattr(args, "prometheus_port", None) is not None:
        o.setdefault("metrics", {})["prometheus_port"] = args.prometheus_port
    if getattr(args, "conceal", None):
        o.setdefault("receiver", {})["conceal"] = args.conceal
    return o


def run_tuned(cfg: dict[str, Any], main: Callable[[dict[str, Any]], Coroutine[Any, Any, int]]) -> int:
    """Run a daemon's coroutine function under its ``[runtime]`` tuning (neurolink/runtime.py).

    The priority is set before ``asyncio.run`` so every thread started afterwards inherits it; the
    wake-up latency request is held until the daemon has flushed and returned.
    """
    rt = cfg["runtime"]
    set_realtime_priority(rt["realtime_priority"])
    with CpuWakeupLatency(rt["cpu_wakeup_latency_us"]):
        return asyncio.run(main(cfg))


def run_subcommand(args: argparse.Namespace) -> int:
    if args.cmd == "send":
        return run_tuned(load_sender_config(args.config, _overrides(args)), run_sender)
    if args.cmd == "receive":
        return run_tuned(load_receiver_config(args.config, _overrides(args)), run_receiver)
    if args.cmd == "status":
        if not Path(args.file).exists():
            raise ConfigError("--file", f"no status file at {args.file} (is the daemon running with metrics.status_file set?)")
        snap = read_status(args.file)
        if args.json:
            print(json.dumps(snap, indent=1))
        else:
            print(f"{snap['role']} pid {snap['pid']}")
            for sid, v in snap["streams"].items():
                print(f"  stream {sid}: " + ", ".join(f"{k}={x}" for k, x in v.items()))
        return 0
    if args.cmd == "archive":
        from neurolink.archive.cli import main as archive_main

        return archive_main(args.rest)
    if args.cmd == "keys":
        from neurolink.security.cli import main as keys_main

        return keys_main(args.rest)
    raise ConfigError("command", f"unknown command {args.cmd!r}")
