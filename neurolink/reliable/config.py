"""TOML options of the reliable archive path: ``[reliable]`` (sender) and ``[archive]`` (receiver).

Both tables are optional and off by default; errors name the key like the rest of neurolink/config.py.

    [reliable]                  # sender: spool every frame's lossless copy until the archive acks it
    enabled = true
    spool_dir = "/var/spool/neurolink"   # "" = a temporary folder
    spool_mb = 1024             # bounded: overflow evicts the oldest frames, counted and logged as errors
    retransmit_per_s = 25        # archive blocks per second (block = 100 frames)
    linger_s = 10               # on shutdown, wait this long for the archive to acknowledge everything

    [archive]                   # receiver: write every stream to a Zarr v3 archive
    path = "archives/{name}-{stream_id}.zarr"   # folder or fsspec URL; {name} {stream_id} {source_id}
    chunk_s = 1.0
    window_frames = 64          # reorder window, in archive blocks
    flush_s = 1.0               # string (marker) streams: longest a marker waits before its chunk is written
"""

from __future__ import annotations

import re
from typing import Any

from neurolink.validation import check_keys, check_range, check_type

RELIABLE_DEFAULTS: dict[str, Any] = {"enabled": False, "spool_dir": "", "spool_mb": 1024.0, "retransmit_per_s": 25.0, "block_frames": 100,
                                     "linger_s": 10.0}
ARCHIVE_DEFAULTS: dict[str, Any] = {"enabled": False, "path": "", "chunk_s": 1.0, "window_frames": 64, "flush_s": 1.0}


def validate_reliable(d: dict[str, Any], src: str) -> dict[str, Any]:
    check_keys("reliable", d, RELIABLE_DEFAULTS.keys(), source=src)
    out = {**RELIABLE_DEFAULTS, **d}
    check_type("reliable.enabled", out["enabled"], bool, source=src)
    check_type("reliable.spool_dir", out["spool_dir"], str, source=src)
    check_range("reliable.spool_mb", out["spool_mb"], 16, 1 << 22, source=src)
    check_range("reliable.retransmit_per_s", out["retransmit_per_s"], 1, 1e6, source=src)
    check_range("reliable.block_frames", out["block_frames"], 1, 65536, source=src)
    check_range("reliable.linger_s", out["linger_s"], 0, 3600, source=src)
    return out


def validate_archive(d: dict[str, Any], src: str) -> dict[str, Any]:
    check_keys("archive", d, ARCHIVE_DEFAULTS.keys(), source=src)
    out = {**ARCHIVE_DEFAULTS, **d}
    if "path" in d and "enabled" not in d:
        out["enabled"] = bool(d["path"])
    check_type("archive.enabled", out["enabled"], bool, source=src)
    check_type("archive.path", out["path"], str, source=src)
    if out["enabled"] and not out["path"]:
        from neurolink.errors import ConfigError

        raise ConfigError("archive.path", "archive.enabled needs a folder or fsspec URL", source=src)
    check_range("archive.chunk_s", out["chunk_s"], 0.01, 3600, source=src)
    check_range("archive.window_frames", out["window_frames"], 16, 1_000_000, source=src)
    check_range("archive.flush_s", out["flush_s"], 0, 3600, source=src)
    return out


def build_reliable_sender(cfg: dict[str, Any]) -> Any:
    if not cfg.get("enabled"):
        return None
    from neurolink.reliable.sender import ReliableSender

    return ReliableSender(cfg["spool_dir"] or None, spool_mb=cfg["spool_mb"], retransmit_per_s=cfg["retransmit_per_s"],
                          block_frames=int(cfg["block_frames"]),
                          linger_s=cfg["linger_s"], background=True)


def build_reliable_receiver(cfg: dict[str, Any]) -> Any:
    if not cfg.get("enabled"):
        return None
    from neurolink.reliable.receiver import ReliableReceiver
    from neurolink.sinks.archive import ArchiveSink

    def factory(h: Any) -> ArchiveSink:
        safe = {k: re.sub(r"[^A-Za-z0-9_.-]", "_", str(v)) for k, v in
                (("name", h.name), ("stream_id", h.stream_id), ("source_id", h.source_id))}
        return ArchiveSink(cfg["path"].format(**safe), chunk_s=cfg["chunk_s"], flush_s=cfg["flush_s"])

    return ReliableReceiver(factory, window_frames=cfg["window_frames"], background=True)
