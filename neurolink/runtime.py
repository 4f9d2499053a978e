"""Real-time tuning of a daemon process: scheduling priority, CPU wake-up latency, a frozen heap.

Why: at 1 ms frames the tails of the latency neurolink adds are set by the operating system, not by the
codec (docs/transports.md, "Where the tails come from"). Three knobs, the ``[runtime]`` config section:

- ``realtime_priority``: SCHED_FIFO for the process, so other work on the machine cannot delay a frame.
  Applied before any thread starts (liblsl's, libzmq's, the event loop's executor): Linux sets the
  policy per thread and new threads inherit it from their creator.
- ``cpu_wakeup_latency_us``: a PM QoS request (``/dev/cpu_dma_latency``, held while the daemon runs) that
  keeps idle CPUs from entering states slower to leave than this. An idle CPU that halts has to be woken
  by an interrupt; in a virtual machine a halted vCPU goes back to the host, and a wake-up then waits
  for the host to run it again (measured here: 20-30 ms, several times a second). 0 = idle CPUs poll.
  It costs power (or host CPU in a VM): the same trade every real-time audio or BCI rig makes.
- the heap is frozen (``gc.freeze``) once the codecs are warm: a full garbage collection would otherwise
  walk every object created at start-up, which took ~50 ms here, i.e. 50 frames late at once.

Bulk work beside the live path (archive blocks, Zarr chunks: tens of ms of CPU at a time) runs in
:func:`in_bulk_thread`, on threads at normal priority: at SCHED_FIFO an archive coder would keep its
CPU until done and the live path, at the same priority, could not take it back.

Both opt-in knobs need privileges (root, or CAP_SYS_NICE / write access to /dev/cpu_dma_latency);
without them the daemon logs one line naming the key and runs on untuned.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("neurolink.runtime")

PM_QOS_DEVICE = "/dev/cpu_dma_latency"
DEFAULTS: dict[str, Any] = {"realtime_priority": 0, "cpu_wakeup_latency_us": -1}


def validate_runtime(raw: dict[str, Any], src: str) -> dict[str, Any]:
    """The ``[runtime]`` section: ``realtime_priority`` 0 (off) .. 99, ``cpu_wakeup_latency_us`` -1 (off) .. 1 s."""
    from neurolink.validation import check_keys, check_range, check_type

    check_keys("runtime", raw, DEFAULTS.keys(), source=src)
    cfg = {**DEFAULTS, **raw}
    for key, hi in (("realtime_priority", 99), ("cpu_wakeup_latency_us", 1_000_000)):
        check_type(f"runtime.{key}", cfg[key], int, source=src)
        check_range(f"runtime.{key}", cfg[key], -1 if key == "cpu_wakeup_latency_us" else 0, hi, source=src)
    return cfg


def set_realtime_priority(priority: int, *, key: str = "runtime.realtime_priority") -> bool:
    """Switch the calling thread (and every thread it starts later) to SCHED_FIFO ``priority``.

    Returns False, after one warning line, when the system refuses (no privilege, not Linux).
    """
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        log.warning("%s = %d: cannot switch to SCHED_FIFO (%s; needs root or CAP_SYS_NICE); running at normal "
                    "priority", key, priority, why)
        return False
    log.info("%s: SCHED_FIFO priority %d", key, priority)
    return True


class CpuWakeupLatency:
    """Hold a PM QoS CPU wake-up latency request while open (the kernel drops it when the file closes).

    ``with CpuWakeupLatency(0): ...`` keeps idle CPUs polling. ``held`` says whether the request is in
    force; a refused request logs one warning line and leaves the machine as it was.
    """

    def __init__(self, us: int, *, key: str = "runtime.cpu_wakeup_latency_us", device: str = PM_QOS_DEVICE) -> None:
        self.us, self.key, self.device = int(us), key, device
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def open(self) -> CpuWakeupLatency:
        if self.us < 0 or self._fd is not None:
            return self
        try:
            fd = os.open(self.device, os.O_WRONLY)
        except OSError as exc:
            log.warning("%s = %d: cannot open %s (%s; needs root); CPU idle states left as they are", self.key,
                        self.us, self.device, exc.strerror)
            return self
        try:
            os.write(fd, struct.pack("i", self.us))
        except OSError as exc:
            os.close(fd)
            log.warning("%s = %d: %s refused the request (%s)", self.key, self.us, self.device, exc.strerror)
            return self
        self._fd = fd
        log.info("%s: idle CPUs wake within %d us while this process runs", self.key, self.us)
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CpuWakeupLatency:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def freeze_heap() -> int:
    """Collect once, then move every surviving object out of the collector's reach (``gc.freeze``).

    Called once start-up is over (imports, codec warm-up): later collections walk only what the
    daemon allocates from then on. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


_bulk: ThreadPoolExecutor | None = None
_bulk_lock = threading.Lock()


def _normal_priority() -> None:
    """Executor initializer: this worker thread runs at normal priority whatever its creator's policy."""
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # dropping priority needs no privilege
    except (AttributeError, OSError):  # not Linux: nothing was raised either
        pass


def bulk_executor() -> ThreadPoolExecutor:
    """The process's threads for bulk work (created on first use, at normal priority)."""
    global _bulk
    with _bulk_lock:
        if _bulk is None:
            _bulk = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nl-bulk", initializer=_normal_priority)
        return _bulk


_plan: ThreadPoolExecutor | None = None


def plan_executor() -> ThreadPoolExecutor:
    """One normal-priority thread for short one-off planning jobs (a stream's codec prefilter): apart from
    the bulk threads, so such a job does not queue behind archive blocks while the live path waits for it."""
    global _plan
    with _bulk_lock:
        if _plan is None:
            _plan = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nl-plan", initializer=_normal_priority)
        return _plan


def _forget_executors() -> None:
    """In a forked child: the parent's worker threads do not exist there, but its executors think they do
    (a ThreadPoolExecutor starts no thread while it counts max_workers), so a job submitted in the child
    would wait forever (seen: a fuzz child planning an nl-lossless prefilter hung until its 300 s limit).
    The child starts its own executors on first use."""
    global _bulk, _plan, _bulk_lock
    _bulk = _plan = None
    _bulk_lock = threading.Lock()  # a fork while another thread held it would leave it locked here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executors)


async def in_bulk_thread(fn: Callable[..., T], *args: Any) -> T:
    """``asyncio.to_thread`` for bulk work: on a :func:`bulk_executor` thread, never ahead of the live path."""
    return await asyncio.get_running_loop().run_in_executor(bulk_executor(), fn, *args)
