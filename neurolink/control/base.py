"""The controller contract: ``act(obs) -> level`` every control interval, ``reset()`` between sessions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from neurolink.control.observation import ObsView, unpack


class Controller(ABC):
    """A rate controller. Construct through ``neurolink.control.get_controller({"id": ..., **params})``."""

    controller_id: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    @abstractmethod
    def act(self, obs: np.ndarray) -> int:
        """Pick the ladder level for the next interval from the documented observation vector."""

    def act_view(self, v: ObsView, obs: np.ndarray) -> int:
        """:meth:`act` for a caller that has unpacked ``obs`` already (a residual policy runs its base
        controller on every interval: one unpack instead of two). Override where it saves work."""
        return self.act(obs)

    def reset(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Forget any state carried between intervals (start of a session or episode)."""

    def get_config(self) -> dict[str, Any]:
        return {"id": self.controller_id, **self.params}


def view(obs: np.ndarray) -> ObsView:
    return unpack(obs)


def best_fitting_level(rate: np.ndarray, budget: float) -> int:
    """Lowest (best-fidelity) level whose bitrate fits ``budget`` (stream units); the smallest otherwise."""
    fits = rate <= budget  # (array methods: the numpy functions cost microseconds on 8 values)
    return int(fits.argmax()) if fits.any() else int(rate.argmin())


def harmonic_mean(x: np.ndarray, n: int) -> float:
    """Harmonic mean of the last ``n`` samples (zeros included: an outage must pull the estimate down)."""
    x = np.asarray(x[-n:], dtype=np.float64)
    if x.size == 0:
        return 0.0
    return float(x.size / (1.0 / np.maximum(x, 1e-6)).sum())
