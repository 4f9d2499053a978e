"""The rate controllers on a real network trace in the simulator: the shipped RL policy (ONNX, run by
onnxruntime, as the daemon runs it) beside classic ones, scored against the offline-optimal oracle.

    .venv/bin/python examples/rate_controller_in_sim.py [--trace FILE] [--seconds 30]

The trace (Mahimahi cellular: a family the policy never saw in training) is scaled onto the stream's
bitrate by the one rule training and evaluation share (sim.wrappers.TraceScaling); the reward is the one
in configs/reward.toml. `python -m agents.evaluate` does this for every trace, controller and seed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from agents.evaluate import run_episode
from neurolink.control import get_controller
from neurolink.demo import default_trace
from sim.env import RateControlEnv
from sim.oracle import oracle_plan
from sim.traces import load_traces
from sim.wrappers import EpisodeStats, TraceScaling


def a_trace() -> Path:
    """The demo's real trace, or (no ../shared) a synthetic two-column one: time_s, Mbit/s."""
    found = default_trace()
    if found is not None:
        return found
    t = np.arange(0, 120.0, 0.5)
    mbps = np.clip(3 + np.cumsum(np.random.default_rng(0).normal(0, 0.4, t.size)), 0.2, 10)
    path = Path(tempfile.mkdtemp()) / "synthetic.tsv"
    path.write_text("".join(f"{a:.1f}\t{b:.3f}\n" for a, b in zip(t, mbps, strict=True)))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=30.0, help="episode length")
    args = ap.parse_args(argv)
    trace = args.trace or a_trace()
    inner = RateControlEnv(load_traces([str(trace)]), episode_s=args.seconds)
    env = EpisodeStats(TraceScaling(inner, ks=(1.0,)))  # median capacity = the lossless bitrate
    print(f"trace {trace.name}, {args.seconds:g} s episodes, capacity scaled to 1x the lossless bitrate")
    controllers = {name: get_controller({"id": name}) for name in ("rl", "mpc", "bba", "rate")}
    controllers["fixed lossless"] = get_controller({"id": "fixed", "level": 0})
    for seed in (0, 1):
        opts = {"trace": 0, "k": 1.0}
        env.reset(seed=seed, options=opts)
        _, best = oracle_plan(env)
        print(f"seed {seed}: oracle reward {best:.1f}")
        for name, ctl in controllers.items():
            r = run_episode(env, ctl, seed, opts)
            share = r["reward"] / best if best > 0 else float("nan")
            print(f"  {name:15s} reward {r['reward']:8.1f}  ({share:5.2f} of the oracle)  frames late or lost "
                  f"{100 * r['late_or_lost_frac']:5.1f} %  mean fidelity {r['mean_fidelity']:.3f}  "
                  f"level switches {r['switches']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
