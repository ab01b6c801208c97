"""Reward-time evaluation: accuracy on a fixed validation subset, after BN recalibration.

The validation subset (held out from the training split) and the recalibration batches are loaded
into memory once, in a fixed order, so every episode is measured on exactly the same images.
BN recalibration (EagleEye, Li et al., ECCV 2020) re-estimates every BatchNorm's running mean and
variance on a few training batches before evaluating: without it a freshly pruned network's
stale statistics put every policy near chance and the reward carries no signal.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from amc_env.datasets import make_loader

_BN = nn.modules.batchnorm._BatchNorm


def take_batches(
    dataset: Dataset, n_samples: int, batch_size: int, device: str, seed: int | None = None
) -> list[tuple[Tensor, Tensor]]:
    """The first ``n_samples`` of ``dataset`` (shuffled by ``seed`` if given), in memory."""
    loader = make_loader(dataset, batch_size, shuffle=seed is not None, seed=seed or 0)
    out, seen = [], 0
    for x, y in loader:
        if seen >= n_samples:
            break
        x, y = x[: n_samples - seen], y[: n_samples - seen]
        seen += len(y)
        out.append((x.to(device), y.to(device)))
    return out


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> None:
    """Reset and re-estimate BN running statistics as the exact average over ``batches``."""
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns or not batches:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average instead of an exponential one
    was = model.training
    model.train()
    try:
        for x, _ in batches:
            model(x)
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was)


@torch.no_grad()
def accuracy(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> float:
    """Top-1 accuracy (fraction) in eval mode over in-memory ``batches``."""
    was = model.training
    model.eval()
    try:
        correct = sum((model(x).argmax(1) == y).sum().item() for x, y in batches)
    finally:
        model.train(was)
    return correct / max(1, sum(len(y) for _, y in batches))
