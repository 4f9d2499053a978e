"""Rate controllers behind one interface: ``get_controller({"id": ..., **params}).act(obs) -> level``.

Built-in ids: fixed, rate, bba, bola, mpc, gcc, rl. The observation is built by
``neurolink.control.observation.ObservationBuilder`` (shared by the simulator and the daemon).
"""

from __future__ import annotations

from typing import Any

from neurolink.control.base import Controller
from neurolink.control.classic import BBA, GCC, Bola, Fixed, RateBased
from neurolink.control.mpc import RobustMPC
from neurolink.control.observation import ObservationBuilder
from neurolink.errors import ConfigError

_REGISTRY: dict[str, type[Controller]] = {}


def register_controller(cls: type[Controller]) -> type[Controller]:
    cid = getattr(cls, "controller_id", None)
    if not isinstance(cid, str) or not cid:
        raise ConfigError("controller_id", f"{cls.__name__} has no controller_id")
    _REGISTRY[cid] = cls
    return cls


def list_controllers() -> list[str]:
    return sorted(_REGISTRY)


def get_controller(config: dict[str, Any]) -> Controller:
    """Build a controller from ``{"id": ..., **params}``; unknown ids or params name the key."""
    if not isinstance(config, dict) or "id" not in config:
        raise ConfigError("id", f"controller config must be a dict with an 'id', got {config!r}")
    cid = config["id"]
    if cid not in _REGISTRY:
        raise ConfigError("id", f"unknown controller {cid!r}, expected one of {list_controllers()}")
    params = {k: v for k, v in config.items() if k != "id"}
    try:
        return _REGISTRY[cid](**params)
    except TypeError as exc:
        raise ConfigError(cid, f"bad parameters {sorted(params)}: {exc}") from None


def _register_rl() -> None:
    from neurolink.control.rl import RLPolicy

    register_controller(RLPolicy)


for _c in (Fixed, RateBased, BBA, Bola, RobustMPC, GCC):
    register_controller(_c)
_register_rl()

__all__ = ["Controller", "ObservationBuilder", "get_controller", "list_controllers", "register_controller"]
