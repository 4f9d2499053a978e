"""A throw-away mosquitto broker on loopback, for tests and benchmarks (no service manager involved).

Generates a minimal config (one loopback listener on a free port, anonymous, no persistence,
TCP_NODELAY on client sockets so broker hops do not add Nagle delays), starts the real binary, waits
until the port accepts, and can kill/restart it on the same port to exercise reconnect logic.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from neurolink.errors import TransportError
from neurolink.netutil import free_port

log = logging.getLogger(__name__)

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None (callers skip with a reason)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


def wait_port(host: str, port: int, timeout: float = 5.0) -> bool:
    """True once ``host:port`` accepts a TCP connection (False after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class MosquittoBroker:
    """``with MosquittoBroker() as b: ...`` — a real broker at ``b.host:b.port``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, binary: str | None = None) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise TransportError("mosquitto binary not found (Debian/Ubuntu: apt-get install mosquitto)")
        self.binary: str = found
        self.host = host
        self.port = port or free_port(host)
        self._dir = Path(tempfile.mkdtemp(prefix="nl-mosquitto-"))
        self.conf = self._dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            "log_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 5.0) -> MosquittoBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        deadline = time.monotonic() + timeout
        while True:  # after a kill the port can linger for a moment: retry until it binds
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
            if wait_port(self.host, self.port, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
                break
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            self._reap()
            if time.monotonic() >= deadline:
                raise TransportError(f"mosquitto did not listen on {self.host}:{self.port}: {err.decode(errors='replace')[-300:]}")
            time.sleep(0.1)
        self.starts += 1
        log.debug("mosquitto pid %d listening on %s:%d", self.proc.pid, self.host, self.port)
        return self

    def kill(self) -> None:
        """SIGKILL, like a crash: clients see their connection drop without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def restart(self, down_s: float = 0.0) -> None:
        """Kill the broker, stay down ``down_s`` seconds, start it again on the same port."""
        self.kill()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
