"""Test-wide setup: LSL discovery limited to this machine, shared real data with a clear skip."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

# Before any pylsl import: keep LSL multicast/broadcast on this machine.
os.environ.setdefault("LSLAPICFG", str(Path(__file__).with_name("lsl_api.cfg")))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from neurolink.data import shared_dir  # noqa: E402

SHARED = shared_dir()


def recordings() -> list[Path]:
    if SHARED is None:
        return []
    return sorted((SHARED / "data").glob("*.npy"))


def load_recording(path: Path) -> tuple[np.ndarray, float]:
    meta = json.loads(path.with_suffix(".json").read_text())
    return np.load(path), float(meta["sampling_rate_hz"])


@pytest.fixture(params=[p.name for p in recordings()] or ["<missing>"])
def recording(request) -> tuple[np.ndarray, float]:
    """Each real recording in ../shared/data (skipped with a reason when the folder is absent)."""
    if request.param == "<missing>":
        pytest.skip("../shared/data not found beside the checkout (set NEUROLINK_SHARED to its folder)")
    return load_recording(SHARED / "data" / request.param)


@pytest.fixture
def source_id() -> str:
    """A unique LSL source_id per test so parallel or leftover streams never cross."""
    return f"nltest-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def nrt_stats():
    """numba's allocation counters on for the module (``numba.core.runtime.rtsys.get_allocation_stats``):
    codec tests that a decoder refuses before allocating compare them around a call."""
    import importlib

    nrt = importlib.import_module("numba.core.runtime._nrt_python")  # NRT's C module: the stats switch
    was = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    yield
    if not was:
        nrt.memsys_disable_stats()
