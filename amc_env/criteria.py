"""Criteria: which channels of a unit to keep, given how many (Torch-Pruning ``importance.py``
style: small objects with one contract, selected by name).

Contract: ``Criterion.select(ctx, n_keep)`` returns the sorted indices of the ``n_keep`` channels
to keep. The default ranks ``scores(ctx)`` (one number per channel, larger = more important).
A unit cut group-balanced (``Unit.channel_groups`` > 1, grouped convolutions) keeps the same
positions in every block: scores are summed over the blocks per position (Torch-Pruning reduces
them the same way), and ThiNet/LASSO select positions from block-summed Gram matrices, which is
exact since a position's channels go together.
``ctx`` (:class:`UnitContext`) carries the current partially pruned model and the unit's group,
the original model, fixed calibration batches, the reconstruction calibrator and a seeded
generator, so criteria that need data (SNIP, ThiNet, LASSO) have it. A criterion whose
``reconstruct`` is true has the environment refit the unit's consumer layers by least squares
after the cut (:mod:`amc_agent.env.reconstruction`).

Registered: ``l1``, ``l2`` (filter norms of the producing layers only; Li et al., "Pruning Filters
for Efficient ConvNets", ICLR 2017), ``consumer-l1`` (AMC's: the L1 norm of each channel's input
columns in the layers that read it), ``group-l1``, ``group-l2`` (the whole coupled group: every
member's filters, BN scales and the consumers' input columns; ``group-l2`` is Torch-Pruning's
default importance), ``taylor`` (first-order Taylor expansion of the loss over the group; Molchanov
et al., CVPR 2019), ``slimming`` (BN-gamma magnitude; Liu et al., ICCV 2017), ``snip`` (connection
sensitivity |g * w| from one mini-batch, summed per channel; Lee et al., ICLR 2019), ``random``,
``thinet`` (greedy reconstruction-error selection; Luo et al., ICCV 2017) and ``lasso`` (LASSO
channel selection; He et al., ICCV 2017); both end with the least-squares refit. Any name takes
the suffix ``+reconstruct`` (``l1+reconstruct``) to add that refit (AMC's step) to its selection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch_pruning as tp
from torch import Tensor, nn
from torch.nn import functional as F

from amc_agent.env.errors import UserError
from amc_agent.env.reconstruction import Calibrator, ConsumerSample
from amc_agent.env.registry import Registry
from amc_agent.env.units import PRUNABLE_ROOTS, Unit

RECONSTRUCT = "+reconstruct"

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
    calibrator: Calibrator | None = None
    """Consumer sampling and least-squares refits (set when the criterion needs it)."""
    kept: Mapping[str, Sequence[int]] = field(default_factory=dict)
    """What earlier units of this episode kept, by unit name."""

    def consumer_samples(self) -> list[ConsumerSample]:
        """Calibration rows of the unit's consumers (cached per episode)."""
        if self.calibrator is None:
            raise UserError(f"unit {self.unit.name!r}: this criterion needs calibration data")
        return self.calibrator.sample(self.unit, self.model, self.group, self.graph, self.kept)


def _per_channel(item: tp._helpers.GroupItem, values: Tensor, channels: int) -> Tensor:
    """Sum per-index ``values`` (indexed like ``item.idxs``) onto the unit's channels."""
    out = torch.zeros(channels, dtype=torch.float64)
    out.index_add_(0, torch.as_tensor(item.root_idxs), values.double().cpu())
    return out


def _is_out(graph: tp.DependencyGraph, item: tp._helpers.GroupItem) -> bool:
    return graph.is_out_channel_pruning_fn(item.dep.handler)


def _summed(ctx: UnitContext,
            values: Callable[[tp._helpers.GroupItem, nn.Module], Tensor | None]) -> Tensor | None:
    """``values(item, module)`` (one number per index of the item, or None to skip the item)
    summed onto the unit's channels over the group; None when every item was skipped."""
    total, found = torch.zeros(ctx.unit.channels, dtype=torch.float64), False
    for item in ctx.group:
        v = values(item, item.dep.target.module)
        if v is not None:
            total += _per_channel(item, v, ctx.unit.channels)
            found = True
    return total if found else None


def _grad_weight_products(ctx: UnitContext, name: str,
                          batches: list[tuple[Tensor, Tensor]]) -> dict[int, list[Tensor]]:
    """``dL/dw * w`` of every parameter of the *original* model, one tensor per batch, by
    parameter id: cross-entropy backward in eval mode (BatchNorm statistics unchanged); the model's
    mode is restored and its gradients cleared afterwards."""
    if not batches:
        raise UserError(f"criterion {name!r} needs calibration data")
    model = ctx.original
    was = model.training
    model.eval()
    per: dict[int, list[Tensor]] = {}
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            for p in model.parameters():
                if p.grad is not None:
                    per.setdefault(id(p), []).append((p.grad * p).detach())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    return per


class Criterion(ABC):
    """Chooses the channels a unit keeps."""

    name: ClassVar[str]
    needs_data: ClassVar[bool] = False
    uses_consumers: ClassVar[bool] = False
    """Whether ``select`` reads consumer calibration rows (ThiNet, LASSO)."""
    deterministic: ClassVar[bool] = True
    """Whether the same channel counts always give the same channels (not ``random``)."""

    def __init__(self, reconstruct: bool = False) -> None:
        self.reconstruct = reconstruct
        """Refit the consumers by least squares after each cut."""

    @property
    def spec(self) -> str:
        """The name that rebuilds this criterion with :func:`make_criterion`."""
        return self.name + (RECONSTRUCT if self.reconstruct and not self.uses_consumers else "")

    @abstractmethod
    def scores(self, ctx: UnitContext) -> Tensor:
        """One importance per channel of ``ctx.unit`` (larger = keep)."""

    def select(self, ctx: UnitContext, n_keep: int) -> list[int]:
        """Sorted indices of the ``n_keep`` most important channels (ties: lower index wins);
        for a grouped unit the ``n_keep / channel_groups`` best positions of every block."""
        blocks = ctx.unit.channel_groups
        s = self.scores(ctx).reshape(blocks, -1).sum(0)
        order = torch.argsort(-s, stable=True)
        return ctx.unit.balanced(order[:n_keep // blocks].tolist())


CRITERIA: Registry[type[Criterion]] = Registry("criterion")


class FilterNorm(Criterion):
    """Sum over the unit's conv/linear members of each output filter's Lp norm."""

    p: ClassVar[int]

    def scores(self, ctx: UnitContext) -> Tensor:
        def norms(item: tp._helpers.GroupItem, mod: nn.Module) -> Tensor | None:
            if not (isinstance(mod, PRUNABLE_ROOTS) and _is_out(ctx.graph, item)):
                return None
            return mod.weight.detach()[item.idxs].flatten(1).norm(p=self.p, dim=1)

        total = _summed(ctx, norms)
        return torch.zeros(ctx.unit.channels, dtype=torch.float64) if total is None else total


@CRITERIA.register("l1")
class L1(FilterNorm):
    """L1 norm of filters (Li et al. 2017)."""

    name, p = "l1", 1


@CRITERIA.register("l2")
class L2(FilterNorm):
    """L2 norm of filters."""

    name, p = "l2", 2


@CRITERIA.register("consumer-l1")
class ConsumerL1(Criterion):
    """AMC's channel ranking (He et al. 2018, the authors' code): the L1 norm of each channel's
    input columns in the layers that read it (every consumer conv/linear; a linear layer after a
    flatten contributes all the features the channel feeds). Grouped (not depthwise) consumers are
    left out: their columns hold one group's inputs. A unit that no such layer reads is ranked by
    its producers' filter L1 (``l1``)."""

    name = "consumer-l1"

    def scores(self, ctx: UnitContext) -> Tensor:
        def columns(item: tp._helpers.GroupItem, mod: nn.Module) -> Tensor | None:
            if (not isinstance(mod, PRUNABLE_ROOTS) or _is_out(ctx.graph, item)
                    or getattr(mod, "groups", 1) > 1):
                return None
            return mod.weight.detach().transpose(0, 1)[item.idxs].flatten(1).abs().sum(dim=1)

        total = _summed(ctx, columns)
        return L1().scores(ctx) if total is None else total


class GroupMagnitude(Criterion):
    """Torch-Pruning's ``GroupMagnitudeImportance`` on the unit's whole group.

    For each channel and each group item with weights: ``sum |w|^p`` over what the channel
    carries there (a member's output filter, a BatchNorm/LayerNorm scale, a consumer's input
    column); the items are averaged (``group_reduction="mean"``) and the result divided by its
    mean over the unit's channels (``normalizer="mean"``), so units of different width and scale
    compare in a global ranking. With ``p=2`` this is a sum of squares, not a norm; the ranking
    within a unit is the same either way.
    """

    p: ClassVar[int]

    def scores(self, ctx: UnitContext) -> Tensor:
        imp = tp.importance.GroupMagnitudeImportance(
            p=self.p, group_reduction="mean", normalizer="mean")(ctx.group)
        if imp is None:
            raise UserError(f"criterion {self.name!r}: unit {ctx.unit.name!r} has no weights")
        return imp.detach().double().cpu()


@CRITERIA.register("group-l1")
class GroupL1(GroupMagnitude):
    """Group L1 magnitude (every member, BN scale and consumer column of the group)."""

    name, p = "group-l1", 1


@CRITERIA.register("group-l2")
class GroupL2(GroupMagnitude):
    """Group squared-L2 magnitude: Torch-Pruning's default importance
    (``tp.importance.GroupMagnitudeImportance()``)."""

    name, p = "group-l2", 2


@CRITERIA.register("taylor")
class Taylor(Criterion):
    """First-order Taylor importance over the group (Molchanov et al., "Importance Estimation
    for Neural Network Pruning", CVPR 2019, eq. 3-5).

    Removing channel ``c`` zeroes every weight it carries: its filters and biases in each member,
    its BatchNorm scale and shift, and the consumers' input columns. To first order the loss then
    changes by ``z_c = sum g * w`` over that set, on one mini-batch; the importance is the mean of
    ``z_c^2`` over the calibration batches (their squared-then-averaged estimate). Gradients are
    taken once, on the *original* model in eval mode (BatchNorm statistics unchanged), and cached;
    units are disjoint, so a channel's weights are the same in every episode until its own cut.
    """

    name, needs_data = "taylor", True

    def __init__(self, reconstruct: bool = False) -> None:
        super().__init__(reconstruct)
        self._gw: dict[int, Tensor] | None = None

    def _products(self, ctx: UnitContext) -> dict[int, Tensor]:
        """``g * w`` per batch (``[batches, *param.shape]``) by parameter id."""
        if self._gw is None:
            per = _grad_weight_products(ctx, "taylor", ctx.calibration)
            self._gw = {k: torch.stack([t.double().cpu() for t in v]) for k, v in per.items()}
        return self._gw

    def scores(self, ctx: UnitContext) -> Tensor:
        gw = self._products(ctx)
        z = torch.zeros(len(next(iter(gw.values()))), ctx.unit.channels, dtype=torch.float64)
        for item in ctx.original_group:
            mod = item.dep.target.module
            idx = torch.as_tensor(item.idxs)
            out = _is_out(ctx.graph, item)
            grouped = isinstance(mod, nn.Conv2d | nn.Conv1d) and mod.groups > 1
            for param in (getattr(mod, "weight", None), getattr(mod, "bias", None)):
                if not isinstance(param, Tensor) or id(param) not in gw:
                    continue
                g = gw[id(param)]
                if out:
                    per = g[:, idx].flatten(2).sum(2) if g.dim() > 2 else g[:, idx]
                elif g.dim() > 2 and not grouped and param is mod.weight:
                    per = g[:, :, idx].transpose(1, 2).flatten(2).sum(2)
                else:
                    continue  # a consumer's bias does not belong to the channel
                z.index_add_(1, torch.as_tensor(item.root_idxs), per)
        return (z ** 2).mean(0)


@CRITERIA.register("slimming")
class Slimming(Criterion):
    """|gamma| of the unit's BatchNorm layers (Network Slimming, Liu et al. 2017); train with
    ``amc-train --slimming-lambda`` so the gammas are sparse."""

    name = "slimming"

    def scores(self, ctx: UnitContext) -> Tensor:
        def gammas(item: tp._helpers.GroupItem, mod: nn.Module) -> Tensor | None:
            if isinstance(mod, _BN) and mod.weight is not None and _is_out(ctx.graph, item):
                return mod.weight.detach()[item.idxs].abs()
            return None

        total = _summed(ctx, gammas)
        if total is None:
            raise UserError(f"criterion 'slimming' needs BatchNorm after unit {ctx.unit.name!r}; "
                            "use l1 for this model")
        return total


@CRITERIA.register("snip")
class Snip(Criterion):
    """SNIP connection sensitivity (Lee et al. 2019): |dL/dw * w| on one mini-batch of the
    *original* model, summed over every weight a channel carries (its filters, BN scale, and the
    consumers' input slices). Computed once per criterion object and cached."""

    name, needs_data = "snip", True

    def __init__(self, reconstruct: bool = False) -> None:
        super().__init__(reconstruct)
        self._sens: dict[int, Tensor] | None = None

    def _sensitivities(self, ctx: UnitContext) -> dict[int, Tensor]:
        if self._sens is None:
            per = _grad_weight_products(ctx, "snip", ctx.calibration[:1])
            self._sens = {k: v[0].abs() for k, v in per.items()}
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

    name, deterministic = "random", False

    def scores(self, ctx: UnitContext) -> Tensor:
        return torch.rand(ctx.unit.channels, generator=ctx.rng, dtype=torch.float64)


class ConsumerCriterion(Criterion):
    """Base of the criteria that choose channels from the consumers' calibration rows; falls
    back to L1 ranking for a unit without a usable consumer. They always refit afterwards."""

    uses_consumers = True

    def __init__(self, reconstruct: bool = True) -> None:
        super().__init__(reconstruct=True)

    @abstractmethod
    def choose(self, G: Tensor, h: Tensor, n_keep: int) -> list[int]:
        """Kept unit channels from the normalised Gram matrix ``G`` and target products ``h``
        summed over consumers (see ConsumerSample.contributions)."""

    def scores(self, ctx: UnitContext) -> Tensor:
        return L1().scores(ctx)

    def select(self, ctx: UnitContext, n_keep: int) -> list[int]:
        samples = ctx.consumer_samples()
        if not samples:
            return super().select(ctx, n_keep)
        c = ctx.unit.channels
        G = torch.zeros(c, c, dtype=torch.float64)
        h = torch.zeros(c, dtype=torch.float64)
        for s in samples:
            g, hh = s.contributions(ctx.model)
            G += g / s.energy()
            h += hh / s.energy()
        blocks = ctx.unit.channel_groups
        if blocks > 1:  # one variable per position: the sum of its channels in every block
            G = G.reshape(blocks, c // blocks, blocks, c // blocks).sum((0, 2))
            h = h.reshape(blocks, -1).sum(0)
        return ctx.unit.balanced(self.choose(G, h, n_keep // blocks))


@CRITERIA.register("thinet")
class ThiNet(ConsumerCriterion):
    """ThiNet's greedy selection (Luo et al., ICCV 2017, Algorithm 1): repeatedly remove the
    channel whose removal adds least to the consumers' output error ``||sum_removed Z_c||^2``.
    With the Gram matrix the added error of channel c is ``G[c, c] + 2 sum_removed G[c, j]``,
    so each step is one vector update, not a forward pass per candidate."""

    name = "thinet"

    def choose(self, G: Tensor, h: Tensor, n_keep: int) -> list[int]:
        c = G.shape[0]
        alive = torch.ones(c, dtype=torch.bool)
        cross = torch.zeros(c, dtype=torch.float64)
        diag = G.diagonal().clone()
        for _ in range(c - n_keep):
            cost = torch.where(alive, diag + 2 * cross, torch.inf)
            j = int(torch.argmin(cost))
            alive[j] = False
            cross += G[:, j]
        return torch.nonzero(alive).flatten().tolist()


@CRITERIA.register("lasso")
class Lasso(ConsumerCriterion):
    """LASSO channel selection (He et al., ICCV 2017): per-channel coefficients ``beta``
    minimising ``||T - sum_c beta_c Z_c||^2 + lam ||beta||_1`` (FISTA on the Gram form), with
    ``lam`` raised by bisection until at most ``n_keep`` are non-zero; ties are filled by
    ``|beta|`` just below that penalty. The refit that follows is their second step.

    The Gram form (``C x C``) replaces sklearn's Lasso, which needs the ``(N * O) x C`` design
    matrix (hundreds of MB for a wide consumer)."""

    name = "lasso"
    iters: ClassVar[int] = 500
    grid: ClassVar[int] = 24
    bisections: ClassVar[int] = 10

    @classmethod
    def solve(cls, G: Tensor, h: Tensor, lams: Tensor) -> Tensor:
        """``[C, M]``: for each penalty in ``lams`` ``[M]``, ``argmin beta^T G beta -
        2 h^T beta + lam |beta|_1`` by FISTA (accelerated proximal gradient), all penalties at
        once."""
        step = 1.0 / (2 * float(torch.linalg.eigvalsh(G)[-1]) + 1e-300)
        x = torch.zeros(len(h), len(lams), dtype=torch.float64)
        z, t, thr, hh = x.clone(), 1.0, step * lams.view(1, -1), h.view(-1, 1)
        for _ in range(cls.iters):
            g = z - step * 2 * (G @ z - hh)
            nxt = torch.sign(g) * torch.clamp(g.abs() - thr, min=0)
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            z = nxt + (t - 1) / t_next * (nxt - x)
            done = float((nxt - x).abs().max()) <= 1e-10 * max(1.0, float(nxt.abs().max()))
            x, t = nxt, t_next
            if done:
                break
        return x

    def choose(self, G: Tensor, h: Tensor, n_keep: int) -> list[int]:
        top = 2 * float(h.abs().max()) + 1e-12  # at or above this every beta is zero
        lams = torch.cat([torch.zeros(1, dtype=torch.float64),
                          top * torch.logspace(-6, 0, self.grid, dtype=torch.float64)])
        betas = self.solve(G, h, lams)
        nnz = (betas != 0).sum(0)
        i = int(torch.nonzero(nnz <= n_keep)[0])  # smallest penalty keeping at most n_keep
        beta_hi = betas[:, i]
        if i == 0:
            beta_lo = beta_hi
        else:
            lo, hi, beta_lo = float(lams[i - 1]), float(lams[i]), betas[:, i - 1]
            for _ in range(self.bisections):
                mid = (lo + hi) / 2
                beta = self.solve(G, h, torch.tensor([mid], dtype=torch.float64))[:, 0]
                if int((beta != 0).sum()) <= n_keep:
                    hi, beta_hi = mid, beta
                else:
                    lo, beta_lo = mid, beta
        rank = (beta_hi != 0).double() * 2 + beta_lo.abs() / (beta_lo.abs().max() + 1e-300)
        return torch.argsort(-rank, stable=True)[:n_keep].tolist()


def criterion_name(spec: str) -> str:
    """The registered name inside a criterion spec (``l1+reconstruct`` -> ``l1``)."""
    return spec.removesuffix(RECONSTRUCT)


def make_criterion(spec: str | Criterion) -> Criterion:
    """A criterion object from a spec (a registered name, optionally ``+reconstruct``), or
    ``spec`` itself if already one."""
    if isinstance(spec, Criterion):
        return spec
    return CRITERIA.get(criterion_name(spec))(reconstruct=spec.endswith(RECONSTRUCT))
