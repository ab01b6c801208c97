"""Heuristic policies at a budget, honouring the same rounding and budget as the agents.

Each takes a :class:`~amc_env.env.ChannelPruningEnv` (its units, cost model, wall and budget) and
returns keep ratios by unit name; play them with :func:`play_ratios` on an env whose wall does not
fill the budget (``fill_budget=False``), so the ratios are applied as given.

- ``uniform``: one keep ratio for every unit, the largest whose rounded channel counts meet the
  budget (bisection);
- ``random``: a random feasible policy (uniform keep ratios through the wall, seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from amc_env.env import ChannelPruningEnv
from amc_env.registry import Registry
from amc_env.wall import round_channels

Heuristic = Callable[..., dict[str, float]]
HEURISTICS: Registry[Heuristic] = Registry("strategy")


def counts_for(env: ChannelPruningEnv, ratio: float) -> list[int]:
    """Rounded channel counts for one keep ratio everywhere."""
    return [round_channels(u.channels, ratio, env.cfg.round_to, env.cfg.lbound)
            for u in env.units]


def within_budget(env: ChannelPruningEnv, counts: list[int]) -> bool:
    """Whether channel counts meet the env's budget under its cost (or latency) model."""
    return bool(env.wall.cost(np.array([counts], dtype=np.float64))[0] <= env.budget_abs + 1e-6)


@HEURISTICS.register("uniform")
def uniform(env: ChannelPruningEnv, **_: Any) -> dict[str, float]:
    """The largest single keep ratio whose rounded counts meet the budget."""
    lo, hi = env.cfg.lbound, 1.0
    if within_budget(env, counts_for(env, hi)):
        lo = hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if within_budget(env, counts_for(env, mid)) else (lo, mid)
    counts = counts_for(env, lo)
    return {u.name: k / u.channels for u, k in zip(env.units, counts, strict=True)}


@HEURISTICS.register("random")
def random_policy(env: ChannelPruningEnv, seed: int = 0, **_: Any) -> dict[str, float]:
    """Uniform random keep ratios passed through the env's (budget-filling) wall."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for t, u in enumerate(env.units):
        wanted = round_channels(u.channels, rng.uniform(env.cfg.lbound, 1.0), env.cfg.round_to,
                                env.cfg.lbound)
        chosen.append(env.wall.clip(t, chosen, wanted))
    return {u.name: k / u.channels for u, k in zip(env.units, chosen, strict=True)}


def play_ratios(env: ChannelPruningEnv, ratios: dict[str, float], seed: int = 0) -> dict[str, Any]:
    """Run one episode applying ``ratios`` (by unit name); returns the final ``info``."""
    env.reset(seed=seed)
    info: dict[str, Any] = {}
    for u in env.units:
        _, _, done, _, info = env.step(np.array([ratios[u.name]], dtype=np.float32))
    assert done
    return info
