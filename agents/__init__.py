"""agents: learners that produce pruning policies (AMC's DDPG, stable-baselines3 agents, random
search, Optuna's TPE and CMA-ES) and the search loop. Importing the package registers every agent
in ``AGENTS``."""

from agents import amc_ddpg, blackbox, random_search, sb3_agents  # noqa: F401  (registration)
from agents.base import AGENTS, Agent, AgentSpec, make_agent

__all__ = ["AGENTS", "Agent", "AgentSpec", "make_agent"]
