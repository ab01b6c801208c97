"""Re-scoring a search's best policies on held-out images before the winner is declared.

A search keeps the best of hundreds of episodes, each scored on the same ``--eval-size`` images:
the winner's score is a maximum over noisy estimates and so optimistic (and the ranking among the
top few is partly noise). The top ``K`` distinct eligible policies are therefore replayed and
scored again on validation images no episode saw (the rest of the checkpoint's held-out split);
the best on those is the search's result, and its unbiased score is what reports show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from amc_env.env import ChannelPruningEnv
from amc_env.evaluation import accuracy

DEFAULT_TOP = 5


def resolve_top(requested: int | None, env: ChannelPruningEnv) -> int:
    """How many policies to re-score: ``requested``, or by default :data:`DEFAULT_TOP` where
    the split has validation images the episodes never score (else 0)."""
    if requested is None:
        return DEFAULT_TOP if env.heldout_size else 0
    return requested


def top_distinct(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` highest-reward rows that met the budget with finite scores, one per distinct
    policy (a search often revisits the same keep ratios)."""
    eligible = sorted((r for r in rows if r["finite"] and r["meets_budget"]),
                      key=lambda r: (-r["reward"], r["episode"]))
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in eligible:
        key = json.dumps(r["keep_ratios"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            picked.append(r)
        if len(picked) == k:
            break
    return picked


def rescore(env: ChannelPruningEnv, rows: list[dict[str, Any]], images: int | None,
            episode_seed: Callable[[int], int]) -> list[dict[str, Any]]:
    """Replay each row's policy (same criterion seed as its episode, BN recalibrated the same
    way) and score it on up to ``images`` held-out validation images; returns, best first, one
    record per row with ``episode``, ``search_accuracy``, ``rescored_accuracy`` (fractions),
    ``rescored_reward`` and ``images``."""
    batches = env.heldout_batches(images)
    n = sum(len(y) for _, y in batches)
    out = []
    for r in rows:
        info = env.play(r["keep_ratios"], seed=episode_seed(r["episode"]))
        acc = accuracy(env.pruned_model(), batches)
        out.append({"episode": r["episode"], "search_reward": r["reward"],
                    "search_accuracy": r["accuracy"], "rescored_accuracy": acc,
                    "rescored_reward": float(env.reward_fn({**info, "accuracy": acc})),
                    "images": n, "keep_ratios": r["keep_ratios"]})
    return sorted(out, key=lambda o: (-o["rescored_reward"], o["episode"]))
