"""Every controller on edge observations, the registry, and the shared observation builder."""

from __future__ import annotations

import numpy as np
import pytest

from neurolink.control import get_controller, list_controllers
from neurolink.control.link_shaper import LinkShaper
from neurolink.control.observation import ObservationBuilder, obs_size, unpack
from neurolink.errors import ConfigError

L = 8
BPL = np.linspace(1000, 300, L)  # bytes per 1 ms frame
STREAM = 8e6  # = BPL[0] * 8 / 1 ms


def _obs(thr, backlog_ms, loss=0.0, delay=20.0, grad=0.0, level=0, steps=8):
    b = ObservationBuilder(L)
    o = None
    for _ in range(steps):
        o = b.update(thr, delay, grad, loss, backlog_ms, level, BPL, STREAM, np.linspace(1, 0.4, L))
    return o


CLASSIC = [{"id": "fixed", "level": 3}, {"id": "rate"}, {"id": "bba"}, {"id": "bola"}, {"id": "mpc"}, {"id": "gcc"}]


def test_registry_lists_all():
    assert {"fixed", "rate", "bba", "bola", "mpc", "gcc", "rl"} <= set(list_controllers())
    with pytest.raises(ConfigError, match="unknown controller"):
        get_controller({"id": "nope"})
    with pytest.raises(ConfigError):
        get_controller({"id": "rate", "bogus": 1})


@pytest.mark.parametrize("cfg", CLASSIC + [{"id": "rl"}], ids=lambda c: c["id"])
@pytest.mark.parametrize("case", ["zero_throughput", "huge_backlog", "plenty", "total_loss", "nan_inf"])
def test_act_on_edge_observations(cfg, case):
    obs = {
        "zero_throughput": _obs(0.0, 0.0),
        "huge_backlog": _obs(STREAM, 1e9, delay=1e6, grad=1e5),
        "plenty": _obs(100 * STREAM, 0.0),
        "total_loss": _obs(STREAM, 50.0, loss=1.0),
        "nan_inf": _obs(float("inf"), float("nan"), delay=float("-inf")),
    }[case]
    ctl = get_controller(cfg)
    ctl.reset()
    a = ctl.act(obs)
    assert isinstance(a, int) and 0 <= a < L
    if cfg["id"] in ("rate", "mpc", "bba", "bola") and case == "huge_backlog":
        assert a == L - 1  # drain: the smallest level
    if cfg["id"] in ("rate", "mpc") and case == "plenty":
        assert a == 0


def test_builder_layout_and_scale_free():
    o1 = _obs(4e6, 30.0)
    b = ObservationBuilder(L)
    for _ in range(8):
        o2 = b.update(4e9, 20.0, 0.0, 0.0, 30.0, 0, BPL * 1000, STREAM * 1000, np.linspace(1, 0.4, L))
    assert o1.shape == (obs_size(L),) and o1.dtype == np.float32
    np.testing.assert_allclose(o1, o2, rtol=1e-6)  # same link relative to the stream -> same observation
    v = unpack(o1)
    assert v.n_levels == L and v.throughput[-1] == pytest.approx(0.5) and v.rate[0] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="bytes_per_level"):
        b.update(1.0, 0, 0, 0, 0, 0, BPL[:3], STREAM)


def test_link_shaper_delivers_and_drops(tmp_path):
    p = tmp_path / "t.log"
    p.write_text("0\t1.0\n1\t1.0\n")
    s = LinkShaper(p, stream_bps=8e6, k=1.0, seed=0)  # 8 Mbit/s link = 1000 bytes per ms
    t = s.admit(1000, 10.0)
    assert t == pytest.approx(10.0 + 0.001 + 0.020)  # 1 ms serialisation + 20 ms default propagation
    assert s.admit(1000, 10.0) == pytest.approx(10.0 + 0.002 + 0.020)  # queued behind the first
    drops = sum(s.admit(10_000, 10.0) is None for _ in range(1000))
    assert drops > 0 and s.dropped == drops  # the finite buffer overflows


def test_rl_loads_plain_and_residual_metadata(tmp_path):
    """``rl`` reads ``<policy>.json``: no ``residual`` key -> plain policy; a residual spec -> base + offset."""
    from neurolink.control.residual import ResidualSpec
    from neurolink.control.rl import load_residual_spec

    onnx = tmp_path / "p.onnx"
    assert load_residual_spec(onnx) is None  # no metadata at all: plain
    onnx.with_suffix(".json").write_text('{"obs_size": 64}')
    assert load_residual_spec(onnx) is None  # old plain policies stay loadable
    spec = ResidualSpec(base={"id": "rate", "window": 5}, max_offset=1)
    import json

    onnx.with_suffix(".json").write_text(json.dumps({"residual": spec.to_json()}))
    assert load_residual_spec(onnx) == spec
    onnx.with_suffix(".json").write_text(json.dumps({"residual": {"mode": "plain"}}))
    with pytest.raises(ConfigError, match="residual"):
        load_residual_spec(onnx)
