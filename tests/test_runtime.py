"""neurolink/runtime.py: the [runtime] section, SCHED_FIFO, the PM QoS wake-up request, the frozen heap."""

from __future__ import annotations

import gc
import json
import logging
import struct
import subprocess
import sys

import pytest

from neurolink.config import validate_receiver, validate_sender
from neurolink.errors import ConfigError
from neurolink.runtime import PM_QOS_DEVICE, CpuWakeupLatency, freeze_heap, validate_runtime

SENDER = {"stream": [{"source": {"kind": "synthetic"}}]}


def test_defaults_leave_the_machine_alone() -> None:
    assert validate_sender(dict(SENDER))["runtime"] == {"realtime_priority": 0, "cpu_wakeup_latency_us": -1}
    assert validate_receiver({})["runtime"] == {"realtime_priority": 0, "cpu_wakeup_latency_us": -1}
    cfg = validate_receiver({"runtime": {"realtime_priority": 50, "cpu_wakeup_latency_us": 0}})
    assert cfg["runtime"] == {"realtime_priority": 50, "cpu_wakeup_latency_us": 0}


@pytest.mark.parametrize("raw, key", [
    ({"realtime_prio": 5}, "runtime.realtime_prio"),
    ({"realtime_priority": 100}, "runtime.realtime_priority"),
    ({"realtime_priority": -1}, "runtime.realtime_priority"),
    ({"realtime_priority": 1.5}, "runtime.realtime_priority"),
    ({"realtime_priority": True}, "runtime.realtime_priority"),
    ({"cpu_wakeup_latency_us": -2}, "runtime.cpu_wakeup_latency_us"),
    ({"cpu_wakeup_latency_us": "0"}, "runtime.cpu_wakeup_latency_us"),
])
def test_bad_values_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        validate_runtime(raw, "receiver.toml")
    assert ei.value.key == key
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_sender({**SENDER, "runtime": raw}, "sender.toml")


def test_wakeup_request_is_an_int32_held_until_close(tmp_path) -> None:
    dev = tmp_path / "qos"
    dev.write_bytes(b"")
    q = CpuWakeupLatency(20, device=str(dev))
    with q:
        assert q.held
        assert struct.unpack("i", dev.read_bytes()) == (20,)
    assert not q.held
    assert not CpuWakeupLatency(-1, device=str(dev)).open().held  # -1 = off: nothing opened


def test_refused_wakeup_request_warns_once_and_goes_on(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="neurolink.runtime")
    with CpuWakeupLatency(0, device=str(tmp_path / "missing")) as q:
        assert not q.held
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "runtime.cpu_wakeup_latency_us = 0" in lines[0] and "missing" in lines[0]


_CHILD = r"""
import json, logging, os, sys, threading
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from neurolink.runtime import set_realtime_priority
ok = set_realtime_priority(int(sys.argv[1]))
seen = {}
t = threading.Thread(target=lambda: seen.update(policy=os.sched_getscheduler(0), prio=os.sched_getparam(0).sched_priority))
t.start(); t.join()
print(json.dumps({"ok": ok, "fifo": os.SCHED_FIFO, "main": os.sched_getscheduler(0), **seen}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_FIFO is Linux-only")
def test_realtime_priority_reaches_threads_started_later_or_says_why_not() -> None:
    # in a child process: the test runner itself must not run at real-time priority
    p = subprocess.run([sys.executable, "-c", _CHILD, "7"], capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(p.stdout)
    if out["ok"]:
        assert out["main"] == out["policy"] == out["fifo"] and out["prio"] == 7
    else:  # no privilege here: one warning naming the key, and the process runs on normally
        assert out["main"] != out["fifo"]
        assert "runtime.realtime_priority = 7: cannot switch to SCHED_FIFO" in p.stderr


def test_real_pm_qos_device_when_allowed() -> None:
    q = CpuWakeupLatency(0)
    try:
        q.open()
        if not q.held:
            pytest.skip(f"{PM_QOS_DEVICE} not writable here (needs root)")
        assert q.held
    finally:
        q.close()
    assert not q.held


def test_freeze_heap_moves_start_up_objects_out_of_collections() -> None:
    try:
        n = freeze_heap()
        assert n > 1000 and gc.get_freeze_count() == n
        big = [[] for _ in range(100)]  # allocated after the freeze: still collected normally
        assert gc.get_freeze_count() == n and big
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


_BULK_CHILD = r"""
import asyncio, json, os
from neurolink.runtime import in_bulk_thread, set_realtime_priority
fifo = set_realtime_priority(5)
async def main():
    return await in_bulk_thread(lambda: os.sched_getscheduler(0)), await asyncio.to_thread(os.sched_getscheduler, 0)
bulk, plain = asyncio.run(main())
print(json.dumps({"fifo": fifo, "bulk": bulk, "plain": plain, "OTHER": os.SCHED_OTHER, "FIFO": os.SCHED_FIFO}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_FIFO is Linux-only")
def test_bulk_work_runs_below_the_live_path() -> None:
    # archive coding must never hold a CPU at the live path's real-time priority
    p = subprocess.run([sys.executable, "-c", _BULK_CHILD], capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(p.stdout)
    assert out["bulk"] == out["OTHER"]
    if out["fifo"]:  # the default executor's threads inherit FIFO: the bulk ones were demoted on purpose
        assert out["plain"] == out["FIFO"]
    else:
        pytest.skip("no privilege for SCHED_FIFO here: the demotion itself was not exercised")


def test_executors_work_in_a_forked_child():
    """A process forked after the bulk and planning threads exist (the fuzzer's children, a user's
    multiprocessing pool) gets executors of its own: a job submitted there runs instead of waiting forever."""
    import multiprocessing as mp

    from neurolink import runtime

    assert runtime.plan_executor().submit(lambda: 1).result(timeout=10) == 1
    assert runtime.bulk_executor().submit(lambda: 2).result(timeout=10) == 2

    def child(q):
        try:
            q.put((runtime.plan_executor().submit(lambda: 3).result(timeout=10),
                   runtime.bulk_executor().submit(lambda: 4).result(timeout=10)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            q.put(repr(exc))

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    try:
        assert q.get(timeout=30) == (3, 4)
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
