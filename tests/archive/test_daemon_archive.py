"""The daemons with the archive enabled from TOML: everything the sender took in lands in the archive."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neurolink.archive import read_archive, verify_archive
from neurolink.config import validate_receiver, validate_sender
from neurolink.errors import ConfigError
from neurolink.netutil import free_port


def test_send_receive_with_archive(tmp_path):
    pd, pf = free_port(), free_port()
    arch = tmp_path / "arch"
    (tmp_path / "s.toml").write_text(f"""
[sender]
wait_receiver_s = 20.0
[transport]
data = "tcp://127.0.0.1:{pd}"
feedback = "tcp://127.0.0.1:{pf}"
[reliable]
enabled = true
spool_dir = "{tmp_path}/spool"
spool_mb = 64
[[stream]]
id = 4
source = {{ kind = "synthetic", channels = 8, rate = 2000.0, seconds = 2.0, seed = 3 }}
controller = {{ id = "fixed", level = 4 }}
""")
    (tmp_path / "r.toml").write_text(f"""
[transport]
data = "tcp://127.0.0.1:{pd}"
feedback = "tcp://127.0.0.1:{pf}"
[outlet]
enabled = false
[archive]
path = "{arch}/{{name}}-{{stream_id}}.zarr"
""")
    rx = subprocess.Popen([sys.executable, "-m", "neurolink", "receive", "--config", str(tmp_path / "r.toml")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)
        tx = subprocess.run([sys.executable, "-m", "neurolink", "send", "--config", str(tmp_path / "s.toml")],
                            capture_output=True, text=True, timeout=90)
        assert tx.returncode == 0, tx.stdout[-2000:] + tx.stderr[-2000:]
    finally:
        rx.send_signal(signal.SIGTERM)
        rx_out, _ = rx.communicate(timeout=30)
    assert rx.returncode == 0, rx_out[-2000:]
    from neurolink.sources.synthetic import synthetic_recording

    path = str(next(arch.glob("*-4.zarr")))
    y, ts = read_archive(path)
    assert np.array_equal(y, synthetic_recording(4000, 8, 2000.0, seed=3))  # lossless although live ran at level 4
    assert verify_archive(path)["ok"] and np.all(np.diff(ts) > 0)
    assert not list((tmp_path / "spool").rglob("*.spool"))  # all acknowledged, all freed


def test_archive_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="archive.chunk_s"):
        validate_receiver({"archive": {"path": "x.zarr", "chunk_s": 0}})
    with pytest.raises(ConfigError, match="archive.path"):
        validate_receiver({"archive": {"enabled": True}})
    with pytest.raises(ConfigError, match="reliable.spool_mb"):
        validate_sender({"reliable": {"enabled": True, "spool_mb": 1}, "stream": [{"source": {"kind": "synthetic"}}]})
    cfg = validate_receiver({"archive": {"path": "a.zarr"}})
    assert cfg["archive"]["enabled"] is True
