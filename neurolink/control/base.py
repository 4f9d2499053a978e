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

    def reset(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Forget any state carried between intervals (start of a session or episode)."""

    def get_config(self) -> dict[str, Any]:
        return {"id": self.controller_id, **self.params}


def view(obs: np.ndarray) -> ObsView:
    return unpack(obs)


def best_fitting_level(rate: np.ndarray, budget: float) -> int:
    """Lowest (best-fidelity) level whose bitrate fits ``budget`` (stream units); the smallest otherwise."""
    fits = np.flatnonzero(rate <= budget)
    return int(fits[0]) if fits.size else int(np.argmin(rate))


def harmonic_mean(x: np.ndarray, n: int) -> float:
    """Harmonic mean of the last ``n`` samples (zeros included: an outage must pull the estimate down)."""
    x = np.asarray(x[-n:], dtype=np.float64)
    if x.size == 0:
        return 0.0
    return float(x.size / np.sum(1.0 / np.maximum(x, 1e-6)))
