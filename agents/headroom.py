"""How much of a controller's gap to the oracle is forecasting? (``python -m agents.headroom --traces DIR ...``)

Scores, like ``agents.evaluate`` (reward / oracle reward per case, same cases and seeds), the ``rate`` rule
twice: as shipped (harmonic-mean forecast) and fed the TRUE mean capacity of the coming interval (not
causal). The clairvoyant version bounds what any better one-interval forecast can buy a greedy rule;
what remains up to the oracle is sub-interval variability and multi-interval planning with the future.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from agents.evaluate import bootstrap_ci, run_episode
    from neurolink.control import get_controller
    from neurolink.control.base import best_fitting_level, view
    from sim.env import RateControlEnv
    from sim.oracle import oracle_plan
    from sim.traces import EVAL_KS, load_traces
    from sim.wrappers import EpisodeStats, TraceScaling

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", nargs="+", required=True)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    trs = load_traces(args.traces)
    inner = RateControlEnv(trs, episode_s=30.0)  # env.unwrapped, typed
    env = EpisodeStats(TraceScaling(inner, ks=EVAL_KS))

    class Clairvoyant:
        """The rate rule with the true mean capacity of the interval about to be sent (reads the env)."""

        def reset(self) -> None:
            pass

        def act(self, obs: np.ndarray) -> int:
            e = inner
            t0 = e.t * e.frames
            cap = e.link.cap[t0 : t0 + e.frames].sum() * 8000.0 / e.frames / e.stream.stream_bps
            v = view(obs)
            return best_fitting_level(v.rate, cap - v.backlog[-1])

    rate = get_controller({"id": "rate"})
    rows = []
    for ti in range(len(trs)):
        for k in EVAL_KS:
            for s in range(args.seeds):
                seed, opts = 1000 * s + ti, {"trace": ti, "k": k}
                env.reset(seed=seed, options=opts)
                _, val = oracle_plan(env)
                if val < 0.1 * inner.n_steps:  # the evaluator's hopeless-case rule
                    continue
                rows.append((run_episode(env, Clairvoyant(), seed, opts)["reward"] / val,
                             run_episode(env, rate, seed, opts)["reward"] / val))
    a = np.array(rows)
    out: dict[str, dict[str, Any]] = {name: {"mean": float(a[:, i].mean()), "ci95": list(bootstrap_ci(a[:, i])), "n": len(a)}
           for i, name in enumerate(["rate_clairvoyant_1_interval", "rate"])}
    for name, res in out.items():
        print(f"{name:<28} {res['mean']:.3f} [{res['ci95'][0]:.3f}, {res['ci95'][1]:.3f}] n={res['n']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
