"""Daemon telemetry: periodic log lines, a JSON status file (read by ``neurolink status``) and Prometheus."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Gauge

log = logging.getLogger("neurolink.telemetry")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class Telemetry:
    """Publishes ``summary()`` of a Sender/Receiver every ``interval_s``."""

    def __init__(self, role: str, summary: Callable[[], dict[int, dict[str, Any]]], *, status_file: str = "",
                 prometheus_port: int = 0, log_interval_s: float = 10.0) -> None:
        self.role = role
        self.summary = summary
        self.status_file = status_file
        self.log_interval_s = log_interval_s
        self._gauges: dict[str, Any] = {}
        self._Gauge: type[Gauge] | None
        if prometheus_port:
            from prometheus_client import Gauge, start_http_server

            start_http_server(prometheus_port, addr="127.0.0.1")
            self._Gauge = Gauge
            log.info("prometheus metrics on http://127.0.0.1:%d/metrics", prometheus_port)
        else:
            self._Gauge = None

    def snapshot(self) -> dict[str, Any]:
        streams = {str(k): {kk: _clean(vv) for kk, vv in v.items()} for k, v in self.summary().items()}
        return {"role": self.role, "pid": os.getpid(), "time": time.time(), "streams": streams}

    def publish(self) -> dict[str, Any]:
        snap = self.snapshot()
        if self.status_file:
            tmp = Path(self.status_file + ".tmp")
            tmp.write_text(json.dumps(snap, indent=1))
            tmp.replace(self.status_file)
        if self._Gauge is not None:
            for sid, vals in snap["streams"].items():
                for k, v in vals.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        g = self._gauges.get(k)
                        if g is None:
                            g = self._gauges[k] = self._Gauge(f"neurolink_{self.role}_{k}", f"{self.role} {k}", ["stream"])
                        g.labels(stream=sid).set(v)
        return snap

    async def run(self) -> None:
        last_log = 0.0
        while True:
            await asyncio.sleep(min(1.0, self.log_interval_s))
            snap = self.publish()
            now = time.monotonic()
            if now - last_log >= self.log_interval_s:
                last_log = now
                for sid, v in snap["streams"].items():
                    log.info("%s stream %s: %s", self.role, sid, ", ".join(f"{k}={_fmt(x)}" for k, x in v.items()))


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def read_status(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
