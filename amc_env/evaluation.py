"""Reward-time evaluation: accuracy on a fixed validation subset, after BN recalibration.

The validation subset (held out from the training split) and the recalibration batches are loaded
into memory once, in a fixed order, so every episode is measured on exactly the same images.
BN recalibration (EagleEye, Li et al., ECCV 2020) re-estimates every BatchNorm's running mean and
variance on a few training batches before evaluating: without it a freshly pruned network's
stale statistics put every policy near chance and the reward carries no signal.

Scoring can run on an :func:`inference_copy` (BN folded into the preceding convolution,
channels-last layout): the same function up to float rounding; on ResNet-20 with 2 CPU threads the
evaluation part of an episode went from 0.84 to 0.58 s (BENCHMARKS.md, environment throughput).
"""

from __future__ import annotations

import torch
from torch import Tensor, fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import Dataset

from amc_agent.env.datasets import make_loader
from amc_agent.env.models import clone_model

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


def channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last memory layout if it is 4-d (same values)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def fold_plan(model: nn.Module) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) module-name pairs of ``model`` where the BN reads only that
    convolution's output and nothing else reads it, found by one torch.fx trace; empty where
    torch.fx cannot trace the model. Pruning changes widths, not this wiring, so one plan serves
    every episode."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception:
        return []
    mods = dict(model.named_modules())
    pairs = []
    for node in traced.graph.nodes:
        src = node.args[0] if node.op == "call_module" and node.args else None
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        conv, bn = mods.get(str(src.target)), mods.get(str(node.target))
        if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
            pairs.append((str(src.target), str(node.target)))
    return pairs


def inference_copy(model: nn.Module, plan: list[tuple[str, str]]) -> nn.Module:
    """A copy of ``model`` for eval-mode scoring only: each pair of ``plan`` (see
    :func:`fold_plan`) folded into one convolution (``fuse_conv_bn_eval``: the same affine map,
    so outputs differ only by float rounding) with the BN replaced by ``nn.Identity``, in
    channels-last layout, where oneDNN runs the narrow, odd-width convolutions of pruned networks
    fastest. Never train the copy: folding uses the running statistics."""
    scored = clone_model(model).eval()
    for conv_name, bn_name in plan:
        conv, bn = scored.get_submodule(conv_name), scored.get_submodule(bn_name)
        scored.set_submodule(conv_name, fuse_conv_bn_eval(conv, bn))
        scored.set_submodule(bn_name, nn.Identity())
    return scored.to(memory_format=torch.channels_last)


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
