"""Predicted MACs and parameters of a model for any per-unit kept channel counts.

The action wall needs the cost of a model that does not exist yet, many times per step, so this
module predicts it instead of building the model: every conv/linear layer's MACs and every parameter
tensor scale with the kept fraction of their output channels (dim 0) and input channels (dim 1),
each governed by at most one output unit and any number of input units (concatenations). Depthwise
convs scale with their channels once; a grouped conv keeps its group count (its units are cut group-
balanced), so its cost scales with kept inputs and outputs like any conv. The prediction equals a
recount of the physically pruned model by :mod:`amc_agent.env.cost` (tested). The attention matmuls
of a window-attention block whose width is a unit (:mod:`amc_agent.env.attention`) scale with that
width; any other MACs that :mod:`amc_agent.env.cost` counts outside conv/linear layers are kept as a
constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from amc_agent.env import attention
from amc_agent.env.cost import count_macs_by_module, count_params
from amc_agent.env.units import PRUNABLE_ROOTS, Unit, is_depthwise, trace_layers


@dataclass(frozen=True)
class _Term:
    """``base`` scaled by (kept out / out) and (kept in / in)."""

    base: int
    out_unit: int  # -1: output dim not pruned
    in_units: tuple[tuple[int, int], ...]  # (unit index, input features from that unit)
    in_size: int


class CostModel:
    """MACs (per sample) and parameter count as functions of each unit's kept channels.

    Built once from the original model; ``macs(kept)``/``params(kept)`` take one kept count per
    unit (in unit order); ``batch(target, kept_rows)`` evaluates many candidate rows at once.
    """

    def __init__(self, model: nn.Module, units: Sequence[Unit], example: torch.Tensor) -> None:
        attention.prepare(model)
        self.units = list(units)
        self.channels = np.array([u.channels for u in units], dtype=np.float64)
        out_of: dict[str, int] = {}
        in_of: dict[str, list[tuple[int, int]]] = {}
        for u in units:
            for m in u.members:
                out_of[m] = u.index
            for m, n in (*zip(u.consumers, u.consumer_features, strict=True),
                         *u.inner_features):
                in_of.setdefault(m, []).append((u.index, n))
        traces = trace_layers(model, example)
        self._macs: list[_Term] = []
        self._params: list[_Term] = []
        term_names: list[str] = []  # the module of each MAC term
        layer_macs = 0
        for name, mod in model.named_modules():
            out_u = out_of.get(name, -1)
            ins = () if is_depthwise(mod) else tuple(in_of.get(name, ()))
            if isinstance(mod, PRUNABLE_ROOTS) and name in traces:
                macs = self._layer_macs(mod, traces[name].out_shape, example.shape[0])
                layer_macs += macs
                self._macs.append(_Term(macs, out_u, ins, self._in_size(mod)))
                term_names.append(name)
            for p in mod.parameters(recurse=False):
                i = p.shape[1] if p.dim() >= 2 else 1
                if p is getattr(mod, "weight", None) and getattr(mod, "groups", 1) > 1:
                    i = mod.in_channels  # a grouped conv's dim 1 holds one group's inputs
                # Only the weight reads the inputs; a layer's own extra parameters (a per-filter
                # gain of shape (out, 1, 1, 1)) scale with the outputs alone.
                reads = p.dim() >= 2 and (p is getattr(mod, "weight", None)
                                          or not isinstance(mod, PRUNABLE_ROOTS))
                self._params.append(_Term(p.numel(), out_u if p.dim() >= 1 else -1,
                                          ins if reads else (), i))
        by_module = count_macs_by_module(model, tuple(example.shape[1:]))
        # An attention block's matmuls (q k^T, attention x v) scale with its width's unit: what
        # the counter sees inside the block beyond its conv/linear layers.
        for name, mod in model.named_modules():
            qkv = f"{name}.qkv"
            if isinstance(mod, attention.PRUNABLE_ATTENTION) and qkv in out_of:
                inner = sum(t.base for n, t in zip(term_names, self._macs, strict=True)
                            if n.startswith(name + "."))
                matmuls = by_module.get(name, 0) - inner
                layer_macs += matmuls
                self._macs.append(_Term(matmuls, out_of[qkv], (), 1))
                term_names.append(name)
        # Whatever the counter sees beyond conv/linear layers stays constant under pruning.
        self._macs.append(_Term(by_module[""] - layer_macs, -1, (), 1))
        in_module_params = sum(t.base for t in self._params)
        self._params.append(_Term(count_params(model) - in_module_params, -1, (), 1))
        full = self.channels.astype(int).tolist()
        self.original = {"flops": self.macs(full), "params": self.params(full)}

    @staticmethod
    def _layer_macs(mod: nn.Module, out_shape: tuple[int, ...], batch: int) -> int:
        # Per sample, whatever the layout: a layer may see the batch folded with patches or
        # windows (MobileViT's (B*P, N, C)), so the first axis is not always the batch.
        per_output = int(np.prod(out_shape)) // batch
        if isinstance(mod, nn.Linear):
            return per_output * mod.in_features
        return per_output * (mod.in_channels // mod.groups) * int(np.prod(mod.kernel_size))

    @staticmethod
    def _in_size(mod: nn.Module) -> int:
        return mod.in_features if isinstance(mod, nn.Linear) else mod.in_channels

    def _eval(self, terms: list[_Term], kept: np.ndarray) -> np.ndarray:
        kept = np.atleast_2d(np.asarray(kept, dtype=np.float64))
        total = np.zeros(kept.shape[0])
        for t in terms:
            num = np.full(kept.shape[0], float(t.base))
            den = 1.0
            if t.out_unit >= 0:
                num = num * kept[:, t.out_unit]
                den *= self.channels[t.out_unit]
            if t.in_units:
                removed = sum(n * (1.0 - kept[:, u] / self.channels[u]) for u, n in t.in_units)
                num = num * np.rint(t.in_size - removed)
                den *= t.in_size
            total += num / den
        return np.rint(total)

    def batch(self, target: str, kept_rows: np.ndarray) -> np.ndarray:
        """Cost (``"flops"`` = MACs, or ``"params"``) of each row of kept channel counts."""
        return self._eval(self._macs if target == "flops" else self._params, kept_rows)

    def macs(self, kept: Sequence[int]) -> int:
        """Predicted MACs per sample with ``kept[i]`` channels in unit ``i``."""
        return int(self._eval(self._macs, np.asarray(kept))[0])

    def params(self, kept: Sequence[int]) -> int:
        """Predicted parameter count with ``kept[i]`` channels in unit ``i``."""
        return int(self._eval(self._params, np.asarray(kept))[0])

    def unit_macs(self) -> list[int]:
        """Original MACs of the layers each unit touches (AMC's per-layer FLOPs[t])."""
        out = []
        for u in range(len(self.units)):
            out.append(sum(t.base for t in self._macs
                           if t.out_unit == u or any(v == u for v, _ in t.in_units)))
        return out
