"""Prunable units: groups of coupled channels found by Torch-Pruning's dependency graph.

A *unit* is one Torch-Pruning group rooted at a conv or linear layer's output channels: every
layer whose output channels must go with it (a residual stage's convs and shortcut projection,
BatchNorms, depthwise convs) and every layer that consumes those channels. The layer that produces
the network's output (the classifier) is never a unit; the network input is never pruned.

Units are ordered by when their root layer first runs in a forward pass (AMC walks layers in
that order), and named by the root module's name, which is how policies refer to them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from amc_env.errors import UserError

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


def build_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model`` traced on ``example``."""
    return tp.DependencyGraph().build_dependency(model, example_inputs=example)


def head_layer(model: nn.Module, traces: dict[str, LayerTrace]) -> str | None:
    """The last conv/linear layer to run: it produces the network's output, never pruned."""
    names = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE_ROOTS) and n in traces]
    return max(names, key=lambda n: traces[n].order) if names else None


def is_out_pruning(graph: tp.DependencyGraph, handler: object) -> bool:
    """Whether a group item's handler cuts its target's output channels."""
    return graph.is_out_channel_pruning_fn(handler)


def discover_units(
    model: nn.Module,
    example: torch.Tensor,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[Unit]:
    """The prunable units of ``model`` in forward order.

    ``include``/``exclude`` are shell patterns (``fnmatch``) on a unit's root module name: with
    ``include``, only matching units are kept; matching ``exclude`` removes a unit. Raises
    :class:`UserError` when nothing is left to prune.
    """
    traces = trace_layers(model, example)
    graph = build_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    head = head_layer(model, traces)
    ignored = [model.get_submodule(head)] if head else []
    units: list[tuple[int, Unit]] = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=PRUNABLE_ROOTS):
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
        mod = model.get_submodule(root)
        tr = traces[root]
        if isinstance(mod, nn.Linear):
            cin, h, w, stride, k = mod.in_features, 1, 1, 1, 1
        else:
            cin = mod.in_channels
            spatial = (*tr.in_shape[2:], 1, 1)
            h, w = spatial[0], spatial[1]
            stride, k = int(mod.stride[0]), int(mod.kernel_size[0])
        channels = len(group[0].idxs)
        if channels < 2:
            continue
        members = list(dict.fromkeys(members))
        cons = {c: n for c, n in consumers.items() if c not in members}
        unit = Unit(0, root, channels, tuple(members), tuple(cons), tuple(cons.values()),
                    cin, h, w, stride, k)
        units.append((tr.order, unit))
    units.sort(key=lambda pair: pair[0])
    selected = [u for _, u in units
                if (not include or any(fnmatch.fnmatch(u.name, p) for p in include))
                and not any(fnmatch.fnmatch(u.name, p) for p in exclude)]
    if not selected:
        raise UserError(
            "the model has no prunable unit (no conv/linear layer whose output channels can be "
            "cut besides the classifier)" + (" after --include/--exclude" if units else "")
        )
    return [dataclasses.replace(u, index=i) for i, u in enumerate(selected)]
