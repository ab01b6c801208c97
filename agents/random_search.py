"""Random search: every keep ratio uniform in ``[lbound, 1]``, independently, under the same wall.

Distiller found it close to DDPG on ResNet-20; a learned agent must beat it at the same episode
count to justify itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amc_agent.agents.base import AGENTS, Agent, AgentSpec
from amc_agent.agents.rng import generator_state, set_generator_state
from amc_agent.env.errors import UserError


class RandomSearch(Agent):
    """Uniform random keep ratios from a seeded generator."""

    name = "random"

    def __init__(self, spec: AgentSpec, seed: int) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, episode: int) -> float:
        return float(self.rng.uniform(self.spec.low, self.spec.high))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_generator_state(self.rng, state["rng"])


@AGENTS.register("random")
def make_random(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """Factory: random search takes no hyper-parameters."""
    if overrides:
        raise UserError(f"agent 'random' takes no settings, got {sorted(overrides)}")
    return RandomSearch(spec, seed)
