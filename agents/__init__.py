"""agents: learners that produce pruning policies (AMC's DDPG, stable-baselines3 agents, random
search, Optuna's TPE and CMA-ES) and the search loop. Importing the package registers every agent
in ``AGENTS``."""

from amc_agent.agents import (  # noqa: F401  (registration)
    amc_ddpg,
    blackbox,
    random_search,
    sb3_agents,
)
from amc_agent.agents.base import AGENTS, Agent, AgentSpec, make_agent

__all__ = ["AGENTS", "Agent", "AgentSpec", "make_agent"]
