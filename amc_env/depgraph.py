"""Torch-Pruning's dependency graph, made safe to build on any model.

Torch-Pruning (Fang et al., "DepGraph", CVPR 2023) traces a model's forward pass and maps channel
indices through concatenations, splits and reshapes. On some architectures that mapping cannot be
worked out: ShuffleNetV2's channel shuffle (a view, transpose, view), Swin's window reshapes, a
concatenation whose input widths cannot be inferred (DPN, CSP-DarkNet). Torch-Pruning then raises
while building the graph, or silently maps the channels 1:1, which would cut the wrong channels.

This module keeps the graph usable: an operation whose index mapping fails, or a channel-dim
concatenation whose input widths are unknown, becomes *opaque*: its mapping is dropped and every
channel group that reaches it is reported by :func:`opaque_reason`, so unit discovery leaves those
channels unpruned instead of giving up on the whole model. Channels that never meet an opaque
operation (ShuffleNetV2's branch-internal widths, an MLP's hidden layer) are pruned as usual.

The index mapping is also cached per graph until a parameter shape changes: Torch-Pruning redoes
it on every group query, which made the group search of windowed-attention models take minutes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import _helpers, ops
from torch_pruning.dependency import index_mapping as _im
from torch_pruning.dependency import shape_infer

from amc_agent.env import attention
from amc_agent.env.errors import UserError, first_line

_MAPPERS: dict[object, Callable] = {
    ops.OPTYPE.CONCAT: _im.update_concat_index_mapping,
    ops.OPTYPE.SPLIT: _im.update_split_index_mapping,
    ops.OPTYPE.RESHAPE: _im.update_reshape_index_mapping,
    ops.OPTYPE.UNBIND: _im.update_unbind_index_mapping,
    ops.OPTYPE.EXPAND: _im.update_expand_index_mapping,
    ops.OPTYPE.SLICE: _im.update_slice_index_mapping,
}
# Torch-Pruning's marker for "no valid dimension recorded" in a concat's saved dim.
_UNKNOWN_DIM = 100


def _collapse(idxs: list) -> list:
    """Any index set to index 0 (with the first root index): what crosses an opaque node."""
    return [_helpers._HybridIndex(idx=0, root_idx=idxs[0].root_idx)] if idxs else []


def _shapes(graph: tp.DependencyGraph) -> tuple:
    """What the index mapping depends on: every parameter's shape."""
    return tuple(tuple(p.shape) for p in graph.model.parameters())


def _update_index_mapping(graph: tp.DependencyGraph) -> None:
    """Torch-Pruning's ``update_index_mapping``, per operation, failures made opaque, cached."""
    key = _shapes(graph)
    if getattr(graph, "_amc_mapping_key", None) == key:
        return
    opaque: dict[object, str] = {}
    for node in graph.module2node.values():
        mapper = _MAPPERS.get(node.type)
        if mapper is None:
            continue
        try:
            mapper(graph, node)
        except Exception as exc:  # Torch-Pruning's own arithmetic on shapes it could not infer
            opaque[node] = f"Torch-Pruning cannot map channels through it ({first_line(exc, 100)})"
            continue
        if node.type == ops.OPTYPE.RESHAPE and not _reshape_keeps_channels(graph, node):
            opaque[node] = "a reshape that splits or mixes the channel axis"
        if node.type == ops.OPTYPE.CONCAT and getattr(node.module, "offsets", None) is None:
            dim = getattr(node.grad_fn, "_saved_dim", 1)
            if dim == 1 or dim >= _UNKNOWN_DIM:
                opaque[node] = "a concatenation whose input widths Torch-Pruning cannot infer"
    for node in opaque:
        # Groups reaching the node are refused by opaque_reason, so what crosses it never decides
        # what is cut; one fixed index crossing keeps group queries from crashing, and from
        # growing without end around cycles of stride mappings.
        for dep in node.dependencies:
            dep.index_mapping = [_collapse, None]
        for neighbour in (*node.inputs, *node.outputs):
            for dep in neighbour.dependencies:
                if dep.target is node:
                    dep.index_mapping = [_collapse, None]
    graph._amc_opaque = opaque
    graph._amc_mapping_key = key


def _parameter_path(graph: tp.DependencyGraph, node: object) -> bool:
    """Whether no layer lies upstream of ``node``: it reshapes a parameter, not activations."""
    layers = graph._module2name
    stack, seen = list(node.inputs), set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.module in layers:
            return False
        stack.extend(n.inputs)
    return True


def _reshape_keeps_channels(graph: tp.DependencyGraph, node: object) -> bool:
    """Whether a view/reshape keeps channels whole, so Torch-Pruning's mapping is right.

    Kept: only size-1 axes added or removed (a layer-scale vector broadcast as ``(1, C, 1, 1)``);
    the channel axis at index 1 with the same batch size (``(B, C, H, W) -> (B, C, H*W)``),
    or last with the other axes only regrouped (window partitions of ``(B, H, W, C)``, a linear
    layer's ``(B, H, W, C) -> (B*H*W, C)``), and a
    flatten/unflatten between ``(B, C, H, W)`` and ``(B, C*H*W)`` whose mapping stride is
    ``H*W``. Not kept: a channel axis split into groups (a channel shuffle's
    ``(B, g, C/g, H, W)``, attention heads), or shapes whose channel count is unknown."""
    if _parameter_path(graph, node):
        return True  # a weight's own reshape (weight standardisation): no activation passes
    grad_fn = node.grad_fn
    try:
        src = [int(v) for v in grad_fn._saved_self_sym_sizes]
        dst = [int(v) for v in grad_fn._input_metadata[0].shape]
    except (AttributeError, IndexError, TypeError):
        return False
    deps = [d for d in node.dependencies] + [
        d for n in (*node.inputs, *node.outputs) for d in n.dependencies if d.target is node]
    strides = {m._stride for d in deps for m in d.index_mapping
               if isinstance(m, _im._FlattenIndexMapping)}
    if [d for d in src if d != 1] == [d for d in dst if d != 1]:
        return strides <= {1}  # only size-1 axes added or dropped
    if len(src) == 4 and len(dst) == 2 and dst[1] == src[1] * src[2] * src[3]:
        return strides <= {src[2] * src[3]}
    if len(src) == 2 and len(dst) == 4 and src[1] == dst[1] * dst[2] * dst[3]:
        return strides <= {dst[2] * dst[3]}
    if strides:
        return False
    channels = None
    for n in node.inputs:
        channels = shape_infer.infer_out_channels_recursively(graph, n, [0])
        if channels is not None:
            break
    if len(src) in (2, 4) and src[1] == channels:  # (B, C) or (B, C, H, W), even if W == C
        return dst[:2] == src[:2]
    if src[-1] == channels:  # channel-last: (B, N, C), (B, H, W, C) after a permute
        return dst[-1] == src[-1] and math.prod(dst[:-1]) == math.prod(src[:-1])
    return False


# Torch-Pruning calls index_mapping.update_index_mapping from build_dependency and from every
# get_pruning_group; replacing the module function is the one hook it offers.
_im.update_index_mapping = _update_index_mapping


_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _out_channels(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _extra_params(layer: nn.Module) -> list[str]:
    """A conv/linear subclass's own per-output-channel parameters (beyond weight and bias),
    e.g. the gain of NF-ResNet's scaled weight-standardised conv."""
    n = _out_channels(layer)
    return [name for name, p in layer.named_parameters(recurse=False)
            if name not in ("weight", "bias") and p.dim() >= 1 and p.shape[0] == n]


def prune_group(group: tp.Group) -> None:
    """``group.prune()``, also cutting conv/linear subclasses' own per-output-channel parameters,
    which Torch-Pruning leaves at full width (the forward then fails on them)."""
    graph = group._DG
    plan = []
    for dep, idxs in group:
        layer = dep.target.module
        if isinstance(layer, _LAYERS) and graph.is_out_channel_pruning_fn(dep.handler):
            names = _extra_params(layer)
            if names:
                gone = {int(i) for i in idxs}
                plan.append((layer, names, [i for i in range(_out_channels(layer))
                                            if i not in gone]))
    group.prune()
    for layer, names, keep in plan:
        for name in names:
            old = getattr(layer, name)
            setattr(layer, name, nn.Parameter(old.data[keep].clone(),
                                              requires_grad=old.requires_grad))


def build_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model`` traced on ``example``.

    Window-attention blocks are first switched to their prunable form
    (:mod:`amc_agent.env.attention`, outputs unchanged), so their q/k/v width is a unit. A model
    whose forward Torch-Pruning cannot trace at all is a :class:`UserError` naming the failure;
    operations it traces but cannot map are opaque (see the module docstring)."""
    attention.prepare(model)
    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                      verbose=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise UserError(f"Torch-Pruning cannot trace this model's channel dependencies "
                        f"({first_line(exc, 200)}); this architecture is not "
                        "supported") from None
    graph._amc_attention = attention.blocks(model)
    return graph


def _attention_block(graph: tp.DependencyGraph, layer: nn.Module) -> nn.Module | None:
    return getattr(graph, "_amc_attention", {}).get(layer)


def unit_width(graph: tp.DependencyGraph, layer: nn.Module) -> int:
    """How many channels the unit rooted at ``layer`` has now: its output channels, or for an
    attention block's ``qkv`` the attention width."""
    block = _attention_block(graph, layer)
    if block is not None:
        return attention.width(block)
    return graph.get_pruner_of_module(layer).get_out_channels(layer)


def unit_group(graph: tp.DependencyGraph, layer: nn.Module, idxs: Sequence[int]) -> tp.Group:
    """The group that removes channels ``idxs`` of the unit rooted at ``layer`` (see
    :func:`unit_width` for the index range)."""
    block = _attention_block(graph, layer)
    if block is not None:
        return attention.attention_group(graph, block, list(idxs))
    pruner = graph.get_pruner_of_module(layer)
    return graph.get_pruning_group(layer, pruner.prune_out_channels, list(idxs))


def head_blocks(graph: tp.DependencyGraph, layer: nn.Module) -> int:
    """Equal blocks an attention unit's channels form (its heads); 1 for any other layer."""
    block = _attention_block(graph, layer)
    return 1 if block is None else block.num_heads


def opaque_reason(graph: tp.DependencyGraph, group: tp.Group) -> str | None:
    """Why ``group``'s channels cannot be cut safely (it reaches an opaque operation), or None."""
    opaque = getattr(graph, "_amc_opaque", {})
    for dep, _ in group:
        why = opaque.get(dep.target)
        if why is not None:
            kind = type(dep.target.module).__name__.strip("_").removesuffix("Op").lower()
            return f"coupled through a {kind} operation: {why}"
    return None


def root_groups(
    graph: tp.DependencyGraph, ignored: Sequence[nn.Module], roots: tuple[type, ...]
) -> Iterator[tuple[nn.Module, tp.Group | None, str | None]]:
    """Every output-channel group rooted at a layer of type ``roots``, as ``(root, group, why)``.

    Like Torch-Pruning's ``get_all_groups``, each coupled set is yielded once (from its first
    root) and sets touching an ``ignored`` layer are left out; unlike it, a group whose index
    propagation fails or reaches an opaque operation comes back with ``group=None`` and the
    reason, instead of stopping the search."""
    ignored_ids = {id(m) for m in (*ignored, *graph.IGNORED_LAYERS_IN_TRACING)}
    visited: set[int] = set()
    for module in list(graph.module2node):
        if id(module) in ignored_ids or id(module) in visited or not isinstance(module, roots):
            continue
        pruner = graph.get_pruner_of_module(module)
        if pruner is None or pruner.get_out_channels(module) is None:
            continue
        try:
            group = unit_group(graph, module, range(unit_width(graph, module)))
        except Exception as exc:  # an index mapping that only fails on this path
            visited.add(id(module))
            yield module, None, ("Torch-Pruning cannot map its channels "
                                 f"({first_line(exc, 100)})")
            continue
        outs = [dep.target.module for dep, _ in group
                if graph.is_out_channel_pruning_fn(dep.handler)]
        visited.update(id(m) for m in outs)
        if any(id(m) in ignored_ids for m in outs):
            continue
        why = opaque_reason(graph, group)
        yield module, (None if why else group), why
