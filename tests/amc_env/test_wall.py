"""Keep-ratio conventions, channel rounding, and the action wall on real cost models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amc_agent.env.costmodel import CostModel
from amc_agent.env.units import discover_units
from amc_agent.env.wall import (
    ActionWall,
    allowed_counts,
    channel_step,
    removal_ratio,
    round_channels,
    undominated_counts,
)
from tests.amc_env.helpers import model


def test_removal_ratio_is_the_one_conversion() -> None:
    assert removal_ratio(0.25) == 0.75 and removal_ratio(1.0) == 0.0


@pytest.mark.parametrize(("channels", "step"), [(64, 8), (32, 4), (16, 2), (8, 1), (3, 1)])
def test_channel_step(channels: int, step: int) -> None:
    assert channel_step(channels, 8) == step


def test_strict_rounding_steps_every_unit_by_round_to() -> None:
    assert [channel_step(c, 8, strict=True) for c in (64, 16, 8, 3)] == [8, 8, 8, 3]
    assert allowed_counts(16, 8, 0.2, strict=True).tolist() == [8, 16]
    assert allowed_counts(32, 8, 0.2, strict=True).tolist() == [8, 16, 24, 32]
    assert allowed_counts(32, 8, 0.2, groups=2, strict=True).tolist() == [16, 32]
    # The adaptive default keeps 10 of 16 at 0.6; the strict grid cannot.
    assert round_channels(16, 0.6, 8, 0.2) == 10
    assert round_channels(16, 0.6, 8, 0.2, strict=True) == 8


def test_allowed_counts_and_rounding() -> None:
    assert allowed_counts(64, 8, 0.2).tolist() == [16, 24, 32, 40, 48, 56, 64]
    assert allowed_counts(3, 8, 0.2).tolist() == [1, 2, 3]
    assert allowed_counts(20, 8, 0.0).tolist() == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert round_channels(64, 0.5, 8, 0.2) == 32
    assert round_channels(64, 0.01, 8, 0.2) == 16
    assert round_channels(2, 0.1, 8, 0.0) == 1  # never below one channel


@pytest.mark.parametrize("target", ["flops", "params"])
@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_wall_meets_budget_for_any_actions(name: str, target: str) -> None:
    m = model(name).eval()
    example = torch.zeros(1, 3, 16, 16)
    units = discover_units(m, example)
    cost = CostModel(m, units, example)
    opts = [allowed_counts(u.channels, 8, 0.2) for u in units]
    budget = 0.5 * cost.original[target]
    wall = ActionWall(lambda rows: cost.batch(target, rows), opts, budget)
    rng = np.random.default_rng(0)
    for _ in range(20):
        chosen: list[int] = []
        for t, u in enumerate(units):
            chosen.append(wall.clip(t, chosen, int(rng.uniform(0.2, 1.0) * u.channels)))
        final = cost.batch(target, np.array([chosen]))[0]
        assert 0.9 * budget <= final <= budget
        # Within one rounding step: one more step on the last unit would break the budget.
        last = opts[-1]
        if chosen[-1] < last[-1]:
            bigger = [*chosen[:-1], int(last[last > chosen[-1]][0])]
            assert cost.batch(target, np.array([bigger]))[0] > budget


def test_one_sided_wall_lets_the_agent_underuse_the_budget() -> None:
    m = model("resnet20").eval()
    example = torch.zeros(1, 3, 16, 16)
    units = discover_units(m, example)
    cost = CostModel(m, units, example)
    opts = [allowed_counts(u.channels, 8, 0.2) for u in units]
    budget = 0.8 * cost.original["flops"]
    wall = ActionWall(lambda rows: cost.batch("flops", rows), opts, budget, fill=False)
    chosen: list[int] = []
    for t in range(len(units)):
        chosen.append(wall.clip(t, chosen, 0))
    assert cost.macs(chosen) == wall.smallest_cost() < 0.5 * budget


def test_wall_holds_a_cost_that_falls_with_more_channels() -> None:
    """A latency-like cost where 16 channels run slower than 24 (a faster kernel at 24): the
    smallest counts are not the cheapest. The wall must still end every episode within the
    budget, and find the budget feasible; assuming later units at their minimum, it did
    neither (the first unit's every count looked over budget, so it kept the slow 16)."""
    per = {16: 3.0, 24: 2.0, 32: 2.5, 40: 4.0}
    options = [np.array([16, 24, 32, 40])] * 3

    def cost(rows: np.ndarray) -> np.ndarray:
        return np.vectorize(per.get)(rows.astype(int)).sum(1)

    for fill in (True, False):
        wall = ActionWall(cost, options, budget=7.0, fill=fill, monotone=False)
        assert wall.smallest_cost() == 6.0 and list(wall.floor) == [24, 24, 24]
        rng = np.random.default_rng(0)
        for _ in range(50):
            chosen: list[int] = []
            for t in range(3):
                chosen.append(wall.clip(t, chosen, int(rng.choice([16, 24, 32, 40]))))
            assert cost(np.array([chosen]))[0] <= 7.0
    monotone = ActionWall(cost, options, budget=7.0, monotone=True)
    assert monotone.smallest_cost() == 9.0  # what the old floor believed: infeasible


def test_undominated_counts_drop_what_a_larger_count_matches_in_cost() -> None:
    options = [np.arange(2, 17, 2), np.arange(4, 33, 4)]

    def blocked(rows: np.ndarray) -> np.ndarray:
        # Unit 0 runs in blocks of 8 channels; unit 1 costs by the channel, times unit 0's
        # blocks (a consumer's cost depends on its producer's width).
        b0 = np.ceil(rows[:, 0] / 8) * 8
        return b0 * 10 + b0 * rows[:, 1] / 8

    kept = undominated_counts(options, blocked, original=float(blocked(np.array([[16, 32]]))[0]))
    assert list(kept[0]) == [8, 16]  # 2, 4, 6 cost as 8; 10-14 as 16
    assert list(kept[1]) == list(options[1])  # every channel of unit 1 costs
    linear = undominated_counts(options, lambda r: r.sum(1), original=48.0)
    assert all(list(k) == list(o) for k, o in zip(linear, options, strict=True))
    # Noise within the tolerance does not keep a count alive; a real saving does.
    noisy = undominated_counts(options, lambda r: blocked(r) - 1e-4 * r[:, 0],
                               original=float(blocked(np.array([[16, 32]]))[0]))
    assert list(noisy[0]) == [8, 16]
