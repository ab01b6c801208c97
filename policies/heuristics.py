"""Heuristic policies at a budget, spending the same budget through the same wall as the agents.

Each takes a :class:`~amc_agent.env.env.ChannelPruningEnv` (its units, cost model, wall and budget)
and returns keep ratios by unit name; play them with
:meth:`~amc_agent.env.env.ChannelPruningEnv.play` (without the wall), so the ratios are applied as
given.

A heuristic's own rule rounds channel counts and so leaves part of the budget unused (uniform
pruning to 50% of MACs kept 0.417 of them at round-to 8); compared that way against an agent that
spends it all, the heuristic would lose on budget, not on choice. So each rule's counts are
completed through the wall (:meth:`~amc_agent.env.wall.ActionWall.complete`) in the rule's own
order of preference until no rounding step fits, and every strategy ends within one step of the
budget:

- ``uniform``: one keep ratio for every unit, the largest whose rounded channel counts meet the
  budget (bisection); completed lowest keep ratio first;
- ``random``: a random feasible policy (uniform keep ratios through the filling wall, seeded);
- ``sensitivity``: per-unit sensitivity analysis with an accuracy-drop threshold (Li et al. 2017);
  completed by the largest accuracy recovered per unit of cost;
- ``global``: one importance threshold across all units (Network Slimming, Liu et al. 2017);
  completed by the highest-scoring channel not yet kept;
- ``tp-uniform``, ``tp-global``: Torch-Pruning's own pruner with its default importance
  (:mod:`amc_agent.policies.peers`; play them on an env with criterion ``group-l2``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.registry import Registry
from amc_agent.env.wall import ActionWall
from amc_agent.policies.peers import tp_global, tp_uniform

Heuristic = Callable[..., dict[str, float]]
HEURISTICS: Registry[Heuristic] = Registry("strategy")


def counts_for(env: ChannelPruningEnv, ratio: float) -> list[int]:
    """Rounded channel counts for one keep ratio everywhere."""
    return [env.rounded(u, ratio) for u in env.units]


def within_budget(env: ChannelPruningEnv, counts: list[int]) -> bool:
    """Whether channel counts meet the env's budget under its cost (or latency) model."""
    return env.wall.fits(counts)


@HEURISTICS.register("uniform")
def uniform(env: ChannelPruningEnv, **_: Any) -> dict[str, float]:
    """The largest single keep ratio whose rounded counts meet the budget."""
    lo, hi = env.cfg.lbound, 1.0
    if within_budget(env, counts_for(env, hi)):
        lo = hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if within_budget(env, counts_for(env, mid)) else (lo, mid)
    counts = env.wall.complete(
        counts_for(env, lo), lambda t, c, _: -c[t] / env.units[t].channels)
    return _counts_policy(env, counts)


@HEURISTICS.register("random")
def random_policy(env: ChannelPruningEnv, seed: int = 0, **_: Any) -> dict[str, float]:
    """Uniform random keep ratios passed through the env's (budget-filling) wall."""
    rng = np.random.default_rng(seed)
    wall = ActionWall(env.wall.cost, env.wall.options, env.budget_abs, fill=True)
    chosen: list[int] = []
    for t, u in enumerate(env.units):
        wanted = env.rounded(u, rng.uniform(env.cfg.lbound, 1.0))
        chosen.append(wall.clip(t, chosen, wanted))
    return {u.name: k / u.channels for u, k in zip(env.units, chosen, strict=True)}


def _counts_policy(env: ChannelPruningEnv, counts: list[int]) -> dict[str, float]:
    return {u.name: k / u.channels for u, k in zip(env.units, counts, strict=True)}


def _allowed(env: ChannelPruningEnv, t: int) -> np.ndarray:
    return env.wall.options[t]


def _interpolated_drop(rows: list[tuple[int, float]], channels: int, k: int) -> float:
    """Accuracy drop at ``k`` kept channels, linear between the probed counts (0 drop with every
    channel kept; below the smallest probe, the smallest probe's drop)."""
    ks = [kk for kk, _ in rows] + [channels]
    ds = [d for _, d in rows] + [0.0]
    return float(np.interp(k, ks, ds))


@HEURISTICS.register("sensitivity")
def sensitivity(
    env: ChannelPruningEnv,
    ratios: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    **_: Any,
) -> dict[str, float]:
    """Sensitivity analysis (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).

    Prune each unit alone to each keep ratio in ``ratios`` (others untouched), measure validation
    accuracy, then give every unit the smallest keep ratio whose accuracy drop stays within a
    threshold; the threshold is the smallest that meets the budget. What the coarse probe grid
    leaves of the budget is then spent one rounding step at a time on the unit whose accuracy
    drop (linear between probes) falls most per unit of cost. Costs ``units x len(ratios)``
    evaluations; ``env.sensitivity_table`` keeps the measured drops.
    """
    full = [u.channels for u in env.units]
    base = env.play({u.name: 1.0 for u in env.units})["accuracy"]
    table: dict[str, list[tuple[int, float]]] = {}
    for t, u in enumerate(env.units):
        rows = []
        for r in sorted(set(ratios)):
            k = env.rounded(u, r)
            if k >= u.channels or any(k == kk for kk, _ in rows):
                continue
            counts = list(full)
            counts[t] = k
            acc = env.play(_counts_policy(env, counts))["accuracy"]
            rows.append((k, base - acc))
        # A unit pruned harder never counts as hurting less (monotone envelope over noise).
        rows.sort()
        env_drop, worst = [], -np.inf
        for k, drop in reversed(rows):
            worst = max(worst, drop)
            env_drop.append((k, worst))
        table[u.name] = sorted(env_drop)
    env.sensitivity_table = {"base_accuracy": base, "drops": table}  # type: ignore[attr-defined]

    def counts_at(threshold: float) -> list[int]:
        out = []
        for u in env.units:
            ok = [k for k, d in table[u.name] if d <= threshold]
            out.append(min(ok) if ok else u.channels)
        return out

    candidates = sorted({d for rows in table.values() for _, d in rows})
    counts = next((c for c in map(counts_at, candidates) if within_budget(env, c)),
                  counts_at(np.inf))

    def recovered_per_cost(t: int, c: list[int], step_cost: float) -> float:
        u, nxt = env.units[t], env.wall.next_counts(c)[t]
        gain = _interpolated_drop(table[u.name], u.channels, c[t]) - \
            _interpolated_drop(table[u.name], u.channels, nxt)
        return gain / max(step_cost, 1e-12)

    return _counts_policy(env, env.wall.complete(counts, recovered_per_cost))


@HEURISTICS.register("global")
def global_threshold(env: ChannelPruningEnv, **_: Any) -> dict[str, float]:
    """One threshold on importance across all units; per-unit ratios emerge (Network Slimming's
    global ranking). With ``slimming`` the raw |gamma| are compared across layers, as in the
    paper; other criteria's scores are first divided by their unit's mean so layers of different
    scale compare. Counts are rounded down to the unit's allowed counts (at least the smallest),
    then completed by the highest-scoring channel not yet kept."""
    env.reset(seed=0)  # score the unpruned model, not a finished episode's
    scores = []
    for u in env.units:
        s = env.criterion.scores(env.unit_context(u)).numpy()
        scores.append(s if env.criterion.name == "slimming" else s / max(s.mean(), 1e-12))

    def counts_at(threshold: float) -> list[int]:
        out = []
        for t, s in enumerate(scores):
            opts = _allowed(env, t)
            n = int((s >= threshold).sum())
            fit = opts[opts <= n]
            out.append(int(fit[-1]) if len(fit) else int(opts[0]))
        return out

    values = np.unique(np.concatenate(scores))
    lo, hi = 0, len(values) - 1  # index of the threshold: higher prunes more
    while lo < hi:
        mid = (lo + hi) // 2
        if within_budget(env, counts_at(values[mid])):
            hi = mid
        else:
            lo = mid + 1
    ranked = [np.sort(s)[::-1] for s in scores]

    def next_best_score(t: int, c: list[int], _: float) -> float:
        return float(ranked[t][c[t]]) if c[t] < len(ranked[t]) else -np.inf

    return _counts_policy(env, env.wall.complete(counts_at(values[lo]), next_best_score))


HEURISTICS.register("tp-uniform")(tp_uniform)
HEURISTICS.register("tp-global")(tp_global)


def heuristic_policy(name: str, env: ChannelPruningEnv, seed: int = 0,
                     **kwargs: Any) -> dict[str, float]:
    """Keep ratios from the heuristic registered as ``name`` (``kwargs``: its settings)."""
    return HEURISTICS.get(name)(env, seed=seed, **kwargs)
