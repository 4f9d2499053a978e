"""The learned controller: an ONNX policy (observation normalisation baked in) run with onnxruntime.

The graph takes ``obs`` float32 (batch, n) and returns ``action`` int64 (batch,). Default policy: the
one shipped in ``agents/policies/rl_policy.onnx``. Two kinds, told apart by the metadata next to the
model (``<policy>.json``):

- plain (no ``residual`` key, the older policies): the action IS the level;
- residual (``"residual": {"mode": "residual", "base": {...}, "max_offset": m}``): the classic base
  controller decides from the same observation, the policy sees obs + that decision and returns an
  offset in the ladder's rank order (:mod:`neurolink.control.residual`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neurolink.control.base import Controller
from neurolink.control.residual import ResidualMap, ResidualSpec
from neurolink.errors import ConfigError


def default_policy_path() -> Path:
    try:
        import agents

        return Path(agents.__file__).resolve().parent / "policies" / "rl_policy.onnx"
    except Exception:
        return Path(__file__).resolve().parents[2] / "agents" / "policies" / "rl_policy.onnx"


def load_residual_spec(policy: Path) -> ResidualSpec | None:
    """The residual spec recorded next to ``policy`` (``<stem>.json``), or None for a plain policy."""
    meta_path = policy.with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("policy", f"cannot read policy metadata {meta_path}: {exc}") from None
    res = meta.get("residual")
    return ResidualSpec.from_json(res) if res else None


class RLPolicy(Controller):
    controller_id = "rl"

    def __init__(self, policy: str | None = None, threads: int = 1) -> None:
        path = Path(policy) if policy else default_policy_path()
        if not path.is_file():
            raise ConfigError("policy", f"ONNX policy not found: {path}")
        super().__init__(policy=str(path))
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ConfigError("policy", f"cannot load ONNX model {path}: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.n_obs = self.session.get_inputs()[0].shape[-1]
        spec = load_residual_spec(path)
        self.residual = ResidualMap(spec) if spec is not None else None

    def reset(self) -> None:
        if self.residual is not None:
            self.residual.reset()

    def act(self, obs: np.ndarray) -> int:
        x = self.residual.features(obs) if self.residual is not None else obs
        x = np.asarray(x, dtype=np.float32).reshape(1, -1)
        if isinstance(self.n_obs, int) and x.shape[1] != self.n_obs:
            raise ConfigError("observation", f"policy expects {self.n_obs} values, got {x.shape[1]}")
        a = int(self.session.run(None, {self.input_name: x})[0].reshape(-1)[0])
        return self.residual.level(a) if self.residual is not None else a
