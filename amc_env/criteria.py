"""Criteria: which channels of a unit to keep, given how many (Torch-Pruning ``importance.py``
style: small objects with one contract, selected by name).

Contract: ``Criterion.select(ctx, n_keep)`` returns the sorted indices of the ``n_keep`` channels
to keep. The default ranks ``scores(ctx)`` (one number per channel, larger = more important).
``ctx`` (:class:`UnitContext`) carries the current partially pruned model and the unit's group,
the original model, fixed calibration batches and a seeded generator, so criteria that need data
(SNIP, reconstruction) have it. ``after_prune(ctx, kept)`` runs once the unit is cut, for
criteria that rewrite the consumer layers' weights (least-squares reconstruction).

Registered: ``l1``, ``l2`` (filter norms; Li et al., "Pruning Filters for Efficient ConvNets",
ICLR 2017), ``slimming`` (BN-gamma magnitude; Liu et al., ICCV 2017), ``snip`` (connection
sensitivity |g * w| from one mini-batch, summed per channel; Lee et al., ICLR 2019), ``random``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch_pruning as tp
from torch import Tensor, nn
from torch.nn import functional as F

from amc_env.errors import UserError
from amc_env.registry import Registry
from amc_env.units import PRUNABLE_ROOTS, Unit

_BN = nn.modules.batchnorm._BatchNorm


@dataclass
class UnitContext:
    """Everything a criterion may look at for one unit of one episode."""

    unit: Unit
    model: nn.Module
    """The episode's copy, with earlier units already cut."""
    graph: tp.DependencyGraph
    group: tp.Group
    """The unit's full group on ``model`` (every channel)."""
    original: nn.Module
    original_group: tp.Group
    """The same unit's group on the unpruned model (same channel indices: units are disjoint)."""
    calibration: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    """Fixed training batches (no augmentation), on the env's device."""
    rng: torch.Generator = field(default_factory=torch.Generator)


def _per_channel(item: tp._helpers.GroupItem, values: Tensor, channels: int) -> Tensor:
    """Sum per-index ``values`` (indexed like ``item.idxs``) onto the unit's channels."""
    out = torch.zeros(channels, dtype=torch.float64)
    out.index_add_(0, torch.as_tensor(item.root_idxs), values.double().cpu())
    return out


def _is_out(graph: tp.DependencyGraph, item: tp._helpers.GroupItem) -> bool:
    return graph.is_out_channel_pruning_fn(item.dep.handler)


class Criterion(ABC):
    """Chooses the channels a unit keeps."""

    name: ClassVar[str]
    needs_data: ClassVar[bool] = False

    @abstractmethod
    def scores(self, ctx: UnitContext) -> Tensor:
        """One importance per channel of ``ctx.unit`` (larger = keep)."""

    def select(self, ctx: UnitContext, n_keep: int) -> list[int]:
        """Sorted indices of the ``n_keep`` most important channels (ties: lower index wins)."""
        s = self.scores(ctx)
        order = torch.argsort(-s, stable=True)
        return sorted(order[:n_keep].tolist())

    def after_prune(self, ctx: UnitContext, kept: list[int]) -> None:  # noqa: B027
        """Hook run after the cut (``ctx`` now holds the pruned model); default: nothing."""


CRITERIA: Registry[type[Criterion]] = Registry("criterion")


class FilterNorm(Criterion):
    """Sum over the unit's conv/linear members of each output filter's Lp norm."""

    p: ClassVar[int]

    def scores(self, ctx: UnitContext) -> Tensor:
        total = torch.zeros(ctx.unit.channels, dtype=torch.float64)
        for item in ctx.group:
            mod = item.dep.target.module
            if isinstance(mod, PRUNABLE_ROOTS) and _is_out(ctx.graph, item):
                w = mod.weight.detach()[item.idxs].flatten(1)
                total += _per_channel(item, w.norm(p=self.p, dim=1), ctx.unit.channels)
        return total


@CRITERIA.register("l1")
class L1(FilterNorm):
    """L1 norm of filters (Li et al. 2017)."""

    name, p = "l1", 1


@CRITERIA.register("l2")
class L2(FilterNorm):
    """L2 norm of filters."""

    name, p = "l2", 2


@CRITERIA.register("slimming")
class Slimming(Criterion):
    """|gamma| of the unit's BatchNorm layers (Network Slimming, Liu et al. 2017); train with
    ``amc-train --slimming-lambda`` so the gammas are sparse."""

    name = "slimming"

    def scores(self, ctx: UnitContext) -> Tensor:
        total = torch.zeros(ctx.unit.channels, dtype=torch.float64)
        found = False
        for item in ctx.group:
            mod = item.dep.target.module
            if isinstance(mod, _BN) and mod.weight is not None and _is_out(ctx.graph, item):
                found = True
                total += _per_channel(item, mod.weight.detach()[item.idxs].abs(),
                                      ctx.unit.channels)
        if not found:
            raise UserError(f"criterion 'slimming' needs BatchNorm after unit {ctx.unit.name!r}; "
                            "use l1 for this model")
        return total


@CRITERIA.register("snip")
class Snip(Criterion):
    """SNIP connection sensitivity (Lee et al. 2019): |dL/dw * w| on one mini-batch of the
    *original* model, summed over every weight a channel carries (its filters, BN scale, and the
    consumers' input slices). Computed once per criterion object and cached."""

    name, needs_data = "snip", True

    def __init__(self) -> None:
        self._sens: dict[int, Tensor] | None = None

    def _sensitivities(self, ctx: UnitContext) -> dict[int, Tensor]:
        if self._sens is None:
            if not ctx.calibration:
                raise UserError("criterion 'snip' needs calibration data")
            model = ctx.original
            x, y = ctx.calibration[0]
            was = model.training
            model.eval()
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            model.train(was)
            self._sens = {id(p): (p.grad * p).detach().abs() for p in model.parameters()
                          if p.grad is not None}
            model.zero_grad(set_to_none=True)
        return self._sens

    def scores(self, ctx: UnitContext) -> Tensor:
        sens = self._sensitivities(ctx)
        total = torch.zeros(ctx.unit.channels, dtype=torch.float64)
        for item in ctx.original_group:
            mod = item.dep.target.module
            weight = getattr(mod, "weight", None)
            if not isinstance(mod, (*PRUNABLE_ROOTS, _BN)) or id(weight) not in sens:
                continue
            s = sens[id(weight)]
            if _is_out(ctx.graph, item):
                per = s[item.idxs].flatten(1).sum(1) if s.dim() > 1 else s[item.idxs]
            elif s.dim() > 1 and not (isinstance(mod, nn.Conv2d) and mod.groups > 1):
                per = s[:, item.idxs].transpose(0, 1).flatten(1).sum(1)
            else:
                continue
            total += _per_channel(item, per, ctx.unit.channels)
        return total


@CRITERIA.register("random")
class RandomCriterion(Criterion):
    """Uniformly random channels (seeded by the environment)."""

    name = "random"

    def scores(self, ctx: UnitContext) -> Tensor:
        return torch.rand(ctx.unit.channels, generator=ctx.rng, dtype=torch.float64)


def make_criterion(spec: str | Criterion) -> Criterion:
    """A criterion object from a registered name, or ``spec`` itself if already one."""
    if isinstance(spec, Criterion):
        return spec
    return CRITERIA.get(spec)()
