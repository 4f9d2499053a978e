"""THE reward of neurolink/RateControl-v0 (constants in ``sim/data/reward.toml`` = ``configs/reward.toml``).

Per control interval of N frames sent at ladder level ``l`` (previous level ``l_prev``)::

    r = (n_ok * fidelity[l] - lam * n_bad) / N  -  mu * |l - l_prev|

``n_ok``: frames delivered with added delay (queueing + serialisation) <= ``deadline_ms``;
``n_bad = N - n_ok - n_channel``: frames late or dropped by the bottleneck buffer (congestion: the
controller's doing). Frames lost on the channel (random / bursty radio loss) deliver no fidelity but are
not penalised: no level choice avoids them, and penalising them only adds noise and makes the oracle's
reward (the evaluation's denominator) go negative on lossy traces.
``fidelity[l]`` is the measured per-level score in [0, 1] (``sim.codec_model.fidelity_score``).
The oracle (``sim/oracle.py``) evaluates the same formula inside numba; a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

from neurolink.errors import ConfigError

DEFAULT_REWARD_PATH = Path(__file__).resolve().parent / "data" / "reward.toml"


@dataclass(frozen=True)
class RewardConfig:
    lam: float = 1.0
    mu: float = 0.01
    deadline_ms: float = 100.0
    interval_ms: int = 100
    buffer_ms: float = 500.0
    default_delay_ms: float = 20.0
    episode_s: float = 60.0


def load_reward_config(path: str | Path | None = None) -> RewardConfig:
    p = Path(path) if path is not None else DEFAULT_REWARD_PATH
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("reward", f"file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("reward", f"invalid TOML: {exc}", source=str(p)) from None
    flat = {**data.get("reward", {}), **data.get("network", {})}
    known = set(RewardConfig.__dataclass_fields__)
    for key, val in flat.items():
        if key not in known:
            raise ConfigError(key, f"unknown key (expected one of {sorted(known)})", source=str(p))
        if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
            raise ConfigError(key, f"expected a number >= 0, got {val!r}", source=str(p))
    cfg = RewardConfig(**flat)
    if cfg.interval_ms < 1 or int(cfg.interval_ms) != cfg.interval_ms:
        raise ConfigError("interval_ms", f"expected a positive integer, got {cfg.interval_ms!r}", source=str(p))
    return cfg


def step_reward(n_ok: int, n_channel: int, n_frames: int, fidelity_level: float, level: int, prev_level: int,
                cfg: RewardConfig) -> float:
    """The reward formula above (one interval)."""
    n_bad = n_frames - n_ok - n_channel
    return (n_ok * fidelity_level - cfg.lam * n_bad) / n_frames - cfg.mu * abs(level - prev_level)
