"""On-disk spool: exact bytes back, cumulative release frees disk, overflow is counted and logged."""

from __future__ import annotations

import logging

import pytest

from neurolink.errors import ConfigError
from neurolink.reliable.spool import Spool


def _msg(i: int) -> bytes:
    return bytes([i % 251]) * (500 + i % 37)


def test_get_release(tmp_path):
    sp = Spool(tmp_path, capacity_bytes=1 << 20, segment_bytes=8192)
    for i in range(100):
        sp.append(i, _msg(i))
    assert sp.frames == 100 and sp.oldest_seq == 0 and sp.end_seq == 100
    assert all(sp.get(i) == _msg(i) for i in range(100))
    assert sp.get(100) is None
    n = sp.release_below(50)
    assert n > 0 and sp.oldest_seq <= 50 and all(sp.get(i) == _msg(i) for i in range(50, 100))
    files = len(list(tmp_path.iterdir()))
    sp.release_below(100)
    assert sp.frames == 0 and sp.bytes == 0 and len(list(tmp_path.iterdir())) < files
    sp.append(100, _msg(100))
    assert sp.get(100) == _msg(100)
    sp.close()
    assert not list(tmp_path.iterdir())


def test_overflow_is_loud(tmp_path, caplog):
    sp = Spool(tmp_path, capacity_bytes=16384, segment_bytes=4096)
    with caplog.at_level(logging.ERROR):
        for i in range(200):
            sp.append(i, _msg(i))
    assert sp.overflow_frames > 0 and sp.overflow_events > 0
    assert sp.bytes <= 16384
    assert sp.oldest_seq == sp.overflow_frames  # the oldest frames went first
    assert sp.get(199) == _msg(199) and sp.get(0) is None
    assert any("FULL" in r.message for r in caplog.records)


def test_bad_config_and_order(tmp_path):
    with pytest.raises(ConfigError, match="spool_mb"):
        Spool(tmp_path, capacity_bytes=5000, segment_bytes=4096)
    sp = Spool(tmp_path, capacity_bytes=1 << 16, segment_bytes=4096)
    sp.append(5, b"x")
    with pytest.raises(ValueError, match="backwards"):
        sp.append(3, b"y")
    sp.close()


def test_spools_of_dead_senders_are_swept_live_ones_kept(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import tempfile

    from neurolink.reliable.spool import SPOOL_PREFIX, sweep_stale_spools

    # a sender that dies without closing its spool (os._exit: no cleanup, like kill -9)
    code = ("import os, tempfile; tempfile.tempdir = os.environ['D']\n"
            "from neurolink.reliable.spool import Spool\n"
            "s = Spool(segment_bytes=4096, capacity_bytes=8192); s.append(0, b'x' * 1000)\n"
            "print(s.dir, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "D": str(tmp_path)})
    dead = tmp_path / out.stdout.strip().rsplit("/", 1)[-1]
    assert dead.is_dir() and any(dead.glob("seg-*"))
    no_lock = tmp_path / f"{SPOOL_PREFIX}99999999999999999999-x"  # odd names, no lock file: left alone
    no_lock.mkdir()
    (tmp_path / f"{SPOOL_PREFIX}\u00b2-x").mkdir()
    (tmp_path / f"{SPOOL_PREFIX}link").symlink_to(no_lock)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = Spool(segment_bytes=4096, capacity_bytes=8192)  # a temporary spool sweeps before it starts
    assert not dead.exists() and no_lock.exists() and (tmp_path / f"{SPOOL_PREFIX}link").is_symlink()
    assert live.dir.parent == tmp_path
    other = Spool(segment_bytes=4096, capacity_bytes=8192)  # a second sender starting: the live one is kept
    assert live.dir.exists() and sweep_stale_spools(tmp_path) == 0
    other.close()
    live.close()
    assert not live.dir.exists() and not other.dir.exists()
