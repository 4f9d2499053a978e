"""One command for the shipped result: train, export, evaluate on the held-out families, plot.

``python -m agents.reproduce`` (< 30 min on 2 cores): PPO on the augmented TRAINING family only
(``agents.train``), ONNX export into ``agents/policies/``, then ``agents.evaluate`` on the held-out
families (Mahimahi cellular + Akamai cellular loss) with every controller and the DP oracle, writing
``agents/policies/eval_heldout.json``, ``docs/controller_cdf.png`` and ``docs/rl_training.png``.
``--skip-train`` only re-evaluates the shipped policy.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from agents.evaluate import ALL_CONTROLLERS, evaluate, plot_cdf, print_table
from agents.train import POLICY_DIR, default_train_traces, train

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ("mahimahi_cellular", "akamai_cellular_loss")
DEFAULT_TIMESTEPS = 2_000_000


def main(argv: list[str] | None = None) -> int:
    from neurolink.data import shared_dir
    from sim.traces import EVAL_KS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", type=int, default=DEFAULT_TIMESTEPS)
    ap.add_argument("--max-minutes", type=float, default=24.0, help="training time cap (safety net)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=2, help="evaluation seeds per (trace, k)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--out", type=Path, default=POLICY_DIR)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not found (set NEUROLINK_SHARED)")
    if not args.skip_train:
        train(default_train_traces(), args.out, args.timesteps, args.seed, 8, 30.0, None, progress=False,
              augment=True, curve_png=args.docs / "rl_training.png", max_minutes=args.max_minutes)
    traces = [str(sd / "traces" / h) for h in HELDOUT]
    res = evaluate(traces, ALL_CONTROLLERS, args.seeds, EVAL_KS, 30.0, 0.1, str(args.out / "rl_policy.onnx"),
                   progress=False)
    print_table(res)
    (args.out / "eval_heldout.json").write_text(json.dumps(res, indent=1))
    plot_cdf(res, args.docs / "controller_cdf.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
