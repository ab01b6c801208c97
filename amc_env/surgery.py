"""Physical channel removal with Torch-Pruning: smaller tensors, not masks.

:class:`Surgeon` owns a private copy of a model and its dependency graph; each episode of the
environment prunes a fresh copy, unit by unit. The record of what was kept,
``{"input_shape": [C, H, W], "kept": {unit root name: [kept channel indices]}}``, replays on a
fresh build of the original architecture (:func:`apply_pruning_record`), which is how pruned
checkpoints are stored without pickling modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from amc_agent.env.depgraph import build_graph, prune_group, unit_group, unit_width
from amc_agent.env.errors import UserError
from amc_agent.env.models import clone_model
from amc_agent.env.units import Unit


def full_group(graph: tp.DependencyGraph, model: nn.Module, root: str) -> tp.Group:
    """The Torch-Pruning group of every output channel of module ``root`` (for scoring)."""
    mod = model.get_submodule(root)
    return unit_group(graph, mod, range(unit_width(graph, mod)))


def prune_root(
    graph: tp.DependencyGraph, model: nn.Module, root: str, keep: Sequence[int]
) -> None:
    """Keep only channels ``keep`` of the unit rooted at ``root`` (and everything coupled)."""
    mod = model.get_submodule(root)
    n = unit_width(graph, mod)
    keep_set = set(int(i) for i in keep)
    if not keep_set or min(keep_set) < 0 or max(keep_set) >= n:
        raise UserError(f"unit {root!r}: kept channels must be 1..{n} indices in [0, {n - 1}]")
    removed = [i for i in range(n) if i not in keep_set]
    if removed:
        prune_group(unit_group(graph, mod, removed))


class Surgeon:
    """A private copy of ``model`` with its dependency graph, pruned unit by unit."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        self.model = clone_model(model)
        self.graph = build_graph(self.model, example)
        self.kept: dict[str, list[int]] = {}
        self.input_shape = list(example.shape[1:])

    def group(self, root: str) -> tp.Group:
        """The current full group of the unit rooted at ``root``."""
        return full_group(self.graph, self.model, root)

    def prune(self, root: str, keep: Sequence[int]) -> None:
        """Cut the unit rooted at ``root`` down to channels ``keep`` (original indices)."""
        prune_root(self.graph, self.model, root, keep)
        self.kept[root] = sorted(int(i) for i in keep)

    def record(self) -> dict[str, Any]:
        """The pruning record (plain types) of what was cut so far."""
        return {"input_shape": list(self.input_shape), "kept": dict(self.kept)}


def apply_pruning_record(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """Replay a pruning record on a fresh build of the original architecture (in place)."""
    try:
        shape = [int(v) for v in record["input_shape"]]
        kept = {str(k): [int(i) for i in v] for k, v in record["kept"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError("pruning record is malformed (needs input_shape and kept)") from None
    graph = build_graph(model, torch.zeros(1, *shape))
    names = dict(model.named_modules())
    for root, keep in kept.items():
        if root not in names:
            raise UserError(f"pruning record names module {root!r}, which the model lacks")
        prune_root(graph, model, root, keep)
    return model


def pruned_copy(model: nn.Module, example: torch.Tensor, units: Sequence[Unit],
                counts: Sequence[float]) -> nn.Module:
    """A copy of ``model`` with each unit cut to ``counts`` channels, keeping its first ones
    (the same positions in every head or group block): for timing a width, where which
    channels go does not matter."""
    surgeon = Surgeon(model, example)
    for u, k in zip(units, counts, strict=True):
        surgeon.prune(u.name, u.balanced(range(int(k) // u.channel_groups)))
    return surgeon.model
