"""The cost model's predictions equal a recount of the physically pruned model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from amc_agent.env.cost import count_macs, count_params
from amc_agent.env.costmodel import CostModel
from amc_agent.env.surgery import Surgeon
from amc_agent.env.units import discover_units
from tests.amc_env.helpers import model
from tests.amc_env.test_grouped import ResNeXtNet


class Concat(nn.Module):
    """Two branches concatenated, then a conv: a consumer fed by two units."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 12, 1), nn.BatchNorm2d(12), nn.ReLU())
        self.c = nn.Conv2d(20, 16, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.c(torch.cat([self.a(x), self.b(x)], 1))))


def flatten_net() -> nn.Module:
    """A conv whose channels reach the classifier through a flatten (in_features = C x H x W)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 4))


class InnerResidual(nn.Module):
    """EfficientNet's expand-ratio-1 block: the stream goes through a depthwise conv and a 1x1
    conv that writes back into the same stream, so that conv's input and output are both cut."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(x + self.pw(torch.relu(self.dw(x))))


class PatchMLP(nn.Module):
    """MobileViT-style: the 2x2 patch positions folded into the batch axis, so the MLP's linear
    layers see ``(B * 4, H * W / 4, C)``: their first axis is not the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = nn.Linear(8, 24)
        self.fc2 = nn.Linear(24, 8)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, c, h, w = x.shape
        t = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 2, 4, 1)
        t = t.reshape(b * 4, h * w // 4, c)
        t = t + self.fc2(torch.relu(self.fc1(t)))
        t = t.reshape(b, 2, 2, h // 2, w // 2, c).permute(0, 5, 3, 1, 4, 2)
        return self.head(t.reshape(b, c, h, w))


CASES = {
    "patch_mlp": PatchMLP,
    "resnet20": lambda: model("resnet20"),
    "plain20": lambda: model("plain20"),
    "vgg16": lambda: model("vgg16"),
    "mobilenetv2": lambda: model("mobilenetv2"),
    "resnet18": lambda: model("resnet18"),
    "mobilenet_v3_small": lambda: model("mobilenet_v3_small"),
    "concat": Concat,
    "flatten": flatten_net,
    "inner_residual": InnerResidual,
    "resnext_block": ResNeXtNet,
    "regnet_x_400mf": lambda: model("regnet_x_400mf"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_prediction_equals_recount(case: str) -> None:
    torch.manual_seed(0)
    m = CASES[case]().eval()
    example = torch.zeros(1, 3, 16, 16)
    units = discover_units(m, example)
    cost = CostModel(m, units, example)
    assert cost.original["flops"] == count_macs(m, (3, 16, 16))
    assert cost.original["params"] == count_params(m)
    rng = np.random.default_rng(1)
    width = [u.channels // u.channel_groups for u in units]  # one block's width
    kept = [int(rng.integers(1, w + 1)) * u.channel_groups for u, w in zip(units, width,
                                                                           strict=True)]
    s = Surgeon(m, example)
    for u, k, w in zip(units, kept, width, strict=True):
        s.prune(u.name, u.balanced(rng.choice(w, k // u.channel_groups, replace=False).tolist()))
    assert count_macs(s.model, (3, 16, 16)) == cost.macs(kept)
    assert count_params(s.model) == cost.params(kept)
    with torch.no_grad():
        assert s.model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_concat_consumer_is_shared_by_both_units() -> None:
    units = discover_units(Concat().eval(), torch.zeros(1, 3, 16, 16))
    by_name = {u.name: u for u in units}
    assert "c" in by_name["a.0"].consumers and "c" in by_name["b.0"].consumers
    assert set(by_name) == {"a.0", "b.0", "c"}


def test_flatten_consumer_counts_features() -> None:
    units = discover_units(flatten_net().eval(), torch.zeros(1, 3, 16, 16))
    second = units[1]
    assert second.consumers == ("6",) and second.consumer_features == (8 * 8 * 8,)
