"""Train the rate-control policy with PPO and ship it as ONNX (``python -m agents.train``).

Trains on ``pensieve_fcc_hsdpa_train`` only (mahimahi and akamai are held out for evaluation), with the
trace scaling rule's k drawn per episode from {0.5, 1, 2}, bursty loss from the real Akamai profiles,
vectorised envs, VecNormalize (its observation statistics go into the ONNX graph), an evaluation
callback and a progress bar. Seeded: the same command reproduces the shipped policy on the same machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
POLICY_DIR = Path(__file__).resolve().parent / "policies"


def default_train_traces() -> list[Path]:
    from neurolink.data import shared_dir

    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared/traces not found (set NEUROLINK_SHARED)")
    return [sd / "traces" / "pensieve_fcc_hsdpa_train"]


def make_vec_env(traces, n_envs: int, seed: int, episode_s: float):
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env as sb3_make
    from stable_baselines3.common.vec_env import DummyVecEnv

    import sim  # noqa: F401  (registers the env)

    return sb3_make(lambda: gym.make(sim.ENV_ID, traces=traces, episode_s=episode_s), n_envs=n_envs, seed=seed,
                    vec_env_cls=DummyVecEnv)


def train(traces, out_dir: Path, timesteps: int, seed: int, n_envs: int, episode_s: float, tensorboard: str | None,
          progress: bool = True) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.export import check_parity, export_onnx, torch_module, write_metadata
    from neurolink.control.observation import HISTORY

    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env(traces, n_envs, seed, episode_s), norm_obs=True, norm_reward=True, gamma=0.98)
    eval_env = VecNormalize(make_vec_env(traces, 1, seed + 1000, episode_s), norm_obs=True, norm_reward=False,
                            training=False)
    eval_env.obs_rms = venv.obs_rms  # share the running statistics
    model = PPO("MlpPolicy", venv, seed=seed, n_steps=512, batch_size=256, n_epochs=5, gamma=0.98, gae_lambda=0.95,
                learning_rate=3e-4, ent_coef=0.005, clip_range=0.2, policy_kwargs={"net_arch": [128, 128]},
                tensorboard_log=tensorboard, verbose=0, device="cpu")
    cb = EvalCallback(eval_env, n_eval_episodes=4, eval_freq=max(20_000 // n_envs, 1), deterministic=True, verbose=1)
    t0 = time.time()
    model.learn(total_timesteps=timesteps, callback=cb, progress_bar=progress)
    train_s = time.time() - t0
    module = torch_module(model, venv.obs_rms.mean, venv.obs_rms.var, venv.epsilon, venv.clip_obs)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "rl_policy.onnx"
    n_obs = int(venv.observation_space.shape[0])
    export_onnx(module, n_obs, onnx_path)
    # record observations from a rollout of the trained policy for the parity check
    rec = []
    obs = venv.get_original_obs()
    for _ in range(200):
        rec.append(obs.copy())
        act, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
        _, _, _, _ = venv.step(act)
        obs = venv.get_original_obs()
    rec = np.concatenate(rec).astype(np.float32)
    np.save(out_dir / "rl_policy_parity_obs.npy", rec[:512])
    parity = check_parity(module, onnx_path, rec)
    n_levels = int(venv.action_space.n)
    meta = {
        "env_id": "neurolink/RateControl-v0", "algorithm": "PPO (stable-baselines3)", "seed": seed,
        "timesteps": timesteps, "n_envs": n_envs, "episode_s": episode_s, "train_seconds": round(train_s, 1),
        "training_traces": [str(Path(t).name) for t in (traces if isinstance(traces, list) else [traces])],
        "trace_scaling": "median_1s(trace) scaled to k x lossless stream bitrate, k in {0.5, 1, 2} per episode",
        "n_levels": n_levels, "obs_size": n_obs, "obs_history": HISTORY,
        "obs_layout": "neurolink/control/observation.py (throughput, delay, delay_gradient, loss, backlog x H; "
                      "level one-hot, rate per level, fidelity per level x L)",
        "normalisation": "inside the graph: clip((obs - mean) / sqrt(var + eps), -10, 10)",
        "onnx_input": "obs float32 (batch, obs_size)", "onnx_output": "action int64 (batch,)",
        "parity_torch_vs_onnxruntime": parity,
    }
    write_metadata(out_dir / "rl_policy.json", meta)
    log.info("trained in %.0f s; parity %.4f; wrote %s", train_s, parity, onnx_path)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", nargs="+", default=None, help="training trace dirs/files (default: pensieve)")
    ap.add_argument("--timesteps", type=int, default=500_000)
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
                 progress=not args.no_progress)
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
