"""Export a PPO policy to ONNX with its observation normalisation inside the graph.

Graph: obs float32 (batch, n) -> clip((obs - mean) / sqrt(var + eps), -clip, clip) -> MLP -> argmax ->
action int64 (batch,). ``check_parity`` runs torch and onnxruntime on recorded observations.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


class _Deterministic(torch.nn.Module):
    mean: torch.Tensor  # buffers (register_buffer)
    std: torch.Tensor

    def __init__(self, policy, mean: np.ndarray, var: np.ndarray, eps: float, clip: float) -> None:
        super().__init__()
        self.extractor = policy.mlp_extractor
        self.action_net = policy.action_net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.sqrt(var + eps), dtype=torch.float32))
        self.clip = float(clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.clamp((obs - self.mean) / self.std, -self.clip, self.clip)
        latent_pi, _ = self.extractor(x)
        return torch.argmax(self.action_net(latent_pi), dim=-1)


def torch_module(model, obs_rms_mean, obs_rms_var, eps: float = 1e-8, clip: float = 10.0) -> torch.nn.Module:
    m = _Deterministic(model.policy, np.asarray(obs_rms_mean), np.asarray(obs_rms_var), eps, clip)
    return m.eval()


def export_onnx(module: torch.nn.Module, n_obs: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, n_obs, dtype=torch.float32)
    torch.onnx.export(module, (dummy,), str(path), input_names=["obs"], output_names=["action"],
                      dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}}, opset_version=17, dynamo=False)
    log.info("exported %s", path)


def check_parity(module: torch.nn.Module, onnx_path: Path, observations: np.ndarray) -> float:
    """Fraction of recorded observations on which torch and onnxruntime pick the same action."""
    import onnxruntime as ort

    obs = np.asarray(observations, dtype=np.float32)
    with torch.no_grad():
        a_torch = module(torch.as_tensor(obs)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    a_onnx = sess.run(None, {"obs": obs})[0]
    return float(np.mean(a_torch == a_onnx))


def write_metadata(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=1))
