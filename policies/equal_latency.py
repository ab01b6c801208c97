"""Cut a policy to a measured latency, for comparisons at equal measured latency.

A FLOPs budget says little about what a deployment gains: two policies with the same MACs can
differ in measured latency (NetAdapt, Yang et al., ECCV 2018; HALP, Shen et al., NeurIPS 2022),
so "A beats B at 50% MACs" may only mean A is slower. Here each policy is scaled to one measured
latency instead: its keep ratios times a common factor ``s`` (clipped to ``[lbound, 1]`` and
rounded to the unit's channel step, so the policy's shape across layers is kept), ``s`` the
largest factor whose pruned model measures at most ``budget`` x the original's latency in
*every* round of a round-robin measurement against the original
(amc_agent.policies.finetune.interleaved_latency: the same load hits both). Uniform pruning is the
policy of all ones.

Two ways to find ``s``: ``bisect`` (8 probes) assumes latency grows with the scale; ``scan``
probes every distinct channel-count vector the scale produces, from the largest down, and stops
at the first that meets the budget. Latency is not monotone in channel counts (on a CPU a
16-channel unit kept at 10 can run slower than at 16: off-grid counts miss the vector lanes), so
bisection can stop below a larger scale that meets the budget; the scan cannot, at the cost of
one probe per count vector above the cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from amc_agent.env.env import ChannelPruningEnv
from amc_agent.policies.finetune import interleaved_latency, round_ratios

STEPS = 8
"""Bisection steps on the scale factor (its interval shrinks 256-fold)."""
METHODS = ("bisect", "scan")
"""How :func:`cut_to_latency` finds the scale (see the module docstring)."""


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


def count_steps(env: ChannelPruningEnv, ratios: dict[str, float]) -> list[float]:
    """The largest scale of each distinct channel-count vector ``ratios`` scaled by ``s`` in
    ``(0, 1 / min ratio]`` gives, in ascending order: the scales where some unit's rounded
    count is about to step up (a tie rounds down, so the count at the step is still the lower
    one), and the top, where every unit is whole."""
    top = 1.0 / max(min(ratios.values()), 1e-6)
    scales = {top}
    for u, counts in zip(env.units, env.wall.options, strict=True):
        r = ratios[u.name]
        for a, b in pairwise(counts):
            s = float((a + b) / 2 / u.channels / r)
            if env.cfg.lbound < s * r < 1.0 and s < top:
                scales.add(s)
    seen, out = set(), []
    for s in sorted(scales, reverse=True):  # keep the largest scale of each count vector
        key = tuple(env.rounded(u, min(1.0, max(env.cfg.lbound, s * ratios[u.name])))
                    for u in env.units)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return sorted(out)


def cut_to_latency(env: ChannelPruningEnv, ratios: dict[str, float], budget: float,
                   batch: int = 1, rounds: int = 3, backend: str | None = None,
                   min_time_s: float = 0.2, steps: int = STEPS,
                   method: str = "bisect") -> LatencyCut:
    """The largest scale of ``ratios`` whose measured latency ratio stays within ``budget`` in
    every round, found by ``method`` (see the module docstring); ``env`` is played without its
    wall and left at the cut policy's episode."""
    if method not in METHODS:
        raise ValueError(f"unknown cut method {method!r}; valid: {', '.join(METHODS)}")
    probes: list[dict[str, Any]] = []

    def probe(s: float) -> tuple[bool, list[float]]:
        rr = measured_ratios(env, scaled(env, ratios, s), batch, rounds, backend, min_time_s)
        probes.append({"scale": s, "round_ratios": rr, "worst": max(rr)})
        return max(rr) <= budget, rr

    lo = 0.0  # scale 0: every unit at lbound, the smallest model the policy family holds
    ok, best = probe(lo)
    if not ok:
        return _cut(env, ratios, lo, best, False, probes)
    if method == "scan":
        for s in reversed(count_steps(env, ratios)):
            ok, rr = probe(s)
            if ok:
                return _cut(env, ratios, s, rr, True, probes)
        return _cut(env, ratios, lo, best, True, probes)
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
