"""One command for the shipped result: train, export, evaluate on the held-out families, plot.

``python -m agents.reproduce`` retrains the shipped policy with the recipe recorded in
``agents/policies/rl_policy.json`` (seed, timesteps, envs, episode length, augmentation), exports it to
ONNX, checks how often it picks the same level as the shipped policy on the shipped parity observations
(both run through ``get_controller({"id": "rl", ...})``, so plain and residual policies compare alike),
evaluates it with every classic controller and the DP oracle on the held-out families (Mahimahi cellular
+ Akamai cellular loss) and prints the total wall time (budget: 30 min on 2 cores).

Output goes to ``runs/reproduce/`` so a reproduction never overwrites what ships; ``--install`` copies the
reproduced policy, its evaluation and plots over the shipped ones, but only when its held-out mean is not
below the shipped policy's (``--force`` overrides). ``--skip-train`` re-evaluates the shipped policy only.
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
from agents.train import POLICY_DIR, default_train_traces, residual_config, train

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ("mahimahi_cellular", "akamai_cellular_loss")
SHIPPED_FILES = ("rl_policy.onnx", "rl_policy.json", "rl_policy_parity_obs.npy")


def shipped_recipe(policy_dir: Path = POLICY_DIR) -> dict[str, Any]:
    """The training settings recorded with the shipped policy (what a reproduction must reuse)."""
    meta = json.loads((policy_dir / "rl_policy.json").read_text())
    res = meta.get("residual") or {}
    return {"seed": int(meta.get("seed", 0)),
            "timesteps": int(meta.get("timesteps_requested", meta.get("timesteps", 500_000))),
            "n_envs": int(meta.get("n_envs", 8)), "episode_s": float(meta.get("episode_s", 30.0)),
            "augment": meta.get("augmentation", "none") != "none",
            "residual": res.get("base", {}).get("id", "none") if res else "none",
            "max_offset": int(res.get("max_offset", 2)), "offset_penalty": float(meta.get("offset_penalty", 0.0)),
            "zero_bias": float(meta.get("zero_bias", 0.0))}


def action_agreement(policy_a: Path, policy_b: Path, obs: np.ndarray) -> float:
    """Fraction of observations on which two policies pick the same level, each run by the ``rl`` controller
    (onnxruntime, 1 thread) over the observations in order (residual policies recompute their base decision)."""
    from neurolink.control import get_controller

    def levels(path: Path) -> np.ndarray:
        ctl = get_controller({"id": "rl", "policy": str(path)})
        return np.array([ctl.act(o) for o in obs])

    return float(np.mean(levels(policy_a) == levels(policy_b)))


def shipped_mean(policy_dir: Path = POLICY_DIR) -> float | None:
    """Held-out mean of the shipped policy (its ``eval_heldout.json``), None if it was never evaluated."""
    path = policy_dir / "eval_heldout.json"
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["controllers"]["rl"]["mean"])


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
    ap.add_argument("--residual", default=recipe["residual"], metavar="BASE",
                    help="classic controller the policy offsets ('none' = plain policy; default: as recorded)")
    ap.add_argument("--max-offset", type=int, default=recipe["max_offset"])
    ap.add_argument("--offset-penalty", type=float, default=recipe["offset_penalty"])
    ap.add_argument("--zero-bias", type=float, default=recipe["zero_bias"])
    ap.add_argument("--max-minutes", type=float, default=24.0, help="training time cap (safety net)")
    ap.add_argument("--seeds", type=int, default=2, help="evaluation seeds per (trace, k)")
    ap.add_argument("--skip-train", action="store_true", help="only re-evaluate the shipped policy")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    ap.add_argument("--install", action="store_true",
                    help="copy the result over agents/policies and docs/ if its held-out mean >= the shipped one's")
    ap.add_argument("--force", action="store_true", help="with --install: install even if it scores lower")
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
              progress=False, augment=args.augment, curve_png=out / "rl_training.png", max_minutes=args.max_minutes,
              residual=residual_config(None if args.residual == "none" else args.residual, args.max_offset),
              offset_penalty=args.offset_penalty, zero_bias=args.zero_bias)
    agree = action_agreement(out / "rl_policy.onnx", POLICY_DIR / "rl_policy.onnx",
                             np.load(POLICY_DIR / "rl_policy_parity_obs.npy"))
    traces = [str(sd / "traces" / h) for h in HELDOUT]
    res = evaluate(traces, ALL_CONTROLLERS, args.seeds, EVAL_KS, args.episode_s, 0.1, str(out / "rl_policy.onnx"),
                   progress=False)
    keys = ("timesteps", "seed", "n_envs", "episode_s", "augment", "residual", "max_offset", "offset_penalty", "zero_bias")
    res["reproduction"] = {"recipe": {k: getattr(args, k) for k in keys},
                           "action_agreement_with_shipped": agree, "wall_minutes": (time.monotonic() - t0) / 60.0}
    print_table(res)
    (out / "eval_heldout.json").write_text(json.dumps(res, indent=1))
    plot_cdf(res, out / "controller_cdf.png")
    print(f"reproduced policy picks the shipped policy's level on {100 * agree:.1f} % of its parity observations")
    print(f"total wall time: {res['reproduction']['wall_minutes']:.1f} min -> {out}")
    if args.install:
        shipped = shipped_mean()
        mean = res["controllers"]["rl"]["mean"]
        if shipped is not None and mean < shipped and not args.force:
            print(f"NOT installed: held-out mean {mean:.3f} < shipped {shipped:.3f} (--force to install anyway)")
            return 1
        install(out, out, ROOT / "docs")
        print(f"installed into {POLICY_DIR} and docs/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
