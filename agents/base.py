"""The agent contract the search loop drives, and the name -> factory registry.

An agent sees one episode at a time: ``act`` for each unit's observation, ``observe`` for each
transition, ``end_episode`` with the final reward (where learning happens). ``state_dict`` /
``load_state_dict`` hold everything needed to resume (networks, optimisers, replay buffer, noise,
generators) as plain types and tensors. Actions are keep ratios in the env's action bounds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from amc_agent.env.errors import UserError
from amc_agent.env.registry import Registry


@dataclass(frozen=True)
class AgentSpec:
    """What an agent is told about the search: spaces, steps per episode, planned episodes."""

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    steps_per_episode: int
    episodes: int
    warm_start: bool = False
    """The actor starts from a trained one (``amc-search --init-actor``): a short warm-up."""

    @property
    def low(self) -> float:
        """Smallest keep ratio."""
        return float(self.action_space.low[0])

    @property
    def high(self) -> float:
        """Largest keep ratio."""
        return float(self.action_space.high[0])


class Agent(ABC):
    """Chooses keep ratios, learns from finished episodes.

    ``seeds`` (set by :meth:`seed_with`): keep-ratio lists, one per unit, that the search plays
    as its first episodes instead of the agent's own choices (e.g. heuristics' policies); the
    agent still sees their transitions and rewards, so it learns from them.
    """

    name: str = "agent"
    seeds: tuple[tuple[float, ...], ...] = ()
    needs_seed: bool = False
    """Whether the agent starts from its seed policies (the search refuses it without any)."""

    def seed_with(self, policies: list[list[float]]) -> None:
        """Play ``policies`` (one keep ratio per unit, in unit order) as the first episodes.
        Called before the first episode and again, with the same policies, before a resume."""
        lo, hi = self.spec.low, self.spec.high  # type: ignore[attr-defined]
        self.seeds = tuple(tuple(min(hi, max(lo, float(r))) for r in p) for p in policies)

    @abstractmethod
    def act(self, obs: np.ndarray, episode: int) -> float:
        """The keep ratio for the unit described by ``obs`` in episode ``episode`` (0-based)."""

    def observe(  # noqa: B027  (optional hook: learners that need transitions override it)
        self, obs: np.ndarray, action: float, reward: float, next_obs: np.ndarray, done: bool
    ) -> None:
        """One transition; ``action`` is the keep ratio the env applied after its wall."""

    def end_episode(self, episode: int, reward: float) -> dict[str, float]:
        """Episode ``episode`` ended with ``reward``; learn. Returns stats to log."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain types and tensors."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def actor_state(self) -> dict[str, Any] | None:
        """The deterministic actor's weights and architecture (for policy transfer), if any."""
        return None

    def deterministic_action(self, obs: np.ndarray) -> float | None:
        """The actor's noise-free keep ratio for ``obs``, if the agent has an actor."""
        return None

    def load_actor(self, state: dict[str, Any]) -> None:
        """Start from a trained actor (an :meth:`actor_state` of the same agent kind)."""
        raise UserError(f"agent {self.name!r} has no actor to start from")


AgentFactory = Callable[[AgentSpec, int, dict[str, Any]], Agent]
AGENTS: Registry[AgentFactory] = Registry("agent")


def make_agent(
    name: str, spec: AgentSpec, seed: int, overrides: dict[str, Any] | None = None
) -> Agent:
    """Build the agent registered as ``name`` (overrides: hyper-parameters from the config).

    A setting the agent's algorithm rejects by type or value (stable-baselines3 raises
    ``TypeError``/``ValueError`` for those) is a :class:`UserError` naming the settings.
    """
    factory = AGENTS.get(name)
    try:
        return factory(spec, seed, dict(overrides or {}))
    except (TypeError, ValueError) as exc:
        if not overrides:
            raise  # a defect, not a user's setting
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"agent {name!r} rejects settings {dict(overrides)}: {detail}") from None
