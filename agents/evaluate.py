"""Evaluate every controller on every trace with the same seeds, normalised by the DP oracle.

``python -m agents.evaluate --traces DIR [DIR ...] [--controllers rl,mpc,bba,gcc,...] --json OUT.json [--png CDF.png]``

A case = (trace, k, seed): the trace scaled by THE rule (``sim.traces``: 1 s median = k x the stream's
lossless bitrate, k swept over EVAL_KS), one episode with a seeded stream, start offset and loss draw
that every controller and the oracle share. Score = controller reward / oracle reward on that case
(oracle = 1.0). Cases where the oracle itself cannot earn ``--min-oracle`` per interval (hopeless
outages) are excluded and counted. Reported per controller: mean, p5/p50/p95, bootstrap 95 % CI of the
mean, frames late or lost, mean delivered fidelity, level switches per minute; plus RL inference latency.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ALL_CONTROLLERS = ["rl", "mpc", "bba", "bola", "rate", "gcc", "fixed"]


def bootstrap_ci(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    if x.size == 0:
        return (float("nan"), float("nan"))
    means = x[rng.integers(0, x.size, size=(n, x.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def run_episode(env, actor, seed: int, options: dict) -> dict:
    obs, _ = env.reset(seed=seed, options=options)
    if hasattr(actor, "reset"):
        actor.reset()
    total, stats = 0.0, None
    for i in range(env.unwrapped.n_steps):
        a = actor.act(obs) if hasattr(actor, "act") else int(actor[i])
        obs, r, term, trunc, info = env.step(a)
        total += r
        if term or trunc:
            stats = info.get("episode_stats")
            break
    return {"reward": total, **(stats or {})}


def rl_latency_us(ctl, obs: np.ndarray, n: int = 3000) -> dict[str, float]:
    for _ in range(100):
        ctl.act(obs)
    ts = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        ctl.act(obs)
        ts[i] = time.perf_counter() - t
    us = ts * 1e6
    return {"p50": float(np.percentile(us, 50)), "p99": float(np.percentile(us, 99)), "max": float(us.max())}


def evaluate(traces: list[str], controllers: list[str], seeds: int, ks: tuple[float, ...], episode_s: float,
             min_oracle: float, policy: str | None, progress: bool = True) -> dict:
    from tqdm import tqdm

    from neurolink.control import get_controller
    from sim.env import RateControlEnv
    from sim.oracle import oracle_plan
    from sim.traces import load_traces
    from sim.wrappers import EpisodeStats, TraceScaling

    trs = load_traces(traces)
    inner = RateControlEnv(trs, episode_s=episode_s)  # env.unwrapped, typed
    env = EpisodeStats(TraceScaling(inner, ks=ks))
    ctls = {}
    for c in controllers:
        cfg = {"id": c}
        if c == "rl" and policy:
            cfg["policy"] = policy
        ctls[c] = get_controller(cfg)
    cases = [(ti, k, s) for ti in range(len(trs)) for k in ks for s in range(seeds)]
    rows, excluded = [], []
    for ti, k, s in tqdm(cases, desc="evaluate", disable=not progress):
        opts = {"trace": ti, "k": k}
        seed = 1000 * s + ti
        env.reset(seed=seed, options=opts)
        plan, o_val = oracle_plan(env)
        oracle = run_episode(env, plan, seed, opts)
        if abs(oracle["reward"] - o_val) > 1e-6 * max(1.0, abs(o_val)):
            log.warning("oracle replay %.6f differs from its plan value %.6f", oracle["reward"], o_val)
        case = {"trace": trs[ti].name, "k": k, "seed": seed, "oracle": oracle}
        if oracle["reward"] < min_oracle * inner.n_steps:
            excluded.append({"trace": trs[ti].name, "k": k, "seed": seed, "oracle_reward": oracle["reward"]})
            continue
        for name, ctl in ctls.items():
            case[name] = run_episode(env, ctl, seed, opts)
        rows.append(case)
    minutes = episode_s / 60.0
    out: dict = {"controllers": {}, "cases": len(rows), "excluded_cases": excluded, "traces": [str(t) for t in traces],
                 "ks": list(ks), "seeds": seeds, "episode_s": episode_s}
    for name in ["oracle", *controllers]:
        score = np.array([r[name]["reward"] / r["oracle"]["reward"] for r in rows])
        if score.size == 0:
            continue
        lo, hi = bootstrap_ci(score)
        out["controllers"][name] = {
            "mean": float(score.mean()), "p5": float(np.percentile(score, 5)), "p50": float(np.percentile(score, 50)),
            "p95": float(np.percentile(score, 95)), "ci95": [lo, hi], "n": int(score.size),
            "late_or_lost_frac": float(np.mean([r[name]["late_or_lost_frac"] for r in rows])),
            "late_frac": float(np.mean([r[name]["late_frac"] for r in rows])),
            "mean_fidelity": float(np.mean([r[name]["mean_fidelity"] for r in rows])),
            "switches_per_min": float(np.mean([r[name]["switches"] for r in rows]) / minutes),
            "scores": [round(float(v), 5) for v in score],
        }
    if "rl" in ctls:
        obs, _ = env.reset(seed=0, options={"trace": 0, "k": 1.0})
        out["rl_inference_us"] = rl_latency_us(ctls["rl"], obs)
    out["per_case"] = [{"trace": r["trace"], "k": r["k"], "seed": r["seed"],
                        **{n: round(r[n]["reward"], 4) for n in ["oracle", *controllers]}} for r in rows]
    return out


def print_table(res: dict) -> None:
    print(f"{'controller':<10} {'mean':>7} {'ci95':>17} {'p5':>7} {'p50':>7} {'p95':>7} {'late+lost':>9} {'fidelity':>8} {'sw/min':>7}")
    for name, s in sorted(res["controllers"].items(), key=lambda kv: -kv[1]["mean"]):
        print(f"{name:<10} {s['mean']:7.3f} [{s['ci95'][0]:6.3f}, {s['ci95'][1]:6.3f}] {s['p5']:7.3f} {s['p50']:7.3f} "
              f"{s['p95']:7.3f} {s['late_or_lost_frac']:9.4f} {s['mean_fidelity']:8.3f} {s['switches_per_min']:7.1f}")
    print(f"cases: {res['cases']} (excluded as hopeless for the oracle: {len(res['excluded_cases'])})")
    if "rl_inference_us" in res:
        u = res["rl_inference_us"]
        print(f"rl inference (onnxruntime, 1 thread): p50 {u['p50']:.1f} us, p99 {u['p99']:.1f} us")


def plot_cdf(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in res["controllers"].items():
        x = np.sort(s["scores"])
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=f"{name} ({s['mean']:.3f})")
    ax.set_xlabel("reward / oracle reward (per case)")
    ax.set_ylabel("CDF")
    ax.set_xlim(left=max(-1.0, min(min(s["scores"]) for s in res["controllers"].values())))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    from sim.traces import EVAL_KS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", nargs="+", required=True)
    ap.add_argument("--controllers", default=",".join(ALL_CONTROLLERS))
    ap.add_argument("--policy", default=None, help="ONNX policy for 'rl' (default: the shipped one)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--ks", default=",".join(str(k) for k in EVAL_KS))
    ap.add_argument("--episode-s", type=float, default=30.0)
    ap.add_argument("--min-oracle", type=float, default=0.1, help="exclude cases whose oracle earns less per interval")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctls = [c.strip() for c in args.controllers.split(",") if c.strip()]
    ks = tuple(float(k) for k in args.ks.split(","))
    res = evaluate(args.traces, ctls, args.seeds, ks, args.episode_s, args.min_oracle, args.policy,
                   progress=not args.no_progress)
    print_table(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    if args.png:
        plot_cdf(res, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
