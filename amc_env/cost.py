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
def _counted(model: nn.Module, input_shape: tuple[int, ...]) -> FlopCounterMode:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return counter


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass on a single sample of shape ``input_shape`` (C, H, W)."""
    return _counted(model, input_shape).get_total_flops() // 2


def count_macs_by_module(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs of one sample's forward pass inside each module (its submodules included), by
    module name (``""``: the whole model)."""
    counts = _counted(model, input_shape).get_flop_counts()
    prefix = type(model).__name__
    out = {}
    for key, ops in counts.items():
        if key == prefix or key.startswith(prefix + "."):
            out[key[len(prefix) + 1:]] = sum(ops.values()) // 2
    return out


def measure_cost(model: nn.Module, input_shape: tuple[int, ...]) -> Cost:
    """MACs and params of ``model`` for one sample of shape ``input_shape``."""
    return Cost(macs=count_macs(model, input_shape), params=count_params(model))
