"""MACs and parameter counts: the one place the project counts model cost.

Units: **MACs** (multiply-accumulates) for one sample, as AMC's "FLOPs" (FLOPs = 2 x MACs), and
parameters as a plain count of every element of ``model.parameters()``. MACs come from PyTorch's
``torch.utils.flop_counter`` (convolutions, linear layers and matmuls; element-wise ops such as BN,
ReLU and residual adds are not counted, as in AMC and the ResNet paper's 41M/125M figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Cost:
    """A model's size for one input sample: ``macs`` (MACs) and ``params`` (count)."""

    macs: int
    params: int


def count_params(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass on a single sample of shape ``input_shape`` (C, H, W)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def measure_cost(model: nn.Module, input_shape: tuple[int, ...]) -> Cost:
    """MACs and params of ``model`` for one sample of shape ``input_shape``."""
    return Cost(macs=count_macs(model, input_shape), params=count_params(model))
