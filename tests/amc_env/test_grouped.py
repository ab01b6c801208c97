"""Grouped convolutions (ResNeXt, RegNet) are pruned group-balanced, not skipped: the same
positions go in every convolution group, the group count stays, the cost model stays exact and the
pruned network replays bit-identically from its record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from amc_agent.env.cost import count_macs, count_params
from amc_agent.env.criteria import CRITERIA
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.surgery import apply_pruning_record
from amc_agent.env.units import discover_units
from amc_agent.policies.heuristics import HEURISTICS
from tests.amc_env.helpers import FAST, synthetic

EXAMPLE = torch.zeros(1, 3, 16, 16)


class ResNeXtNet(nn.Module):
    """Stem, one ResNeXt bottleneck (1x1 -> grouped 3x3 in 4 groups -> 1x1, residual), head."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.conv1 = nn.Conv2d(16, 32, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, groups=4, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 16, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return self.head(torch.relu(x + self.bn3(self.conv3(y))))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return ResNeXtNet().eval()


def _balanced(keep: list[int], channels: int, blocks: int) -> bool:
    width = channels // blocks
    per = [sorted(i - g * width for i in keep if g * width <= i < (g + 1) * width)
           for g in range(blocks)]
    return all(p == per[0] for p in per) and len(per[0]) * blocks == len(keep)


def test_units_touching_a_grouped_conv_are_cut_in_balanced_blocks() -> None:
    units = {u.name: u for u in discover_units(_net(), EXAMPLE)}
    assert set(units) == {"stem.0", "conv1", "conv2"}
    assert units["conv1"].channel_groups == units["conv2"].channel_groups == 4
    assert units["stem.0"].channel_groups == 1
    assert units["conv2"].balanced([0, 3]) == [0, 3, 8, 11, 16, 19, 24, 27]


def test_a_group_with_one_channel_per_conv_group_is_left_unpruned() -> None:
    # groups == in_channels with a channel multiplier: each group reads one channel.
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 16, 3, padding=1, groups=8),
                          nn.Conv2d(16, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    with pytest.warns(UserWarning, match=r"0 \(touches grouped convolution 1, whose 8 groups "
                                         r"leave no channel to cut\)"):
        units = discover_units(model, EXAMPLE)
    assert {u.name: u.channel_groups for u in units} == {"1": 8, "2": 1}


@pytest.mark.parametrize("criterion", CRITERIA.names())
def test_every_criterion_keeps_the_same_positions_in_every_group(criterion: str) -> None:
    env = ChannelPruningEnv(_net(), synthetic(), **FAST, budget=0.5, criterion=criterion)
    info = env.play({"stem.0": 1.0, "conv1": 0.5, "conv2": 0.25})
    kept = env._surgeon.kept
    assert _balanced(kept["conv1"], 32, 4) and len(kept["conv1"]) == 16
    assert _balanced(kept["conv2"], 32, 4) and len(kept["conv2"]) == 8
    conv2 = env.pruned_model().conv2
    assert (conv2.in_channels, conv2.out_channels, conv2.groups) == (16, 8, 4)
    assert info["macs"] == count_macs(env.pruned_model(), (3, 16, 16))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_stages_prune_with_exact_cost_and_identical_export(seed: int) -> None:
    env = ChannelPruningEnv(_net(), synthetic(), **FAST, budget=0.4)
    ratios = HEURISTICS.get("random")(env, seed=seed)
    assert ratios["conv1"] < 1 or ratios["conv2"] < 1  # the grouped stage takes part
    info = env.play(ratios)
    pruned = env.pruned_model().eval()
    assert info["macs"] == count_macs(pruned, (3, 16, 16)) <= 0.4 * env.cost.original["flops"]
    assert info["params"] == count_params(pruned)
    rebuilt = apply_pruning_record(_net(), env._surgeon.record())
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned(x))


def test_grouped_counts_are_multiples_of_the_groups() -> None:
    env = ChannelPruningEnv(_net(), synthetic(), **FAST, budget=0.5)
    opts = {u.name: o for u, o in zip(env.units, env.wall.options, strict=True)}
    assert opts["conv2"].tolist() == [8, 12, 16, 20, 24, 28, 32]  # 4 x (2..8) per group
    assert np.all(opts["conv1"] % 4 == 0)
