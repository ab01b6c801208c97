"""Cutting a policy to a measured latency: the largest common scale of its keep ratios whose
model meets the latency budget in every round, its shape across layers kept."""

from __future__ import annotations

import pytest
import torch

from amc_agent.env.env import ChannelPruningEnv
from amc_agent.policies import equal_latency, finetune
from tests.amc_env.helpers import FAST, model, synthetic
from tests.amc_env.test_latency_table import fake_latency


@pytest.fixture()
def env(monkeypatch) -> ChannelPruningEnv:
    monkeypatch.setattr(finetune, "measure_latency", fake_latency)  # additive over layers
    return ChannelPruningEnv(model("resnet20").eval(), synthetic(), **FAST, budget=1.0,
                             fill_budget=False)


@pytest.mark.parametrize("policy", ["uniform", "shaped"])
def test_cut_is_the_largest_scale_within_the_measured_budget(env, policy: str) -> None:
    ratios = {u.name: 1.0 if policy == "uniform" else 0.4 + 0.6 * (i % 2)
              for i, u in enumerate(env.units)}
    cut = equal_latency.cut_to_latency(env, ratios, budget=0.6, rounds=2)
    assert cut.met and max(cut.round_ratios) <= 0.6 and len(cut.round_ratios) == 2
    # Latency grows with the scale here, so every probe above the cut broke the budget and
    # the bisection stopped within one final interval of the boundary.
    above = [p for p in cut.probes if p["scale"] > cut.scale]
    assert above and all(p["worst"] > 0.6 for p in above)
    hi0 = 1.0 / min(ratios.values())
    assert min(p["scale"] for p in above) - cut.scale <= hi0 / 2**equal_latency.STEPS + 1e-12
    assert len(cut.probes) == equal_latency.STEPS + 1
    # The policy's shape is kept: unclipped units keep the scaled ratio (up to rounding).
    for u in env.units:
        want = min(1.0, max(env.cfg.lbound, cut.scale * ratios[u.name]))
        assert abs(cut.keep_ratios[u.name] - want) <= env.cfg.round_to / u.channels


def test_a_budget_below_the_smallest_model_is_reported_not_met(env) -> None:
    cut = equal_latency.cut_to_latency(env, {u.name: 1.0 for u in env.units}, budget=0.01)
    assert not cut.met and cut.scale == 0.0 and min(cut.round_ratios) > 0.01
    assert all(cut.keep_ratios[u.name] <= env.cfg.lbound + env.cfg.round_to / u.channels
               for u in env.units)


def test_count_steps_are_every_distinct_count_vector(env) -> None:
    """Each step is the largest scale of its channel counts: just above it some unit keeps
    more, and no two steps give the same model."""
    ratios = {u.name: 0.4 + 0.6 * (i % 2) for i, u in enumerate(env.units)}

    def counts(s: float) -> tuple[int, ...]:
        return tuple(env.rounded(u, min(1.0, max(env.cfg.lbound, s * ratios[u.name])))
                     for u in env.units)

    steps = equal_latency.count_steps(env, ratios)
    assert steps == sorted(steps) and steps[-1] == pytest.approx(1 / 0.4)
    assert len({counts(s) for s in steps}) == len(steps)
    assert counts(steps[-1]) == tuple(u.channels for u in env.units)
    for s in steps[:-1]:
        assert counts(s + 1e-9) != counts(s)
    # Every vector the scale reaches is among them (a fine sweep finds no other).
    sweep = {counts(s) for s in torch.linspace(0, 1 / 0.4, 3001).tolist()}
    assert sweep <= {counts(s) for s in steps} | {counts(0.0)}


def test_scan_finds_a_larger_scale_than_bisection_where_latency_is_not_monotone(
        env, monkeypatch) -> None:
    """A made-up latency where the 16-channel units kept at 10 or 12 run slow (off-grid):
    bisection stops below that bump, the scan finds the larger scale above it that meets
    the budget."""
    def ratio(env: ChannelPruningEnv, ratios: dict[str, float], *_: object) -> list[float]:
        info = env.play(ratios)
        bump = any(info["kept_channels"][u.name] in (10, 12) for u in env.units
                   if u.channels == 16)
        return [info["macs"] / info["original_macs"] + (0.5 if bump else 0.0)] * 2
    monkeypatch.setattr(equal_latency, "measured_ratios", ratio)
    uniform = {u.name: 1.0 for u in env.units}
    bisect = equal_latency.cut_to_latency(env, uniform, budget=0.8)
    scan = equal_latency.cut_to_latency(env, uniform, budget=0.8, method="scan")
    assert scan.met and max(scan.round_ratios) <= 0.8
    assert scan.scale > bisect.scale
    above = [p for p in scan.probes if p["scale"] > scan.scale]
    assert above and all(p["worst"] > 0.8 for p in above)
    with pytest.raises(ValueError, match="unknown cut method"):
        equal_latency.cut_to_latency(env, uniform, budget=0.8, method="newton")
