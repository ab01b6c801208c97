"""Confirming a latency-target search's winner by measuring it again against the original.

Every episode of a latency-target search is timed once, on a shared machine: the best reward
among hundreds of single timings favours policies that were timed while the machine was quiet
(seen on 2 CPU cores: a winner timed at 3.67 ms measured 5.8 ms again, with the original at 5.0
and then 6.66 ms). So before a winner is declared, the best candidates, in the order the search
ranks them (after re-scoring, if any), are measured again round-robin with the original model
(amc_agent.policies.finetune.interleaved_latency: the same load hits both), and the first whose
measured latency *ratio* to the original is within the budget in every round (each round times the
original and the candidate back to back) is declared: a median ratio under the budget was not
enough on this host (a candidate confirmed at 0.656 against a 0.70 budget measured 0.761 a minute
later). If none holds, the top candidate stays, flagged ``met: false``. The record
(``latency_check.json``) also holds the latency predictor's error over every episode of the
search and the share of episodes whose own timing broke the budget.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from amc_agent.env.env import ChannelPruningEnv
from amc_agent.policies.finetune import interleaved_latency, round_ratios

CHECK_TOP = 5
"""Candidates re-measured at most."""
ROUNDS = 5
"""Round-robin passes per candidate; the budget must hold in each."""


def predictor_errors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The latency predictor's relative error ((predicted - measured) / measured) over the
    episodes ``rows``, and the share of episodes measured over the budget."""
    timed = [r for r in rows if r.get("latency_ms")]
    err = [(r["predicted_latency_ms"] - r["latency_ms"]) / r["latency_ms"] for r in timed]
    if not err:
        return {"episodes": 0}
    return {"episodes": len(err), "median_abs_error": statistics.median(abs(e) for e in err),
            "mean_error": statistics.fmean(err), "max_abs_error": max(abs(e) for e in err),
            "share_over_budget": sum(r["latency_ms"] > r["budget_latency_ms"] for r in timed)
            / len(timed)}


def confirm_latency(env: ChannelPruningEnv, candidates: list[dict[str, Any]],
                    episode_seed: Callable[[int], int], rows: list[dict[str, Any]],
                    rounds: int = ROUNDS, stop: bool = True) -> dict[str, Any]:
    """Re-measure ``candidates`` (episode rows, best first) against the original until one
    meets the budget as a measured ratio (``stop=False``: every one); returns ``{"declared":
    episode, "met": bool, "budget": fraction, "candidates": [...], "predictor":
    predictor_errors(rows)}``."""
    checked: list[dict[str, Any]] = []
    declared, met = candidates[0]["episode"], False
    shape = env.data_spec.input_shape
    for row in candidates:
        env.play(row["keep_ratios"], seed=episode_seed(row["episode"]))
        lat = interleaved_latency({"original": env.model, "candidate": env.pruned_model()},
                                  shape, env.cfg.device, batch_sizes=(env.cfg.latency_batch,),
                                  rounds=rounds, min_time_s=env.cfg.latency_min_time_s,
                                  backend=env.cfg.latency_backend)
        key = f"b{env.cfg.latency_batch}"
        orig, cand = lat["original"][key], lat["candidate"][key]
        ratios = round_ratios(lat, "candidate", "original", env.cfg.latency_batch)
        ok = max(ratios) <= env.cfg.budget + 1e-9
        checked.append({"episode": row["episode"], "search_latency_ms": row["latency_ms"],
                        "predicted_latency_ms": row["predicted_latency_ms"],
                        "remeasured_ms": cand["median_ms"],
                        "remeasured_original_ms": orig["median_ms"],
                        "latency_ratio": cand["median_ms"] / orig["median_ms"],
                        "round_ratios": ratios, "worst_ratio": max(ratios), "meets_budget": ok,
                        "backend": cand["backend"]})
        if ok and not met:
            declared, met = row["episode"], True
        if met and stop:
            break
    return {"declared": declared, "met": met, "budget": env.cfg.budget, "rounds": rounds,
            "candidates": checked, "predictor": predictor_errors(rows)}
