"""Train the rate-control policy with PPO and ship it as ONNX (``python -m agents.train``).

Trains on ``pensieve_fcc_hsdpa_train`` only (mahimahi and akamai are held out for evaluation), with the
trace scaling rule's k drawn per episode, optional training augmentation (``sim.augment``), vectorised
envs, VecNormalize (its observation statistics go into the ONNX graph) and an evaluation callback.
``--residual rate`` trains a residual policy (an offset from the ``rate`` controller's decision,
:mod:`neurolink.control.residual`) instead of a plain one. Seeded: the same command gives the same policy.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
POLICY_DIR = Path(__file__).resolve().parent / "policies"


def default_train_traces() -> list[Path]:
    from neurolink.data import shared_dir

    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared/traces not found (set NEUROLINK_SHARED)")
    return [sd / "traces" / "pensieve_fcc_hsdpa_train"]


def make_vec_env(traces, n_envs: int, seed: int, episode_s: float, augment: bool = False, subproc: bool = False,
                 residual: dict | None = None, offset_penalty: float = 0.0):
    """``n_envs`` copies of RateControl-v0; ``augment`` adds :class:`sim.wrappers.TrainingAugmentation`,
    ``residual`` (a :class:`neurolink.control.residual.ResidualSpec` as JSON) :class:`sim.residual.ResidualAction`."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from neurolink.control.residual import ResidualSpec
    from sim.env import make_rate_control_env  # the entry point of neurolink/RateControl-v0
    from sim.residual import ResidualAction
    from sim.traces import Trace, load_traces
    from sim.wrappers import TrainingAugmentation

    already = isinstance(traces, (list, tuple)) and traces and all(isinstance(t, Trace) for t in traces)
    trs = list(traces) if already else load_traces(traces)  # parsed once, shared by every copy
    spec = ResidualSpec.from_json(residual) if residual else None

    def make():
        env = make_rate_control_env(trs, episode_s=episode_s)
        env = TrainingAugmentation(env) if augment else env
        return ResidualAction(env, spec, offset_penalty) if spec is not None else env

    cls = SubprocVecEnv if subproc and n_envs > 1 else DummyVecEnv  # same episodes either way (seeded per env)
    kwargs = {"start_method": "fork"} if cls is SubprocVecEnv else None
    return sb3_make(make, n_envs=n_envs, seed=seed, vec_env_cls=cls, vec_env_kwargs=kwargs)


def residual_config(base: str | None, max_offset: int = 2) -> dict | None:
    """ResidualSpec JSON for base controller id ``base`` with its shipped (tuned) defaults; None = plain."""
    if not base:
        return None
    from neurolink.control import get_controller
    from neurolink.control.residual import ResidualSpec

    return ResidualSpec(base=get_controller({"id": base}).get_config(), max_offset=max_offset).to_json()


def parity_levels(module, obs: np.ndarray, residual: dict | None) -> list[int]:
    """Levels torch picks on raw observations, applied in order the way :class:`RLPolicy` applies them."""
    import torch

    from neurolink.control.residual import ResidualMap, ResidualSpec

    with torch.no_grad():
        if residual is None:
            return module(torch.as_tensor(obs)).numpy().astype(int).tolist()
        rmap = ResidualMap(ResidualSpec.from_json(residual))
        out = []
        for o in obs:
            x = rmap.features(o)[None, :]
            out.append(rmap.level(int(module(torch.as_tensor(x)).numpy()[0])))
        return out


def time_limit_callback(max_minutes: float) -> Any:
    """Stop learning after ``max_minutes`` (a safety net on a busy machine; the metadata records the steps)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class _Stop(BaseCallback):
        def _on_training_start(self) -> None:
            self.t0 = time.time()

        def _on_step(self) -> bool:
            return time.time() - self.t0 < max_minutes * 60.0

    return _Stop()


def curve_recorder() -> Any:
    """SB3 callback: mean training-episode reward per rollout (the training curve, docs/rl_training.png)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class _Rec(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            if buf:
                self.points.append((int(self.num_timesteps), float(np.mean([e["r"] for e in buf]))))
                log.info("timesteps %d: mean training episode reward %.1f", *self.points[-1])

    return _Rec()


def plot_curve(train_pts, eval_pts, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train_pts:
        x, y = zip(*train_pts, strict=True)
        ax.plot(x, y, label="training episodes (last 100)")
    if eval_pts:
        x, y = zip(*eval_pts, strict=True)
        ax.plot(x, y, "o-", label="eval episodes (plain pensieve, deterministic)")
    ax.set_xlabel("timesteps (control intervals)")
    ax.set_ylabel("episode reward (30 s = 300 intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def train(traces, out_dir: Path, timesteps: int, seed: int, n_envs: int, episode_s: float, tensorboard: str | None,
          progress: bool = True, augment: bool = True, curve_png: Path | None = None, subproc: bool = True,
          max_minutes: float = 0.0, residual: dict | None = None, offset_penalty: float = 0.0,
          zero_bias: float = 0.0) -> dict:
    """PPO on the training traces; ``residual`` (ResidualSpec JSON) trains an offset policy around a classic
    controller, ``zero_bias`` adds that much to the action head's bias of offset 0 (start as the classic rule)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.export import check_parity, export_onnx, torch_module, write_metadata
    from neurolink.control.observation import HISTORY

    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env(traces, n_envs, seed, episode_s, augment, subproc, residual, offset_penalty),
                        norm_obs=True, norm_reward=True, gamma=0.98)
    eval_env = VecNormalize(make_vec_env(traces, 1, seed + 1000, episode_s, residual=residual), norm_obs=True,
                            norm_reward=False, training=False)
    eval_env.obs_rms = venv.obs_rms  # share the running statistics
    model = PPO("MlpPolicy", venv, seed=seed, n_steps=512, batch_size=256, n_epochs=5, gamma=0.98, gae_lambda=0.95,
                learning_rate=3e-4, ent_coef=0.005, clip_range=0.2, policy_kwargs={"net_arch": [128, 128]},
                tensorboard_log=tensorboard, verbose=0, device="cpu")
    if tensorboard is None:  # else SB3 makes an empty SB3-<date> folder in the temp dir on every run
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(None, []))
    if residual and zero_bias:
        action_net = model.policy.action_net
        assert isinstance(action_net, torch.nn.Linear)  # SB3's head for a Discrete action space
        with torch.no_grad():
            action_net.bias[int(residual["max_offset"])] += float(zero_bias)
    eval_log = tempfile.mkdtemp(prefix="nl_eval_")  # SB3 keeps the eval curve only when it has a log_path
    cb = EvalCallback(eval_env, n_eval_episodes=8, eval_freq=max(50_000 // n_envs, 1), deterministic=True, verbose=0,
                      log_path=eval_log)
    rec = curve_recorder()
    t0 = time.time()
    cbs = [cb, rec] + ([time_limit_callback(max_minutes)] if max_minutes > 0 else [])
    model.learn(total_timesteps=timesteps, callback=cbs, progress_bar=progress)
    train_s = time.time() - t0
    shutil.rmtree(eval_log, ignore_errors=True)
    eval_pts = [(int(t), float(np.mean(r))) for t, r in zip(cb.evaluations_timesteps, cb.evaluations_results, strict=True)]
    if curve_png is not None:
        curve_png.parent.mkdir(parents=True, exist_ok=True)
        plot_curve(rec.points, eval_pts, curve_png)
    obs_rms = venv.obs_rms
    assert isinstance(obs_rms, RunningMeanStd)  # Box observations: one statistics object, not a dict
    module = torch_module(model, obs_rms.mean, obs_rms.var, venv.epsilon, venv.clip_obs)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "rl_policy.onnx"
    obs_shape = venv.observation_space.shape
    assert obs_shape is not None
    n_in = int(obs_shape[0])
    export_onnx(module, n_in, onnx_path)
    # record observations from a rollout of the trained policy for the parity check
    def original_obs() -> np.ndarray:
        o = venv.get_original_obs()
        assert isinstance(o, np.ndarray)  # Box observations, not a dict
        return o

    recorded = []
    obs = original_obs()
    for _ in range(200):
        recorded.append(obs.copy())
        act, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
        _, _, _, _ = venv.step(act)
        obs = original_obs()
    feats = np.stack(recorded, axis=1).reshape(-1, n_in).astype(np.float32)  # env-major: each env's steps in order
    parity = check_parity(module, onnx_path, feats)  # on the ONNX input itself
    from sim.codec_model import load_codec_model

    n_levels = int(load_codec_model().n_levels)
    n_obs = n_in - (2 * n_levels if residual else 0)
    raw = feats[:512, :n_obs]  # what the daemon's controller gets (the residual features are recomputed from it)
    np.save(out_dir / "rl_policy_parity_obs.npy", raw)
    # the levels torch picks on the shipped parity observations (tests compare onnxruntime through get_controller)
    parity_actions = parity_levels(module, raw, residual)
    meta = {
        "env_id": "neurolink/RateControl-v0", "algorithm": "PPO (stable-baselines3)", "seed": seed,
        "timesteps": int(model.num_timesteps), "timesteps_requested": timesteps, "n_envs": n_envs, "episode_s": episode_s, "train_seconds": round(train_s, 1),
        "training_traces": [t.name if hasattr(t, "name") else str(t) for t in (traces if isinstance(traces, list) else [traces])],
        "trace_scaling": ("median_1s(trace) scaled to k x lossless stream bitrate, k log-uniform in [0.35, 3] per "
                          "episode" if augment else "median_1s(trace) scaled to k x lossless stream bitrate, "
                          "k in {0.5, 1, 2} per episode"),
        "augmentation": "sim/augment.py (time scaling, splicing, outages, delay jitter, Gilbert-Elliott loss; "
                        "training family only)" if augment else "none",
        "training_curve": {"train": rec.points, "eval": eval_pts},
        "n_levels": n_levels, "obs_size": n_obs, "onnx_input_size": n_in, "obs_history": HISTORY,
        "policy_kind": "residual" if residual else "plain",
        **({"residual": residual, "offset_penalty": offset_penalty, "zero_bias": zero_bias} if residual else {}),
        "obs_layout": "neurolink/control/observation.py (throughput, delay, delay_gradient, loss, backlog x H; "
                      "level one-hot, rate per level, fidelity per level x L)",
        "normalisation": "inside the graph: clip((obs - mean) / sqrt(var + eps), -10, 10)",
        "onnx_input": "obs float32 (batch, onnx_input_size)" + (" = obs + residual features" if residual else ""),
        "onnx_output": "offset index int64 (batch,)" if residual else "action int64 (batch,)",
        "parity_torch_vs_onnxruntime": parity,
        "parity_actions": parity_actions,
    }
    write_metadata(out_dir / "rl_policy.json", meta)
    log.info("trained in %.0f s; parity %.4f; wrote %s", train_s, parity, onnx_path)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", nargs="+", default=None, help="training trace dirs/files (default: pensieve)")
    ap.add_argument("--timesteps", type=int, default=1_500_000)
    ap.add_argument("--no-augment", action="store_true", help="train on the plain training traces")
    ap.add_argument("--dummy-vec", action="store_true", help="run the envs in this process (default: subprocesses)")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop training after this long (0: no limit)")
    ap.add_argument("--curve-png", type=Path, default=None, help="write the training curve (e.g. docs/rl_training.png)")
    ap.add_argument("--residual", default=None, metavar="BASE",
                    help="train an offset policy around this classic controller (e.g. rate); default: plain")
    ap.add_argument("--max-offset", type=int, default=2)
    ap.add_argument("--offset-penalty", type=float, default=0.0, help="training reward - this x |offset|")
    ap.add_argument("--zero-bias", type=float, default=0.0, help="initial action-head bias of offset 0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-envs", type=int, default=8)
    ap.add_argument("--episode-s", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=POLICY_DIR)
    ap.add_argument("--tensorboard", default=None, help="TensorBoard log dir (optional)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    traces = args.traces or default_train_traces()
    meta = train(traces, args.out, args.timesteps, args.seed, args.n_envs, args.episode_s, args.tensorboard,
                 progress=not args.no_progress, augment=not args.no_augment, curve_png=args.curve_png,
                 subproc=not args.dummy_vec, max_minutes=args.max_minutes,
                 residual=residual_config(args.residual, args.max_offset), offset_penalty=args.offset_penalty,
                 zero_bias=args.zero_bias)
    print(json.dumps({k: v for k, v in meta.items() if k != "training_curve"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
