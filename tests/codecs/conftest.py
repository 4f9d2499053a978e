"""Fixtures shared by the codec tests."""

from __future__ import annotations

import importlib

import pytest

_nrt_python = importlib.import_module("numba.core.runtime._nrt_python")  # NRT's C module: stats switch


@pytest.fixture(scope="module")
def nrt_stats():
    """numba's allocation counters on for the module (``numba.core.runtime.rtsys.get_allocation_stats``):
    tests that a decoder refuses before allocating compare them around a call."""
    was = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    yield
    if not was:
        _nrt_python.memsys_disable_stats()
