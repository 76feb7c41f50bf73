"""A faithful local emulator of the Anthropic Messages API for tests, benchmarks, keyless runs."""

from claude_facts.limits import PoolLimits
from claude_sim.app import create_app
from claude_sim.config import FaultRates, ModelSpec, SimConfig

__all__ = ["FaultRates", "ModelSpec", "PoolLimits", "SimConfig", "create_app"]
