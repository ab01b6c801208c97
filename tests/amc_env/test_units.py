"""Unit discovery on architectures whose channels cannot all be cut freely: grouped convolutions
are cut in balanced blocks (tests/amc_env/test_grouped.py), what cannot be cut is left unpruned."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amc_agent.env.units import discover_units

EXAMPLE = torch.zeros(1, 3, 8, 8)


class GroupedNet(nn.Module):
    """conv -> grouped 3x3 (2 groups, ResNeXt/RegNet style) -> conv -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.b = nn.Conv2d(8, 16, 1)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.g(self.a(x))).mean((2, 3)))


class HardCodedWidth(nn.Module):
    """Its forward reshapes with a constant width, as ViT's patch embedding does."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.mid = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).reshape(x.shape[0], 8, -1).mean(2)[:, :, None, None]
        return self.head(self.mid(x).flatten(1))


def test_grouped_convolution_groups_are_cut_in_blocks() -> None:
    units = discover_units(GroupedNet().eval(), EXAMPLE)
    assert [(u.name, u.channel_groups) for u in units] == [("a", 2), ("g", 2), ("b", 1)]


def test_units_that_break_the_forward_pass_are_found_by_trying() -> None:
    with pytest.warns(UserWarning, match=r"stem \(removing a channel breaks the forward pass"):
        units = discover_units(HardCodedWidth().eval(), EXAMPLE)
    assert [u.name for u in units] == ["mid"]


def test_depthwise_convolutions_stay_prunable() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.Conv2d(8, 8, 1), nn.Flatten(), nn.Linear(8 * 64, 4)).eval()
    assert [u.name for u in discover_units(model, EXAMPLE)] == ["0", "2"]


def test_untraceable_model_is_one_user_error(monkeypatch) -> None:
    # As Torch-Pruning 1.6 does on ShuffleNetV2's channel shuffle.
    import torch_pruning as tp

    from amc_agent.env.errors import UserError

    def fail(*_, **__):
        raise ZeroDivisionError("integer division or modulo by zero")

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", fail)
    with pytest.raises(UserError, match=r"cannot trace .* \(ZeroDivisionError: integer"):
        discover_units(GroupedNet().eval(), EXAMPLE)
