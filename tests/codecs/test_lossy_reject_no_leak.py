"""Rejected lossy payloads must not leak numba (NRT) memory (issue 7).

A ``raise`` inside a numba nopython function leaks the arrays held by the raising frame and by its
jitted callers (~150 kB per rejected 1 ms frame in the fuzzer: 3-23 GB after 1M inputs). The lossy
readers therefore never raise inside jitted code: a read past the end returns a sticky bad position
and value errors come back as codes, raised by the Python wrapper. This test counts NRT allocations
and frees (deterministic, no RSS or timing thresholds) around decoding truncated and bit-flipped
real payloads of every lossy codec.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from numba.core.runtime import rtsys

from neurolink.codecs.registry import get_codec
from neurolink.codecs.testing import LOSSY_CONFIGS
from neurolink.errors import CodecError

#: Codecs whose payload is read field by field to its last bit: any cut must be rejected. The range
#: coder of nl-nearlossless-lpc / nl-dpcm reads zeros past the end by design (its flush drops them).
CUT_MUST_FAIL = {"nl-spike", "nl-nearlossless", "nl-wavelet", "nl-pca", "nl-ae", "nl-vq", "nl-cs"}
N_S, N_CH, N_FRAMES = 30, 8, 4


pytestmark = pytest.mark.usefixtures("nrt_stats")  # tests/conftest.py


def _signal() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(N_S * N_FRAMES)[:, None]
    x = 400 * np.sin(2 * np.pi * t / 50 + np.arange(N_CH)) + rng.normal(0, 30, (t.size, N_CH))
    x[45, 2] += 2500  # a spike: active frames in nl-spike, large residuals elsewhere
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _cases(cfg: dict) -> list[tuple[list[bytes], bytes, bool]]:
    """(good frames to decode first, bad payload, must raise) - 50 per codec."""
    enc = get_codec(cfg)
    x = _signal()
    frames = [enc.encode(x[i : i + N_S]) for i in range(0, x.shape[0], N_S)]
    rng = np.random.default_rng(1)
    must = cfg["id"] in CUT_MUST_FAIL
    cases: list[tuple[list[bytes], bytes, bool]] = []
    for f in range(2):  # the keyframe and the first predicted frame
        blob = frames[f]
        for cut in sorted({1, 2, 4, len(blob) // 4, len(blob) // 2, (3 * len(blob)) // 4, len(blob) - 2, len(blob) - 1}):
            # a cut inside the 5-byte keyframe header fails in Python already; keep those few too
            cases.append((frames[:f], blob[:cut], must or (f == 0 and cut < 5)))
    while len(cases) < 50:
        f = int(rng.integers(0, 2))
        b = bytearray(frames[f])
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        cut = len(b) if rng.random() < 0.5 else int(rng.integers(1, len(b)))
        cases.append((frames[:f], bytes(b[:cut]), False))
    return cases


def _run(cfg: dict, cases: list[tuple[list[bytes], bytes, bool]]) -> tuple[int, int, int]:
    rejected = 0
    for good, bad, must in cases:
        dec = get_codec(cfg)
        for g in good:
            dec.decode(g)
        try:
            y = dec.decode(bad)
        except CodecError:
            rejected += 1
            continue
        assert not must, f"{cfg['id']}: truncated payload of {len(bad)} bytes decoded without error"
        assert isinstance(y, np.ndarray) and y.ndim == 2
    return rejected, len(cases), sum(1 for *_, m in cases if m)


def _net() -> tuple[int, int]:
    gc.collect()
    st = rtsys.get_allocation_stats()
    return st.alloc - st.free, st.mi_alloc - st.mi_free


@pytest.mark.parametrize("cfg", LOSSY_CONFIGS, ids=[str(c["id"]) for c in LOSSY_CONFIGS])
def test_rejected_payloads_free_all_nrt_memory(cfg):
    if cfg["id"] == "nl-ae":
        pytest.importorskip("onnxruntime", reason="nl-ae needs onnxruntime")
    cases = _cases(cfg)
    _run(cfg, cases)  # warm-up: compile (or load) every kernel, fill module-level caches
    before = _net()
    rejected, total, must = _run(cfg, cases)
    after = _net()
    assert rejected >= must and rejected >= 10, f"{cfg['id']}: only {rejected}/{total} rejected"
    assert after == before, (f"{cfg['id']}: {rejected} rejected payloads leaked {after[0] - before[0]} NRT "
                             f"allocations ({after[1] - before[1]} meminfos)")
