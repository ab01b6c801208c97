"""Torch-Pruning's own pruning as comparison strategies: what a user gets from a hand-written
Torch-Pruning script instead of a search, and so the floor a search has to beat.

- ``tp-uniform``: ``tp.pruner.MetaPruner`` with Torch-Pruning's default importance
  (``GroupMagnitudeImportance()``: squared L2 over the whole group, averaged over its items and
  divided by the group mean), one pruning ratio for every group;
- ``tp-global``: the same pruner with ``global_pruning=True``: one threshold on that normalised
  importance across all groups, so per-group widths emerge.

Torch-Pruning's ratio is a fraction of *channels* removed, not of MACs; its users raise the ratio
until their MACs target is met. Here the ratio is bisected: the smallest whose channel counts meet
the env's budget. The counts are read from the pruner's interactive step (it yields each group with
the indices it would remove; nothing is cut), limited to the env's units (the classifier, excluded
and unprunable layers are the pruner's ``ignored_layers``), with ``max_pruning_ratio = 1 - lbound``.
Counts are then snapped down to the rounding grid every strategy shares (``round_to``; a global
threshold that empties a group below the floor is raised to it) and completed through the action
wall as every heuristic is (:mod:`amc_agent.policies.heuristics`): ``tp-uniform`` raises the lowest
keep ratio first, ``tp-global`` the channel of highest normalised importance not yet kept. So the
strategies spend the same budget and differ only in what they keep.

The channels themselves are chosen by the same importance: play these ratios on an env whose
criterion is :data:`PEER_CRITERION` (``group-l2``, which is ``GroupMagnitudeImportance()`` per
unit and keeps the indices the pruner keeps); :mod:`amc_agent.policies.compare` builds that env for
them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch_pruning as tp

from amc_agent.env.criteria import make_criterion
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.errors import UserError
from amc_agent.env.units import PRUNABLE_ROOTS

PEER_CRITERION = "group-l2"
"""The criterion whose channel choice is Torch-Pruning's default importance."""

PEER_STRATEGIES = ("tp-uniform", "tp-global")


def pruner_counts(env: ChannelPruningEnv, ratio: float, global_pruning: bool) -> list[int]:
    """Channel counts per env unit that ``tp.pruner.MetaPruner`` with the default importance
    and ``pruning_ratio=ratio`` would leave (from its interactive step; the model is unchanged)."""
    owner = {env.model.get_submodule(m): t for t, u in enumerate(env.units) for m in u.members}
    ignored = [m for m in env.model.modules() if isinstance(m, PRUNABLE_ROOTS) and m not in owner]
    pruner = tp.pruner.MetaPruner(
        env.model, env.example, importance=tp.importance.GroupMagnitudeImportance(),
        global_pruning=global_pruning, pruning_ratio=ratio,
        max_pruning_ratio=1.0 - env.cfg.lbound, ignored_layers=ignored)
    counts = [u.channels for u in env.units]
    for group in pruner.step(interactive=True):
        t = owner.get(group[0].dep.target.module)
        if t is not None:
            counts[t] = env.units[t].channels - len(group[0].idxs)
    return counts


def _snap(env: ChannelPruningEnv, counts: list[int]) -> list[int]:
    """Each count rounded down to the unit's allowed counts (at least the smallest)."""
    out = []
    for opts, k in zip(env.wall.options, counts, strict=True):
        fit = opts[opts <= k]
        out.append(int(fit[-1]) if len(fit) else int(opts[0]))
    return out


def _bisect_ratio(env: ChannelPruningEnv, global_pruning: bool, iters: int = 24) -> list[int]:
    """Snapped counts at the smallest pruning ratio that meets the budget."""
    hi = 1.0 - env.cfg.lbound
    best = _snap(env, pruner_counts(env, hi, global_pruning))
    if not env.wall.fits(best):
        raise UserError(f"Torch-Pruning {'global' if global_pruning else 'uniform'} pruning "
                        f"cannot meet {env.cfg.target} budget {env.cfg.budget} at its largest "
                        f"ratio {hi:g}")
    lo = 0.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        counts = _snap(env, pruner_counts(env, mid, global_pruning))
        if env.wall.fits(counts):
            hi, best = mid, counts
        else:
            lo = mid
    return best


def _policy(env: ChannelPruningEnv, counts: list[int]) -> dict[str, float]:
    """Keep ratios by unit name for channel counts."""
    return {u.name: k / u.channels for u, k in zip(env.units, counts, strict=True)}


def tp_uniform(env: ChannelPruningEnv, **_: Any) -> dict[str, float]:
    """Torch-Pruning's uniform (local) pruning with its default importance at the budget."""
    counts = _bisect_ratio(env, global_pruning=False)
    return _policy(env, env.wall.complete(
        counts, lambda t, c, _: -c[t] / env.units[t].channels))


def tp_global(env: ChannelPruningEnv, **_: Any) -> dict[str, float]:
    """Torch-Pruning's global pruning with its default importance at the budget."""
    counts = _bisect_ratio(env, global_pruning=True)
    env.reset(seed=0)  # score the unpruned model
    crit = make_criterion(PEER_CRITERION)
    ranked = [np.sort(crit.scores(env.unit_context(u)).numpy())[::-1] for u in env.units]

    def next_best(t: int, c: list[int], _: float) -> float:
        return float(ranked[t][c[t]]) if c[t] < len(ranked[t]) else -np.inf

    return _policy(env, env.wall.complete(counts, next_best))
