"""The daemons as users run them: separate processes, TOML configs, SIGTERM -> flush and exit 0."""

import json
import signal
import subprocess
import sys
import time

from neurolink.netutil import free_port


def _write(tmp_path, pd, pf, seconds=3.0):
    s = tmp_path / "sender.toml"
    s.write_text(f"""
[sender]
wait_receiver_s = 20.0
[transport]
kind = "zmq"
data = "tcp://127.0.0.1:{pd}"
feedback = "tcp://127.0.0.1:{pf}"
[metrics]
status_file = "{tmp_path}/sender.json"
log_interval_s = 1
[[stream]]
id = 5
source = {{ kind = "synthetic", channels = 8, rate = 2000.0, seconds = {seconds} }}
""")
    r = tmp_path / "receiver.toml"
    r.write_text(f"""
[transport]
kind = "zmq"
data = "tcp://127.0.0.1:{pd}"
feedback = "tcp://127.0.0.1:{pf}"
[outlet]
enabled = false
[metrics]
status_file = "{tmp_path}/receiver.json"
log_interval_s = 1
""")
    return s, r


def test_send_receive_status_and_clean_shutdown(tmp_path):
    pd, pf = free_port(), free_port()
    s, r = _write(tmp_path, pd, pf, seconds=30.0)
    rx = subprocess.Popen([sys.executable, "-m", "neurolink", "receive", "--config", str(r)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    tx = subprocess.Popen([sys.executable, "-m", "neurolink", "send", "--config", str(s)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = tmp_path / "receiver.json"
        deadline = time.time() + 60
        seen = 0
        while time.time() < deadline:
            time.sleep(0.5)
            if status.exists():
                snap = json.loads(status.read_text())
                seen = snap["streams"].get("5", {}).get("samples_out", 0)
                if seen >= 2000:
                    break
        assert seen >= 2000, "receiver did not report samples"
        out = subprocess.run([sys.executable, "-m", "neurolink", "status", "--file", str(status)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "stream 5" in out.stdout
    finally:
        tx.send_signal(signal.SIGTERM)
        tx_out, _ = tx.communicate(timeout=30)
        time.sleep(0.5)
        rx.send_signal(signal.SIGTERM)
        rx_out, _ = rx.communicate(timeout=30)
    assert tx.returncode == 0, tx_out
    assert rx.returncode == 0, rx_out
    snap_tx = json.loads((tmp_path / "sender.json").read_text())["streams"]["5"]
    snap_rx = json.loads((tmp_path / "receiver.json").read_text())["streams"]["5"]
    # everything the sender took in was delivered (the sender flushed its partial frame on SIGTERM)
    assert snap_rx["frames_lost"] == 0
    assert snap_rx["samples_out"] == snap_tx["samples_in"]


def test_bad_config_is_one_line_error(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[[stream]]\nsource = { kind = "lsl" }\n')
    out = subprocess.run([sys.executable, "-m", "neurolink", "send", "--config", str(p)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "stream[0].source" in out.stderr and len(out.stderr.strip().splitlines()) == 1
