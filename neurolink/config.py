"""TOML configuration for the daemons, validated at load: every error names the key and what was expected.

See configs/sender.toml and configs/receiver.toml for commented examples.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomllib

from neurolink.errors import ConfigError
from neurolink.runtime import validate_runtime
from neurolink.validation import check_choice, check_keys, check_range, check_type

SENDER_DEFAULTS: dict[str, Any] = {
    "sender": {"control_interval_s": 0.1, "header_interval_s": 0.5, "wait_receiver_s": 0.0},
    "transport": {"kind": "zmq"},
    "metrics": {"prometheus_port": 0, "status_file": "", "log_interval_s": 10.0},
    "security": {},
    "stream": [],
    "reliable": {},  # reliable archive path (neurolink/reliable/config.py)
    "runtime": {},  # process tuning (neurolink/runtime.py)
}
RECEIVER_DEFAULTS: dict[str, Any] = {
    "receiver": {"conceal": "hold", "control_interval_s": 0.1, "streams": [], "jitter_ms": 0.0, "max_conceal_s": 2.0},
    "transport": {"kind": "zmq"},
    "outlet": {"enabled": True, "name_suffix": "", "source_id_suffix": "@neurolink", "wait_consumer_s": 0.0},
    "metrics": {"prometheus_port": 0, "status_file": "", "log_interval_s": 10.0},
    "security": {},
    "archive": {},  # reliable archive path (neurolink/reliable/config.py)
    "runtime": {},  # process tuning (neurolink/runtime.py)
}
SOURCE_KINDS = ("lsl", "replay", "synthetic")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<toml>", f"invalid TOML: {exc}", source=str(p)) from None


def _check_metrics(m: dict[str, Any], src: str) -> None:
    check_keys("metrics", m, ("prometheus_port", "status_file", "log_interval_s"), source=src)
    check_range("metrics.prometheus_port", m["prometheus_port"], 0, 65535, source=src)
    check_type("metrics.status_file", m["status_file"], str, source=src)
    check_range("metrics.log_interval_s", m["log_interval_s"], 0.1, 3600, source=src)


def _check_transport(t: dict[str, Any], src: str) -> None:
    check_choice("transport.kind", t.get("kind"), ("zmq", "mqtt"), source=src)


def _check_security(sec: dict[str, Any], src: str) -> None:
    check_keys("security", sec, ("keys_file", "keys_env", "insecure", "max_age_s", "aead"), source=src)
    if "aead" in sec:
        from neurolink.security.aead import AEAD_NAMES

        check_choice("security.aead", sec["aead"], ("auto", *AEAD_NAMES), source=src)
    if "insecure" in sec:
        check_type("security.insecure", sec["insecure"], bool, source=src)
    if "keys_file" in sec:
        check_type("security.keys_file", sec["keys_file"], str, source=src)
    if "max_age_s" in sec:
        check_range("security.max_age_s", sec["max_age_s"], 0.001, 86400, source=src)


def validate_sender(raw: dict[str, Any], src: str = "<dict>") -> dict[str, Any]:
    check_keys("", raw, SENDER_DEFAULTS.keys(), source=src)
    cfg = _merge(SENDER_DEFAULTS, raw)
    s = cfg["sender"]
    check_keys("sender", s, ("control_interval_s", "header_interval_s", "wait_receiver_s"), source=src)
    from neurolink.reliable.config import validate_reliable

    cfg["reliable"] = validate_reliable(cfg["reliable"], src)
    check_range("sender.wait_receiver_s", s["wait_receiver_s"], 0, 3600, source=src)
    check_range("sender.control_interval_s", s["control_interval_s"], 0.005, 60, source=src)
    check_range("sender.header_interval_s", s["header_interval_s"], 0.05, 60, source=src)
    _check_transport(cfg["transport"], src)
    _check_metrics(cfg["metrics"], src)
    _check_security(cfg["security"], src)
    cfg["runtime"] = validate_runtime(cfg["runtime"], src)
    streams = cfg["stream"]
    if not isinstance(streams, list) or not streams:
        raise ConfigError("stream", "expected one or more [[stream]] tables", source=src)
    seen = set()
    for i, st in enumerate(streams):
        key = f"stream[{i}]"
        check_type(key, st, dict, source=src)
        check_keys(key, st, ("id", "source", "frame_ms", "ladder", "controller", "queue_frames"), source=src)
        st.setdefault("id", i + 1)
        st.setdefault("frame_ms", 1.0)
        st.setdefault("queue_frames", 2000)
        st.setdefault("controller", {"id": "fixed", "level": 0})
        check_range(f"{key}.id", st["id"], 0, 2**32 - 1, source=src)
        if st["id"] in seen:
            raise ConfigError(f"{key}.id", f"duplicate stream id {st['id']}", source=src)
        seen.add(st["id"])
        check_range(f"{key}.frame_ms", st["frame_ms"], 0.05, 1000, source=src)
        check_range(f"{key}.queue_frames", st["queue_frames"], 1, 10_000_000, source=src)
        check_type(f"{key}.controller", st["controller"], dict, source=src)
        if "ladder" in st:
            check_type(f"{key}.ladder", st["ladder"], str, source=src)
        srcd = st.get("source")
        check_type(f"{key}.source", srcd, dict, source=src)
        check_choice(f"{key}.source.kind", srcd.get("kind"), SOURCE_KINDS, source=src)
        if srcd["kind"] == "lsl":
            check_keys(f"{key}.source", srcd, ("kind", "name", "type", "source_id", "resolve_timeout", "max_buffer_s"), source=src)
            if not any(k in srcd for k in ("name", "type", "source_id")):
                raise ConfigError(f"{key}.source", "an LSL source needs name, type or source_id", source=src)
        elif srcd["kind"] == "replay":
            check_keys(f"{key}.source", srcd, ("kind", "path", "loop", "channels"), source=src)
            check_type(f"{key}.source.path", srcd.get("path"), str, source=src)
        else:
            check_keys(f"{key}.source", srcd, ("kind", "channels", "rate", "seconds", "seed"), source=src)
    return cfg


def validate_receiver(raw: dict[str, Any], src: str = "<dict>") -> dict[str, Any]:
    check_keys("", raw, RECEIVER_DEFAULTS.keys(), source=src)
    cfg = _merge(RECEIVER_DEFAULTS, raw)
    r = cfg["receiver"]
    check_keys("receiver", r, ("conceal", "control_interval_s", "streams", "jitter_ms", "max_conceal_s"), source=src)
    check_range("receiver.jitter_ms", r["jitter_ms"], 0, 10_000, source=src)
    check_range("receiver.max_conceal_s", r["max_conceal_s"], 0, 600, source=src)
    check_choice("receiver.conceal", r["conceal"], ("hold", "zeros", "nan", "linear"), source=src)
    check_range("receiver.control_interval_s", r["control_interval_s"], 0.005, 60, source=src)
    check_type("receiver.streams", r["streams"], list, source=src)
    o = cfg["outlet"]
    check_keys("outlet", o, ("enabled", "name_suffix", "source_id_suffix", "wait_consumer_s"), source=src)
    check_type("outlet.enabled", o["enabled"], bool, source=src)
    check_range("outlet.wait_consumer_s", o["wait_consumer_s"], 0, 600, source=src)
    _check_transport(cfg["transport"], src)
    _check_metrics(cfg["metrics"], src)
    _check_security(cfg["security"], src)
    from neurolink.reliable.config import validate_archive

    cfg["archive"] = validate_archive(cfg["archive"], src)
    cfg["runtime"] = validate_runtime(cfg["runtime"], src)
    return cfg


def load_sender_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = _merge(read_toml(path), overrides or {})
    return validate_sender(raw, str(path))


def load_receiver_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = _merge(read_toml(path), overrides or {})
    return validate_receiver(raw, str(path))
