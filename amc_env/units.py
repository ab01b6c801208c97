"""Prunable units: groups of coupled channels found by Torch-Pruning's dependency graph.

A *unit* is one Torch-Pruning group rooted at a conv or linear layer's output channels: every
layer whose output channels must go with it (a residual stage's convs and shortcut projection,
BatchNorms, depthwise convs) and every layer that consumes those channels. The layer that produces
the network's output (the classifier) is never a unit; the network input is never pruned.

Units are ordered by when their root layer first runs in a forward pass (AMC walks layers in
that order), and named by the root module's name, which is how policies refer to them.

A unit whose channels leave or enter a grouped (not depthwise) convolution (ResNeXt, RegNet) has
``channel_groups`` > 1: its channels form that many equal blocks, one per convolution group, and
it is cut group-balanced (the same positions in every block, as Torch-Pruning's own pruners do),
so every group keeps the same width and the convolution keeps its group count.

Channels tied at a fixed stride (removing channel i of a GhostNet stream removes i + w too, because
the second half is a depthwise copy of the first, concatenated behind it) form equal blocks the same
way and are cut balanced, so each concatenated member keeps its share.

Some coupled channels cannot be cut on an arbitrary model, and are left unpruned with a warning:
groups that reach an operation Torch-Pruning cannot map (a channel shuffle, attention-head
reshapes, a concatenation of unknown widths: :mod:`amc_agent.env.depgraph`), channels tied
irregularly, groups whose convolution groups leave nothing to cut (one channel per group), and
groups whose removal breaks the forward pass, typically because the model's code hard-codes a width
(a ViT's ``reshape(n, hidden_dim, -1)``). The second kind is found by trying: each unit loses one
channel per block on a scratch copy and the copy must still run.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from amc_agent.env import attention, depgraph, unit_cache
from amc_agent.env.depgraph import build_graph, prune_group, root_groups
from amc_agent.env.errors import UserError, first_line
from amc_agent.env.models import clone_model

PRUNABLE_ROOTS = (nn.Conv2d, nn.Conv1d, nn.Linear)


@dataclass(frozen=True)
class Unit:
    """One group of coupled channels.

    ``channels`` is the group's original width; ``members`` are the layers whose output channels
    are cut with it, ``consumers`` those whose input channels are, and ``consumer_features[i]``
    how many input features of ``consumers[i]`` belong to this unit (``channels``, or
    ``channels x H x W`` for a linear layer after a flatten). ``in_channels``, ``height``,
    ``width`` (input feature map, pixels), ``stride`` and ``kernel`` describe the root layer, as in
    AMC's per-layer state.
    """

    index: int
    name: str
    channels: int
    members: tuple[str, ...]
    consumers: tuple[str, ...]
    consumer_features: tuple[int, ...]
    in_channels: int
    height: int
    width: int
    stride: int
    kernel: int
    inner_features: tuple[tuple[str, int], ...] = ()
    """Members that also read the unit's channels (a full conv inside the residual stream it
    writes to, e.g. EfficientNet's expand-ratio-1 blocks): ``(name, input features from the
    unit)``. Their cost scales with the unit twice; they are not reconstruction consumers."""
    channel_groups: int = 1
    """Equal blocks the channels form for the grouped convolutions they leave or enter (the
    least common multiple of their group counts); cuts keep the same positions in every block."""

    def balanced(self, positions: Sequence[int]) -> list[int]:
        """Channel indices for kept ``positions`` within one block, repeated in every block."""
        width = self.channels // self.channel_groups
        return sorted(g * width + int(p) for g in range(self.channel_groups) for p in positions)


@dataclass(frozen=True)
class LayerTrace:
    """What one forward pass saw of a module: input shape, output shape, execution order."""

    order: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def trace_layers(model: nn.Module, example: torch.Tensor) -> dict[str, LayerTrace]:
    """Run ``model(example)`` once with hooks on every leaf module; eval mode, no grad."""
    traces: dict[str, LayerTrace] = {}
    hooks = []

    def hook(name: str):
        def fn(mod: nn.Module, inputs: tuple, output: object) -> None:
            if name in traces or not inputs or not isinstance(inputs[0], torch.Tensor):
                return
            out_shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
            traces[name] = LayerTrace(len(traces), tuple(inputs[0].shape), out_shape)

        return fn

    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            hooks.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return traces


def head_layer(model: nn.Module, traces: dict[str, LayerTrace]) -> str | None:
    """The last conv/linear layer to run: it produces the network's output, never pruned."""
    names = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE_ROOTS) and n in traces]
    return max(names, key=lambda n: traces[n].order) if names else None


def is_out_pruning(graph: tp.DependencyGraph, handler: object) -> bool:
    """Whether a group item's handler cuts its target's output channels."""
    return graph.is_out_channel_pruning_fn(handler)


DISCOVERY_TIMEOUT_S = 900.0
"""Default bound on unit discovery, in seconds (the group search of a very large graph)."""


def discover_units(
    model: nn.Module,
    example: torch.Tensor,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    timeout_s: float = DISCOVERY_TIMEOUT_S,
) -> list[Unit]:
    """The prunable units of ``model`` in forward order.

    ``include``/``exclude`` are shell patterns (``fnmatch``) on a unit's root module name: with
    ``include``, only matching units are kept; matching ``exclude`` removes a unit. Raises
    :class:`UserError` when nothing is left to prune, or when discovery takes longer than
    ``timeout_s`` seconds. Results are cached per architecture (:mod:`amc_agent.env.unit_cache`).
    """
    attention.prepare(model)  # before the fingerprint: it reads the module classes
    key = unit_cache.fingerprint(model, example, include, exclude,
                                 (sys.modules[__name__], depgraph, attention))
    cached = unit_cache.load(key, Unit) if key else None
    if cached is not None:
        return cached
    units, warning = _discover(model, example, include, exclude,
                               time.monotonic() + timeout_s, timeout_s)
    if warning:
        warnings.warn(warning, stacklevel=2)
    if key:
        unit_cache.store(key, units, warning)
    return units


def _past(deadline: float, timeout_s: float, stage: str) -> None:
    """Stop discovery past its deadline, with one line naming the bound."""
    if time.monotonic() > deadline:
        raise UserError(f"unit discovery did not finish within {timeout_s:.0f} s ({stage}); "
                        "restrict it to part of the model with --include/--exclude")


def _discover(model: nn.Module, example: torch.Tensor, include: Sequence[str],
              exclude: Sequence[str], deadline: float,
              timeout_s: float) -> tuple[list[Unit], str | None]:
    """Units and the warning naming what was left unpruned (see :func:`discover_units`)."""
    traces = trace_layers(model, example)
    graph = build_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    head = head_layer(model, traces)
    ignored = [model.get_submodule(head)] if head else []
    units: list[tuple[int, Unit]] = []
    skipped: dict[str, str] = {}
    for first, group, why in root_groups(graph, ignored, PRUNABLE_ROOTS):
        _past(deadline, timeout_s, "dependency groups")
        if group is None:
            if names.get(first) in traces:
                skipped[names[first]] = why
            continue
        members: list[str] = []
        consumers: dict[str, int] = {}
        for dep, idxs in group:
            target = names.get(dep.target.module)
            if target is None:
                continue  # functional ops (adds, concats) carry no weights
            if is_out_pruning(graph, dep.handler):
                members.append(target)
            else:
                consumers[target] = consumers.get(target, 0) + len(idxs)
        roots = [n for n in members if isinstance(model.get_submodule(n), PRUNABLE_ROOTS)
                 and n in traces]
        if not roots:
            continue
        root = min(roots, key=lambda n: traces[n].order)
        # The root's own width: a concatenation can make the group's first layer wider (a
        # GhostNet module's primary and cheap halves feed one depthwise conv).
        root_mod = model.get_submodule(root)
        channels = depgraph.unit_width(graph, root_mod)
        grouped = [n for n in (*members, *consumers) if _is_grouped_conv(model.get_submodule(n))]
        blocks = math.lcm(1, *(model.get_submodule(n).groups for n in grouped))
        heads = depgraph.head_blocks(graph, root_mod)
        # An attention unit keeps the same positions in every head (equal head widths).
        tied = heads if heads > 1 else _tied_blocks(graph, root_mod, channels)
        if tied is None:
            skipped[root] = ("its channels are tied irregularly (removing one removes others "
                             "at no fixed stride)")
            continue
        blocks = math.lcm(blocks, tied)
        if channels % blocks or channels // blocks < 2:
            skipped[root] = (f"touches grouped convolution {grouped[0]}, whose "
                             f"{model.get_submodule(grouped[0]).groups} groups leave no channel "
                             "to cut" if grouped else
                             f"its {blocks} heads or tied blocks leave no channel to cut")
            continue
        mod = model.get_submodule(root)
        tr = traces[root]
        if isinstance(mod, nn.Linear):
            cin, h, w, stride, k = mod.in_features, 1, 1, 1, 1
        else:
            cin = mod.in_channels
            spatial = (*tr.in_shape[2:], 1, 1)
            h, w = spatial[0], spatial[1]
            stride, k = int(mod.stride[0]), int(mod.kernel_size[0])
        if channels < 2:
            continue
        members = list(dict.fromkeys(members))
        cons = {c: n for c, n in consumers.items() if c not in members}
        # A depthwise conv's input is its output channel (counted once); any other member that
        # reads the unit's channels has both dimensions cut.
        inner = tuple((c, n) for c, n in consumers.items() if c in members
                      and not is_depthwise(model.get_submodule(c)))
        unit = Unit(0, root, channels, tuple(members), tuple(cons), tuple(cons.values()),
                    cin, h, w, stride, k, inner, blocks)
        units.append((tr.order, unit))
    units.sort(key=lambda pair: pair[0])
    skipped.update(_breaking_units(model, example, [u for _, u in units],
                                   lambda: _past(deadline, timeout_s, "trying each unit")))
    warning = None
    if skipped:
        ordered = sorted(skipped.items(), key=lambda kv: traces[kv[0]].order)
        warning = "left unpruned: " + "; ".join(f"{n} ({why})" for n, why in ordered)
    units = [(o, u) for o, u in units if u.name not in skipped]
    selected = [u for _, u in units
                if (not include or any(fnmatch.fnmatch(u.name, p) for p in include))
                and not any(fnmatch.fnmatch(u.name, p) for p in exclude)]
    if not selected:
        raise UserError(
            "the model has no prunable unit (no conv/linear layer whose output channels can be "
            "cut besides the classifier)" + (" after --include/--exclude" if units else "")
        )
    return [dataclasses.replace(u, index=i) for i, u in enumerate(selected)], warning


def is_depthwise(mod: nn.Module) -> bool:
    """A convolution with one group per input channel."""
    return isinstance(mod, nn.Conv1d | nn.Conv2d | nn.Conv3d) and mod.groups > 1 and \
        mod.groups == mod.in_channels


def _is_grouped_conv(mod: nn.Module) -> bool:
    """A convolution with 1 < groups that is not depthwise (one group per channel, as many
    outputs as inputs): its channels can only be removed a whole group at a time."""
    if not isinstance(mod, nn.Conv1d | nn.Conv2d | nn.Conv3d) or mod.groups == 1:
        return False
    return not mod.groups == mod.in_channels == mod.out_channels


def _tied_blocks(graph: tp.DependencyGraph, mod: nn.Module, channels: int) -> int | None:
    """How many equal blocks the root's channels form because removing one channel removes its
    counterpart in every block (GhostNet: a depthwise "cheap" copy of each primary channel
    concatenated behind it), or None when the tie is irregular.

    Cutting the same positions in every block keeps each concatenated member's share of the
    channels in proportion, which is what makes the cost model exact for such units."""
    pruner = graph.get_pruner_of_module(mod)
    blocks = 1
    for probe in (0, channels - 1):
        group = graph.get_pruning_group(mod, pruner.prune_out_channels, [probe])
        idxs = sorted({int(i) for dep, items in group if dep.target.module is mod
                       and graph.is_out_channel_pruning_fn(dep.handler) for i in items})
        if channels % len(idxs):
            return None
        width = channels // len(idxs)
        if idxs != [probe % width + k * width for k in range(len(idxs))]:
            return None
        blocks = len(idxs)
    return blocks


def _breaking_units(model: nn.Module, example: torch.Tensor, units: Sequence[Unit],
                    check_time: Callable[[], None]) -> dict[str, str]:
    """Units whose loss of one channel makes the model fail to run, with the error.

    Units are cut one after another on one scratch copy (so combinations are exercised too);
    after a failure the copy is rebuilt with the units that worked so far."""
    bad: dict[str, str] = {}

    def fresh(done: Sequence[Unit]) -> tuple[nn.Module, tp.DependencyGraph]:
        scratch = clone_model(model).eval()
        graph = build_graph(scratch, example)
        for u in done:
            _drop_last_channel(graph, scratch, u)
        return scratch, graph

    scratch, graph = fresh([])
    done: list[Unit] = []
    for u in units:
        check_time()
        try:
            _drop_last_channel(graph, scratch, u)
            with torch.no_grad():
                scratch(example)
            done.append(u)
        except Exception as exc:  # whatever the model's own code raises on a changed width
            bad[u.name] = f"removing a channel breaks the forward pass: {first_line(exc)}"
            scratch, graph = fresh(done)
    return bad


def _drop_last_channel(graph: tp.DependencyGraph, model: nn.Module, unit: Unit) -> None:
    """Cut the last channel of every block of ``unit`` (one channel for an ungrouped unit)."""
    mod = model.get_submodule(unit.name)
    width = depgraph.unit_width(graph, mod) // unit.channel_groups
    prune_group(depgraph.unit_group(graph, mod,
                                    [(g + 1) * width - 1 for g in range(unit.channel_groups)]))
