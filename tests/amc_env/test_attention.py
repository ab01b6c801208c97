"""Swin's window attention has a cuttable q/k/v width: the prepared block computes exactly what
torchvision's does, discovery makes its width a head-balanced unit, a cut equals the original with
those q/k/v dimensions zeroed, and cost and export are exact."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.models.swin_transformer import (
    PatchMergingV2,
    ShiftedWindowAttention,
    SwinTransformer,
    SwinTransformerBlockV2,
)

from amc_agent.env import attention
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.surgery import Surgeon
from amc_agent.env.units import discover_units
from amc_agent.policies.heuristics import HEURISTICS
from tests.amc_env.helpers import FAST, check_exact_cost_and_export, synthetic

EXAMPLE = torch.zeros(1, 3, 16, 16)
WIDTH, HEADS = 16, 2  # the first stage's attention: 2 heads of 8


def _swin(version: int) -> nn.Module:
    """A two-stage Swin (V1 or V2) for 16 x 16 inputs, with non-zero biases everywhere (V2 must
    ignore its key bias)."""
    torch.manual_seed(0)
    extra = ({"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2}
             if version == 2 else {})
    net = SwinTransformer(patch_size=[2, 2], embed_dim=WIDTH, depths=[2, 1],
                          num_heads=[HEADS, 4], window_size=[4, 4], num_classes=4, **extra)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.Linear) and mod.bias is not None:
                mod.bias.normal_(0, 0.5)
    return net.eval()


@pytest.mark.parametrize("version", [1, 2])
def test_prepared_block_computes_what_torchvision_does(version: int) -> None:
    net = _swin(version)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        before = net(x)
        prepared = attention.prepare(copy.deepcopy(net))
        assert torch.equal(prepared(x), before)
    assert len(attention.blocks(prepared)) == 3


@pytest.mark.parametrize("version", [1, 2])
def test_attention_width_is_a_head_balanced_unit(version: int) -> None:
    units = {u.name: u for u in discover_units(_swin(version), EXAMPLE)}
    unit = units["features.1.0.attn.qkv"]
    assert (unit.channels, unit.channel_groups) == (WIDTH, HEADS)
    assert unit.consumers == ("features.1.0.attn.proj",)
    assert units["features.3.0.attn.qkv"].channel_groups == 4


@pytest.mark.parametrize("version", [1, 2])
def test_cutting_attention_equals_zeroing_those_dimensions(version: int) -> None:
    # Same positions in both heads, q, k and v alike; V1 keeps its softmax temperature, so the
    # cut network is the original with those dimensions removed, not a re-scaled one.
    keep = [0, 2, 3, 5, 8, 10, 11, 13]
    surgeon = Surgeon(_swin(version), EXAMPLE)
    surgeon.prune("features.1.0.attn.qkv", keep)
    attn = surgeon.model.features[1][0].attn
    assert (attn.qkv.out_features, attn.proj.in_features) == (3 * len(keep), len(keep))
    masked = _swin(version)
    drop = [i for i in range(WIDTH) if i not in keep]
    with torch.no_grad():
        ref = masked.features[1][0].attn
        for part in range(3):
            ref.qkv.weight[[part * WIDTH + i for i in drop]] = 0
            ref.qkv.bias[[part * WIDTH + i for i in drop]] = 0
        ref.proj.weight[:, drop] = 0
        x = torch.randn(3, 3, 16, 16)
        torch.testing.assert_close(surgeon.model(x), masked(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("version", [1, 2])
def test_swin_prunes_with_exact_cost_and_identical_export(version: int) -> None:
    env = ChannelPruningEnv(_swin(version), synthetic(), **FAST, budget=0.5)
    assert sum(u.name.endswith(".qkv") for u in env.units) == 3
    info = env.play(HEURISTICS.get("random")(env, seed=0))
    assert info["keep_ratios"]["features.1.0.attn.qkv"] < 1
    check_exact_cost_and_export(env, info, lambda: _swin(version), 0.5)


class OwnAttention(ShiftedWindowAttention):
    """A user's subclass with its own forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_users_attention_subclass_keeps_its_forward() -> None:
    block = OwnAttention(8, [2, 2], [0, 0], 2)
    attention.prepare(block)
    assert type(block) is OwnAttention and not attention.blocks(block)
