"""One command for the shipped result: train, export, evaluate on the held-out families, plot.

``python -m agents.reproduce`` retrains the shipped policy with the recipe recorded in
``agents/policies/rl_policy.json`` (seed, timesteps, envs, episode length, augmentation), exports it to
ONNX, checks how often it picks the same level as the shipped policy on the shipped parity observations,
evaluates it with every classic controller and the DP oracle on the held-out families (Mahimahi cellular
+ Akamai cellular loss) and prints the total wall time (budget: 30 min on 2 cores).

Output goes to ``runs/reproduce/`` so a reproduction never overwrites what ships; ``--install`` copies the
reproduced policy, its evaluation and plots over the shipped ones. ``--skip-train`` re-evaluates the shipped
policy only.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluate import ALL_CONTROLLERS, evaluate, plot_cdf, print_table
from agents.train import POLICY_DIR, default_train_traces, train

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ("mahimahi_cellular", "akamai_cellular_loss")
SHIPPED_FILES = ("rl_policy.onnx", "rl_policy.json", "rl_policy_parity_obs.npy")


def shipped_recipe(policy_dir: Path = POLICY_DIR) -> dict[str, Any]:
    """The training settings recorded with the shipped policy (what a reproduction must reuse)."""
    meta = json.loads((policy_dir / "rl_policy.json").read_text())
    return {"seed": int(meta.get("seed", 0)),
            "timesteps": int(meta.get("timesteps_requested", meta.get("timesteps", 500_000))),
            "n_envs": int(meta.get("n_envs", 8)), "episode_s": float(meta.get("episode_s", 30.0)),
            "augment": meta.get("augmentation", "none") != "none"}


def action_agreement(policy_a: Path, policy_b: Path, obs: np.ndarray) -> float:
    """Fraction of observations on which two ONNX policies pick the same level (onnxruntime, 1 thread)."""
    import onnxruntime as ort

    def actions(path: Path) -> np.ndarray:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: obs.astype(np.float32)})[0]).ravel()

    return float(np.mean(actions(policy_a) == actions(policy_b)))


def install(out: Path, docs_src: Path, docs: Path) -> None:
    for name in (*SHIPPED_FILES, "eval_heldout.json"):
        shutil.copy2(out / name, POLICY_DIR / name)
    for png in ("controller_cdf.png", "rl_training.png"):
        if (docs_src / png).exists():
            shutil.copy2(docs_src / png, docs / png)


def main(argv: list[str] | None = None) -> int:
    from neurolink.data import shared_dir
    from sim.traces import EVAL_KS

    recipe = shipped_recipe()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", type=int, default=recipe["timesteps"])
    ap.add_argument("--seed", type=int, default=recipe["seed"])
    ap.add_argument("--n-envs", type=int, default=recipe["n_envs"])
    ap.add_argument("--episode-s", type=float, default=recipe["episode_s"])
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, default=recipe["augment"],
                    help="training augmentation (default: as recorded with the shipped policy)")
    ap.add_argument("--max-minutes", type=float, default=24.0, help="training time cap (safety net)")
    ap.add_argument("--seeds", type=int, default=2, help="evaluation seeds per (trace, k)")
    ap.add_argument("--skip-train", action="store_true", help="only re-evaluate the shipped policy")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    ap.add_argument("--install", action="store_true", help="copy the result over agents/policies and docs/")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not found (set NEUROLINK_SHARED)")
    t0 = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.skip_train:
        for name in SHIPPED_FILES:
            shutil.copy2(POLICY_DIR / name, out / name)
    else:
        train(default_train_traces(), out, args.timesteps, args.seed, args.n_envs, args.episode_s, None,
              progress=False, augment=args.augment, curve_png=out / "rl_training.png", max_minutes=args.max_minutes)
    agree = action_agreement(out / "rl_policy.onnx", POLICY_DIR / "rl_policy.onnx",
                             np.load(POLICY_DIR / "rl_policy_parity_obs.npy"))
    traces = [str(sd / "traces" / h) for h in HELDOUT]
    res = evaluate(traces, ALL_CONTROLLERS, args.seeds, EVAL_KS, args.episode_s, 0.1, str(out / "rl_policy.onnx"),
                   progress=False)
    res["reproduction"] = {"recipe": {k: getattr(args, k) for k in ("timesteps", "seed", "n_envs", "episode_s", "augment")},
                           "action_agreement_with_shipped": agree, "wall_minutes": (time.monotonic() - t0) / 60.0}
    print_table(res)
    (out / "eval_heldout.json").write_text(json.dumps(res, indent=1))
    plot_cdf(res, out / "controller_cdf.png")
    print(f"reproduced policy picks the shipped policy's level on {100 * agree:.1f} % of its parity observations")
    print(f"total wall time: {res['reproduction']['wall_minutes']:.1f} min -> {out}")
    if args.install:
        install(out, out, ROOT / "docs")
        print(f"installed into {POLICY_DIR} and docs/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
