"""Trace-driven simulator of a neurolink link; importing it registers ``neurolink/RateControl-v0``.

>>> import gymnasium, sim
>>> env = gymnasium.make("neurolink/RateControl-v0", traces="../shared/traces/mahimahi_cellular", seed=0)
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "neurolink/RateControl-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="sim.env:make_rate_control_env", disable_env_checker=False)

__all__ = ["ENV_ID"]
