"""Extract the bursty-loss profiles used for traces without their own loss (``python -m sim.fit_loss_profiles``).

From each Akamai cellular profile (``../shared/traces/akamai_cellular_loss``) keep the empirical gaps
between loss bursts and the loss percentage of each burst; the simulator replays them as a semi-Markov
Gilbert-Elliott process (``sim.network.gilbert_elliott_loss_prob``). Writes ``sim/data/loss_profiles.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from sim.traces import load_trace, trace_files

log = logging.getLogger(__name__)
DEFAULT_PROFILES_PATH = Path(__file__).resolve().parent / "data" / "loss_profiles.json"


def fit_profiles(folder: Path) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for f in trace_files(folder):
        tr = load_trace(f)
        lw = tr.loss_windows if tr.loss_windows is not None else np.zeros((0, 3))
        if len(lw) == 0:
            out[f.stem] = {"gaps_s": [], "loss_pct": []}
            continue
        ends = np.concatenate([[0.0], lw[:-1, 1]])
        gaps = lw[:, 0] - ends
        out[f.stem] = {"gaps_s": [round(float(g), 4) for g in gaps], "loss_pct": [round(float(p) * 100, 4) for p in lw[:, 2]]}
        log.info("%s: %d bursts, mean gap %.2f s, mean loss %.1f %%", f.stem, len(gaps), gaps.mean(), lw[:, 2].mean() * 100)
    return out


def load_loss_profiles(path: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    p = Path(path) if path is not None else DEFAULT_PROFILES_PATH
    data = json.loads(p.read_text())
    return {k: (np.asarray(v["gaps_s"], float), np.asarray(v["loss_pct"], float)) for k, v in sorted(data.items())}


def main(argv: list[str] | None = None) -> int:
    from neurolink.data import shared_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sd = shared_dir()
    ap.add_argument("--akamai", type=Path, default=(sd / "traces" / "akamai_cellular_loss") if sd else None)
    ap.add_argument("--out", type=Path, default=DEFAULT_PROFILES_PATH)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.akamai is None:
        log.error("no --akamai folder and ../shared not found")
        return 2
    args.out.write_text(json.dumps(fit_profiles(args.akamai), indent=1))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
