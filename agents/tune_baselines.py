"""Tune the classic controllers' parameters on the TRAINING traces only (``python -m agents.tune_baselines``).

Small grids, scored like the evaluator (reward / oracle reward, mean over cases). The winners are the
defaults in ``neurolink/control/classic.py`` and ``mpc.py``; rerun after changing the env or reward.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluate import run_episode

GRIDS: dict[str, dict[str, list[Any]]] = {
    "rate": {"safety": [0.7, 0.8, 0.9, 1.0], "drain_intervals": [1.0, 2.0, 4.0]},
    "bba": {"reservoir": [0.0, 0.1, 0.3], "cushion": [0.5, 1.0, 2.0, 4.0]},
    "bola": {"V": [0.2, 0.5, 1.0, 2.0], "gamma": [0.0, 0.2, 0.5]},
    "mpc": {"robust": [True, False], "window": [3, 5]},
    "gcc": {"threshold": [0.02, 0.05, 0.1], "beta": [0.8, 0.9], "increase": [1.05, 1.1]},
}


def main(argv: list[str] | None = None) -> int:
    import gymnasium as gym
    from tqdm import tqdm

    from agents.train import default_train_traces
    from neurolink.control import get_controller
    from sim.env import RateControlEnv
    from sim.oracle import oracle_plan
    from sim.traces import TRAIN_KS, load_traces, trace_files
    from sim.wrappers import EpisodeStats, TraceScaling, TrainingAugmentation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-traces", type=int, default=12)
    ap.add_argument("--episode-s", type=float, default=30.0)
    ap.add_argument("--json", type=Path, default=Path("tune_baselines.json"))
    ap.add_argument("--augment", action="store_true",
                    help="tune on the augmented training distribution the RL policy is trained on (sim/augment.py)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    files = trace_files(default_train_traces())
    pick = np.random.default_rng(0).choice(len(files), size=min(args.n_traces, len(files)), replace=False)
    trs = load_traces([files[i] for i in sorted(pick)])
    inner = RateControlEnv(trs, episode_s=args.episode_s)  # env.unwrapped, typed
    base: gym.Env = TraceScaling(inner, ks=TRAIN_KS)
    env = EpisodeStats(TrainingAugmentation(base) if args.augment else base)
    cases = []
    for ti in range(len(trs)):
        for k in TRAIN_KS:
            opts, seed = {"trace": ti, "k": k}, 7 + ti + (int(100 * k) if args.augment else 0)
            env.reset(seed=seed, options=opts)
            plan, val = oracle_plan(env)
            if val > 0.1 * inner.n_steps:
                cases.append((seed, opts, val))
    results: dict[str, list[dict[str, Any]]] = {}
    configs = [(cid, dict(zip(g, vals, strict=True))) for cid, g in GRIDS.items() for vals in itertools.product(*g.values())]
    for cid, params in tqdm(configs, desc="tune"):
        ctl = get_controller({"id": cid, **params})
        score = np.mean([run_episode(env, ctl, s, o)["reward"] / v for s, o, v in cases])
        results.setdefault(cid, []).append({"params": params, "score": float(score)})
    best = {cid: max(rs, key=lambda r: r["score"]) for cid, rs in results.items()}
    for cid, b in best.items():
        print(f"{cid:<6} {b['score']:.3f} {b['params']}")
    args.json.write_text(json.dumps({"best": best, "all": results, "cases": len(cases)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
