"""Cut a policy to a measured latency, for comparisons at equal measured latency.

A FLOPs budget says little about what a deployment gains: two policies with the same MACs can
differ in measured latency (NetAdapt, Yang et al., ECCV 2018; HALP, Shen et al., NeurIPS 2022),
so "A beats B at 50% MACs" may only mean A is slower. Here each policy is scaled to one measured
latency instead: its keep ratios times a common factor ``s`` (clipped to ``[lbound, 1]`` and
rounded to the unit's channel step, so the policy's shape across layers is kept), ``s`` found
by bisection as the largest factor whose pruned model measures at most ``budget`` x the
original's latency in *every* round of a round-robin measurement against the original
(amc_agent.policies.finetune.interleaved_latency: the same load hits both). Uniform pruning is the
policy of all ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amc_agent.env.env import ChannelPruningEnv
from amc_agent.policies.finetune import interleaved_latency, round_ratios

STEPS = 8
"""Bisection steps on the scale factor (its interval shrinks 256-fold)."""


@dataclass
class LatencyCut:
    """A policy cut to a measured latency: the scale factor, the resulting keep ratios, its
    measured latency ratios to the original (per round; ``ratio`` their median) and whether the
    budget held in every round (``met``: False when even the smallest model breaks it)."""

    scale: float
    keep_ratios: dict[str, float]
    ratio: float
    round_ratios: list[float]
    met: bool
    info: dict[str, Any]
    """The cut policy's episode ``info`` (the env is left at that episode:
    ``env.pruned_model()`` is its model)."""
    probes: list[dict[str, Any]] = field(default_factory=list)


def scaled(env: ChannelPruningEnv, ratios: dict[str, float], s: float) -> dict[str, float]:
    """``ratios`` times ``s``, clipped to ``[lbound, 1]`` (rounding happens when played)."""
    return {u.name: min(1.0, max(env.cfg.lbound, s * ratios[u.name])) for u in env.units}


def measured_ratios(env: ChannelPruningEnv, ratios: dict[str, float], batch: int,
                    rounds: int, backend: str | None, min_time_s: float) -> list[float]:
    """Latency of ``ratios``' pruned model over the original's, per round-robin round."""
    env.play(ratios)
    lat = interleaved_latency({"original": env.model, "candidate": env.pruned_model()},
                              env.data_spec.input_shape, env.cfg.device, batch_sizes=(batch,),
                              rounds=rounds, min_time_s=min_time_s, backend=backend)
    return round_ratios(lat, "candidate", "original", batch)


def cut_to_latency(env: ChannelPruningEnv, ratios: dict[str, float], budget: float,
                   batch: int = 1, rounds: int = 3, backend: str | None = None,
                   min_time_s: float = 0.2, steps: int = STEPS) -> LatencyCut:
    """The largest scale of ``ratios`` whose measured latency ratio stays within ``budget`` in
    every round (see the module docstring); ``env`` is played without its wall and left at the
    cut policy's episode."""
    probes: list[dict[str, Any]] = []

    def probe(s: float) -> tuple[bool, list[float]]:
        rr = measured_ratios(env, scaled(env, ratios, s), batch, rounds, backend, min_time_s)
        probes.append({"scale": s, "round_ratios": rr, "worst": max(rr)})
        return max(rr) <= budget, rr

    lo = 0.0  # scale 0: every unit at lbound, the smallest model the policy family holds
    ok, best = probe(lo)
    if not ok:
        return _cut(env, ratios, lo, best, False, probes)
    hi = 1.0 / max(min(ratios.values()), 1e-6)  # every unit kept whole: the original
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok, rr = probe(mid)
        if ok:
            lo, best = mid, rr
        else:
            hi = mid
    return _cut(env, ratios, lo, best, True, probes)


def _cut(env: ChannelPruningEnv, ratios: dict[str, float], s: float, rr: list[float],
         met: bool, probes: list[dict[str, Any]]) -> LatencyCut:
    kept = scaled(env, ratios, s)
    info = env.play(kept)
    return LatencyCut(s, info["keep_ratios"], sorted(rr)[len(rr) // 2], rr, met, info, probes)
