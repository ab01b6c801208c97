"""Per-layer latency tables: the latency predictor of ``--target latency`` (NetAdapt, HALP).

A network's latency is predicted as the sum over its conv/linear layers of each layer's measured
latency at its kept (input, output) channel counts, times a scale, plus a cost per activation
element those layers output (what the BatchNorms, activations, residual additions and poolings
between them read and write, and no layer timed alone shows), plus a cost per multiply-accumulate
of those layers (compute whose cost inside the fused network differs from the layers' cost alone),
plus a constant for everything no unit controls. Scale, element cost, MAC cost and constant come
from whole networks timed with the table:
the original, uniformly pruned copies (``CALIBRATION_KEEPS``) and random ones
(``CALIBRATION_RANDOM``; with uniform copies alone the layer sum and the element count rise
together and cannot be told apart), fitted by non-negative least squares through the original.
Measured on 2 CPU cores at batch 64 (ResNet-20, 71 pruned copies each timed twice, 12-network
calibrations cross-validated on the rest, against the mean of each copy's two timings, which
differ by a median 9.4%): the layer sum scaled on three uniform copies was off a median 13.7%
(the layers' entries overstate what pruning saves), with the element term fitted on twelve
random copies 9.3%. The MAC term, measured by replaying latency searches' own timed episodes
(each predicted by the table refitted on the ones before it, as the wall does): MobileNetV2
(onnxruntime, batch 64, 1 thread) 8.9% -> 5.9% and 8.8% -> 5.5% median error over two searches
(the replay without it reproduced the searches' logged predictions exactly); ResNet-20
(onnxruntime, batch 64, 2 threads, on a table built later) 6.2% -> 4.6%. On MobileNetV2 the
layer sum alone predicted policies of the same latency whose MACs ranged 0.13-0.65 of the
original and whose measured latency rose with them.
Each layer is timed alone (with the BatchNorm that reads only its output, as it runs in eval mode)
on the target device, batch, thread count and backend, over the grid of channel counts its units
may keep (the action wall's allowed counts, so the wall's candidates sit on grid points); a layer
fed by several units (a concatenation) gets a coarse grid of its total input width, interpolated
bilinearly. Latency falls in steps with channel counts and has a floor, which a line in MACs
cannot follow (NetAdapt, Yang et al., ECCV 2018; HALP, Shen et al., NeurIPS 2022).

Tables are cached as JSON under ``$AMC_CACHE_DIR/latency_tables`` (default ``~/.cache/amc``),
keyed by the layer specs and grids, input shape, device name, backend, batch, threads, torch
version and the CPU heap regime of the timings (amc_agent.env.allocator); a change in any of them
builds a new table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from amc_agent.env import atomic
from amc_agent.env.allocator import HEAP_REGIME
from amc_agent.env.evaluation import fold_plan
from amc_agent.env.latency import default_backend, measure_latency
from amc_agent.env.surgery import pruned_copy
from amc_agent.env.units import PRUNABLE_ROOTS, Unit, is_depthwise, trace_layers

OUTLIER_MADS = 5.0
"""A refit drops timings this many robust standard deviations (1.4826 MAD, in log ratio) off."""
OUTLIER_FLOOR = 1.5
"""... and at least this factor off the median ratio (a tight fit must not drop honest noise)."""
CONCAT_GRID = 6
"""Grid points of a layer's input width when several units feed it."""
PASSES = 2
"""Each entry is the fastest of this many measurements taken in separate passes over the whole
table (a burst of load on a shared machine slows one pass, not every pass at that entry)."""
CALIBRATION_KEEPS = (0.25, 0.5, 0.75)
"""Uniformly pruned copies timed whole beside the original to calibrate the table."""
CALIBRATION_RANDOM = 12
"""Copies with random allowed counts per unit (seeded) timed whole for the calibration."""
CALIBRATION_ROUNDS = 3
"""Rounds over the calibration copies: each is timed right after the original and its latency
ratio to it taken per round, the median over rounds kept (load on a shared machine hits both
alike; the same measurement as a search's episodes get)."""
FIT_TERMS = "layers+elements+macs"
"""What the calibration fits beside the constant (part of the cache key; results record it)."""
MAX_GRID = 9
"""At most this many widths per axis are measured (evenly spaced over the allowed counts, both
ends included); fine rounding steps are interpolated between them."""


@dataclass(frozen=True)
class LayerSpec:
    """One conv/linear layer: which unit cuts its output (``out_unit``, -1: none) and which
    cut its input (``in_units``: (unit, input features from it)), its full widths, shapes and
    what is timed with it."""

    name: str
    kind: str  # "conv1d", "conv2d" or "linear"
    in_features: int
    out_features: int
    out_unit: int
    in_units: tuple[tuple[int, int], ...]
    depthwise: bool
    in_shape: tuple[int, ...]  # one sample's input, the channel/feature dim first for convs
    conv: dict[str, Any]  # kernel_size, stride, padding, dilation, groups, bias
    bn: bool
    out_positions: int = 1  # output values per output channel of one sample (H x W for 2-D)


def cache_dir() -> Path:
    """Where tables are cached: ``$AMC_CACHE_DIR/latency_tables`` (default ``~/.cache/amc``)."""
    return Path(os.environ.get("AMC_CACHE_DIR", Path.home() / ".cache" / "amc")) / \
        "latency_tables"


def device_name(device: str) -> str:
    """The device a latency was measured on, as tables and benchmark rows name it: the GPU's
    name on CUDA, the processor's on CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def layer_specs(model: nn.Module, units: Sequence[Unit], example: torch.Tensor
                ) -> list[LayerSpec]:
    """The conv/linear layers of ``model`` that ran on ``example``, with their units."""
    traces = trace_layers(model, example)
    out_of = {m: u.index for u in units for m in u.members}
    in_of: dict[str, list[tuple[int, int]]] = {}
    for u in units:
        for m, n in (*zip(u.consumers, u.consumer_features, strict=True), *u.inner_features):
            in_of.setdefault(m, []).append((u.index, n))
    bns = dict(fold_plan(model))
    specs = []
    for name, mod in model.named_modules():
        if not isinstance(mod, PRUNABLE_ROOTS) or name not in traces:
            continue
        dw = is_depthwise(mod)
        shape = tuple(traces[name].in_shape[1:])
        if isinstance(mod, nn.Linear):
            kind, fin, fout, conv = "linear", mod.in_features, mod.out_features, {}
        else:
            kind = "conv1d" if isinstance(mod, nn.Conv1d) else "conv2d"
            fin, fout = mod.in_channels, mod.out_channels
            conv = {"kernel_size": list(mod.kernel_size), "stride": list(mod.stride),
                    "padding": mod.padding if isinstance(mod.padding, str)
                    else list(mod.padding), "dilation": list(mod.dilation),
                    "groups": mod.groups, "bias": mod.bias is not None}
        out = traces[name].out_shape
        positions = int(np.prod(out[2:] if kind != "linear" else out[1:-1], dtype=np.int64))
        specs.append(LayerSpec(name, kind, fin, fout, out_of.get(name, -1),
                               () if dw else tuple(in_of.get(name, ())), dw, shape, conv,
                               name in bns, positions))
    return specs


def _widths(spec: LayerSpec, kept: np.ndarray, channels: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(input features, output features) of ``spec`` for rows of kept counts ``kept``."""
    n = kept.shape[0]
    out = kept[:, spec.out_unit] if spec.out_unit >= 0 else np.full(n, spec.out_features)
    fin = np.full(n, float(spec.in_features))
    for u, feats in spec.in_units:
        fin = fin - feats * (1.0 - kept[:, u] / channels[u])
    if spec.depthwise:
        fin = out
    return np.rint(fin), np.asarray(out, dtype=np.float64)


def _grid(values: np.ndarray) -> list[int]:
    """Sorted distinct widths, thinned to :data:`MAX_GRID` evenly spaced ones."""
    v = sorted({int(x) for x in values})
    if len(v) <= MAX_GRID:
        return v
    return [v[i] for i in sorted({round(j) for j in np.linspace(0, len(v) - 1, MAX_GRID)})]


def _layer_module(spec: LayerSpec, fin: int, fout: int) -> tuple[nn.Module, tuple[int, ...]]:
    """A stand-alone copy of ``spec``'s layer at ``fin`` inputs and ``fout`` outputs, with its
    input shape (one sample)."""
    if spec.kind == "linear":
        shape = (*spec.in_shape[:-1], fin)
        return nn.Linear(fin, fout), shape
    c = dict(spec.conv)
    groups = fout if spec.depthwise else c["groups"]
    cls, bn_cls = (nn.Conv1d, nn.BatchNorm1d) if spec.kind == "conv1d" else \
        (nn.Conv2d, nn.BatchNorm2d)
    conv = cls(fin, fout, c["kernel_size"], c["stride"],
               c["padding"] if isinstance(c["padding"], str) else tuple(c["padding"]),
               c["dilation"], groups, c["bias"])
    mod = nn.Sequential(conv, bn_cls(fout)) if spec.bn else conv
    return mod.eval(), (fin, *spec.in_shape[1:])


class LatencyTable:
    """Predicted latency (ms) of the model for rows of per-unit kept channel counts."""

    def __init__(self, specs: list[LayerSpec], channels: Sequence[int],
                 tables: list[dict[str, Any]], constant_ms: float, original_ms: float,
                 scale: float = 1.0, element_ms: float = 0.0, mac_ms: float = 0.0) -> None:
        self.specs, self.channels = specs, np.asarray(channels, dtype=np.float64)
        self.tables = tables
        """Per layer: ``{"in": [grid], "out": [grid], "ms": [[...]]}``."""
        self.constant_ms, self.original_ms, self.scale = constant_ms, original_ms, scale
        self.element_ms = element_ms
        """Milliseconds per activation element of one sample (:meth:`features`)."""
        self.mac_ms = mac_ms
        """Milliseconds per multiply-accumulate of one sample (:meth:`features`)."""

    def layer_ms(self, kept_rows: np.ndarray) -> np.ndarray:
        """``[rows, layers]`` interpolated per-layer latencies."""
        return self._terms(kept_rows)[0]

    def features(self, kept_rows: np.ndarray) -> np.ndarray:
        """``[rows, 3]``: per row of kept counts, the summed layer latencies (ms), the
        activation elements of one sample that the conv/linear layers output, and their
        multiply-accumulates for one sample: what the calibration weighs."""
        layers, elements, macs = self._terms(kept_rows)
        return np.stack([layers.sum(1), elements, macs], 1)

    def _terms(self, kept_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(``[rows, layers]`` layer latencies, elements per row, MACs per row) in one pass
        over the layers' widths."""
        kept = np.atleast_2d(np.asarray(kept_rows, dtype=np.float64))
        layers = np.zeros((kept.shape[0], len(self.specs)))
        elements, macs = np.zeros(kept.shape[0]), np.zeros(kept.shape[0])
        for i, (s, t) in enumerate(zip(self.specs, self.tables, strict=True)):
            fin, fout = _widths(s, kept, self.channels)
            layers[:, i] = _interp2(np.asarray(t["in"], float), np.asarray(t["out"], float),
                                    np.asarray(t["ms"], float), fin, fout)
            elements += fout * s.out_positions
            per_out = 1.0 if s.depthwise else fin / s.conv.get("groups", 1)
            macs += per_out * fout * float(np.prod(s.conv.get("kernel_size", [1]))) \
                * s.out_positions
        return layers, elements, macs

    def predict_rows(self, kept_rows: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of each row of kept channel counts (one per unit)."""
        return self._predict(kept_rows, self.calibration())

    def _predict(self, kept_rows: np.ndarray, fit: tuple[float, float, float, float]
                 ) -> np.ndarray:
        """:meth:`predict_rows` under calibration ``fit`` (as :meth:`calibration` orders it)."""
        scale, element_ms, mac_ms, constant_ms = fit
        return constant_ms + self.features(kept_rows) @ np.array([scale, element_ms, mac_ms])

    def refit(self, kept_rows: np.ndarray, ms: np.ndarray) -> None:
        """Refit scale, element cost, MAC cost and constant on networks measured since the table was
        built (``ms``: latency of each row of kept counts, in this table's milliseconds), through
        the original, as the build's calibration fits its copies (:func:`_calibrated`). A search
        explores a narrow region that the build's uniform and random copies do not: on 2 CPU
        cores at batch 64 (ResNet-20, budget 0.6) the table as built predicted a search's
        episodes 21% too fast (median error 23%); refitted on the search's first 20 episodes it
        predicted the other 80 within a median 9.8% (bias -4%), where scaling the prediction by
        the median measured/predicted ratio left 15.7% (bias -14%). A fit that finds no slope
        (timings of pure noise) keeps the current calibration.

        One wild timing must not move the fit: on MobileNetV2 (onnxruntime, batch 64) one
        episode measured 4.7x its prediction just before the first refit, and the least-squares
        plane through it predicted the next episodes about twice too slow, so the wall walled
        them to a fifth of the original's latency (10% accuracy) for dozens of episodes. So the
        fit is repeated without the timings whose measured / fitted ratio lies more than
        :data:`OUTLIER_MADS` robust standard deviations (in log ratio) from the median, and at
        least a factor :data:`OUTLIER_FLOOR` away from it."""
        kept = np.atleast_2d(np.asarray(kept_rows, dtype=np.float64))
        ms = np.asarray(ms, dtype=np.float64)
        fit = self._fit(kept, ms)
        if fit is None:
            return
        fitted = self._predict(kept, fit)
        log_r = np.log(ms / np.maximum(fitted, 1e-9))
        dev = np.abs(log_r - np.median(log_r))
        inlier = dev <= max(OUTLIER_MADS * 1.4826 * float(np.median(dev)),
                            math.log(OUTLIER_FLOOR))
        if not inlier.all() and inlier.sum() >= 2:
            fit = self._fit(kept[inlier], ms[inlier]) or fit
        self.set_calibration(fit)

    def _fit(self, kept: np.ndarray, ms: np.ndarray
             ) -> tuple[float, float, float, float] | None:
        """:func:`_calibrated` through the original and these timed rows (None: no slope)."""
        rows = np.vstack([self.channels[None, :], kept])
        return _calibrated(self, rows, np.concatenate([[self.original_ms], ms]), fallback=False)

    def calibration(self) -> tuple[float, float, float, float]:
        """``(scale, element_ms, mac_ms, constant_ms)``: what :meth:`refit` changes."""
        return self.scale, self.element_ms, self.mac_ms, self.constant_ms

    def set_calibration(self, fit: tuple[float, float, float, float]) -> None:
        """Put back a :meth:`calibration`."""
        self.scale, self.element_ms, self.mac_ms, self.constant_ms = fit

    def to_dict(self) -> dict[str, Any]:
        """Plain-type view (the cache file)."""
        return {"layers": [s.name for s in self.specs], "tables": self.tables,
                "constant_ms": self.constant_ms, "original_ms": self.original_ms,
                "scale": self.scale, "element_ms": self.element_ms, "mac_ms": self.mac_ms}


def online_predictions(table: LatencyTable, kept_rows: np.ndarray, ms: np.ndarray,
                       start: int, window: int) -> np.ndarray:
    """What a search's wall predicts for each of a sequence of timed networks (ms): row ``i``
    by ``table`` refitted (:meth:`LatencyTable.refit`) on the at most ``window`` rows timed
    before it, from the ``start``-th on (a fit with no slope keeps the one before, as in the
    wall); the rows before by the table as built. Nothing from row ``i`` on is seen, so the
    errors are out of sample, as in a search (amc_agent.env.env: ``LATENCY_REFIT``,
    ``LATENCY_REFIT_WINDOW``). ``table`` is left as it was."""
    kept = np.atleast_2d(np.asarray(kept_rows, dtype=np.float64))
    ms = np.asarray(ms, dtype=np.float64)
    built = table.calibration()
    out = np.empty(len(kept))
    try:
        for i in range(len(kept)):
            if i >= start:
                lo = max(0, i - window)
                table.refit(kept[lo:i], ms[lo:i])
            out[i] = table.predict_rows(kept[i:i + 1])[0]
    finally:
        table.set_calibration(built)
    return out


def _calibrated(table: LatencyTable, rows: np.ndarray, ms: np.ndarray, fallback: bool = True
                ) -> tuple[float, float, float, float] | None:
    """``(scale, element_ms, mac_ms, constant)`` of the plane through the original
    (``rows[0]``, ``ms[0]``) in (layer sum, activation elements, MACs) that fits the
    whole-network timings ``ms`` of ``rows`` best, every slope non-negative (timing noise cannot
    make a wider network faster). A fit that finds no slope at all (timings of pure noise) keeps
    the raw sum, or with ``fallback=False`` returns None."""
    from scipy.optimize import nnls  # scipy only when a table is built: it slows every start-up

    feats = table.features(rows)
    x = feats[1:] - feats[0]
    norm = np.abs(x).max(0)
    norm[norm == 0] = 1.0  # a feature no row moves gets no slope
    slopes, _ = nnls(x / norm, ms[1:] - ms[0])
    scale, element, mac = (float(v) for v in slopes / norm)
    if scale == 0 and element == 0 and mac == 0:
        if not fallback:
            return None
        scale = 1.0
    return scale, element, mac, float(ms[0] - np.dot([scale, element, mac], feats[0]))


def _axis(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and upper weight of ``x`` on ``grid`` (linear beyond its ends)."""
    if len(grid) == 1:
        z = np.zeros(len(x), dtype=int)
        return z, z, np.zeros(len(x))
    hi = np.clip(np.searchsorted(grid, x), 1, len(grid) - 1)
    lo = hi - 1
    w = (x - grid[lo]) / (grid[hi] - grid[lo])
    return lo, hi, w


def _interp2(gin: np.ndarray, gout: np.ndarray, ms: np.ndarray, x: np.ndarray,
             y: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``ms[i, j]`` (at ``gin[i]``, ``gout[j]``) at points (x, y)."""
    i0, i1, wi = _axis(gin, x)
    j0, j1, wj = _axis(gout, y)
    return ((1 - wi) * (1 - wj) * ms[i0, j0] + wi * (1 - wj) * ms[i1, j0]
            + (1 - wi) * wj * ms[i0, j1] + wi * wj * ms[i1, j1])


def _uniform_copy(model: nn.Module, units: Sequence[Unit], example: torch.Tensor,
                  options: Sequence[np.ndarray], keep: float) -> tuple[nn.Module, np.ndarray]:
    """``model`` with every unit cut to its allowed count nearest ``keep`` of its width, and
    those counts."""
    kept = np.array([o[np.argmin(np.abs(np.asarray(o) - keep * u.channels))]
                     for u, o in zip(units, options, strict=True)], dtype=np.float64)
    return pruned_copy(model, example, units, kept), kept


def build_latency_table(
    model: nn.Module, units: Sequence[Unit], example: torch.Tensor, options: Sequence[np.ndarray],
    device: str, batch_size: int, backend: str | None = None, min_time_s: float = 0.02,
    progress: bool = False,
) -> LatencyTable:
    """Measure (or load from the cache) the table of ``model`` whose units may keep
    ``options[i]`` channels (the wall's allowed counts), on ``device`` at ``batch_size``."""
    backend = backend or default_backend(device)
    specs = layer_specs(model, units, example)
    channels = [u.channels for u in units]
    full = np.asarray([channels], dtype=np.float64)
    grids = []
    for spec in specs:
        outs = options[spec.out_unit] if spec.out_unit >= 0 else [spec.out_features]
        if spec.depthwise:  # its input width is its output width: a one-point input axis
            ins = [spec.in_features]
        elif len(spec.in_units) == 1:
            u = spec.in_units[0][0]
            rows = np.repeat(full, len(options[u]), 0)
            rows[:, u] = options[u]
            ins = _grid(_widths(spec, rows, full[0])[0])
        elif spec.in_units:
            lo = np.asarray([[options[u][0] if any(u == v for v, _ in spec.in_units) else c
                              for u, c in enumerate(channels)]], dtype=np.float64)
            a, b = _widths(spec, lo, full[0])[0][0], spec.in_features
            ins = _grid(np.linspace(a, b, CONCAT_GRID))
        else:
            ins = [spec.in_features]
        grids.append((_grid(np.asarray(ins)), _grid(np.asarray(outs))))
    threads = torch.get_num_threads()
    key = {"layers": [[s.name, s.kind, s.in_features, s.out_features, list(s.in_shape), s.conv,
                       s.bn, s.depthwise] for s in specs], "grids": grids,
           "input": list(example.shape[1:]), "device": device_name(device), "backend": backend,
           "batch": batch_size, "threads": threads, "torch": str(torch.__version__),
           "heap": HEAP_REGIME,
           "calibration": {"uniform": list(CALIBRATION_KEEPS), "random": CALIBRATION_RANDOM,
                           "rounds": CALIBRATION_ROUNDS, "fit": FIT_TERMS}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / f"{digest}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        return LatencyTable(specs, channels, cached["tables"], cached["constant_ms"],
                            cached["original_ms"], cached["scale"], cached["element_ms"],
                            cached["mac_ms"])
    total = sum(len(i) * len(o) for i, o in grids)
    rng = np.random.default_rng(0)
    random_rows = [np.array([rng.choice(o) for o in options], dtype=np.float64)
                   for _ in range(CALIBRATION_RANDOM)]
    whole = [(model, full[0]), *(_uniform_copy(model, units, example, options, r)
                                 for r in CALIBRATION_KEEPS),
             *((pruned_copy(model, example, units, k), k) for k in random_rows)]
    bar = tqdm(total=PASSES * total + CALIBRATION_ROUNDS * (len(whole) - 1),
               desc="latency table", disable=not progress, dynamic_ncols=True)
    entries = [np.full((len(i), len(o)), np.inf) for i, o in grids]
    for _ in range(PASSES):
        for spec, (ins, outs), ms in zip(specs, grids, entries, strict=True):
            for a, fin in enumerate(ins):
                for b, fout in enumerate(outs):
                    mod, shape = _layer_module(spec, fout if spec.depthwise else fin, fout)
                    t = measure_latency(mod.to(device), shape, batch_size, device,
                                        threads=threads, min_time_s=min_time_s,
                                        backend=backend, warmup=3, quick=True).median_ms
                    ms[a, b] = min(ms[a, b], t)
                    bar.update()

    def timed(m: nn.Module) -> float:
        return measure_latency(m, tuple(example.shape[1:]), batch_size, device, threads=threads,
                               min_time_s=max(min_time_s, 0.2), backend=backend, warmup=3,
                               quick=True).median_ms

    original, ratios = [], np.zeros((CALIBRATION_ROUNDS, len(whole) - 1))
    for r in range(CALIBRATION_ROUNDS):
        for w, (m, _) in enumerate(whole[1:]):
            original.append(timed(model))
            ratios[r, w] = timed(m) / original[-1]
            bar.update()
    bar.close()
    original_ms = float(np.median(original))
    whole_ms = original_ms * np.concatenate([[1.0], np.median(ratios, 0)])
    tables = [{"in": i, "out": o, "ms": ms.tolist()} for (i, o), ms in zip(grids, entries,
                                                                            strict=True)]
    table = LatencyTable(specs, channels, tables, 0.0, original_ms)
    fit = _calibrated(table, np.stack([k for _, k in whole]), whole_ms)
    assert fit is not None  # with the fallback a fit always comes back
    table.set_calibration(fit)
    atomic.write_json(path, {"key": key, **table.to_dict()})
    return table
