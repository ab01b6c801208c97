"""A calibrated latency predictor for the action wall under ``--target latency``.

Latency cannot be measured for models that do not exist yet, so the wall uses
``latency_ms = a + b x MACs``, fitted by least squares on measured latencies of the original
model and uniformly pruned copies of it on the target device. Each episode's final model is then
measured for real, and both numbers go into ``info`` so the predictor's error is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from amc_agent.env.costmodel import CostModel
from amc_agent.env.latency import measure_latency
from amc_agent.env.surgery import pruned_copy
from amc_agent.env.units import Unit


@dataclass(frozen=True)
class LatencyModel:
    """``predict(macs) = intercept_ms + slope_ms_per_mac * macs``; ``original_ms`` measured."""

    intercept_ms: float
    slope_ms_per_mac: float
    original_ms: float
    points: tuple[tuple[int, float], ...]

    def predict(self, macs: np.ndarray | float) -> np.ndarray | float:
        """Predicted latency (ms) for MACs per sample."""
        return self.intercept_ms + self.slope_ms_per_mac * np.asarray(macs, dtype=np.float64)


def calibrate_latency(
    model: nn.Module,
    units: Sequence[Unit],
    cost: CostModel,
    example: torch.Tensor,
    device: str,
    batch_size: int,
    keep_ratios: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    min_time_s: float = 0.2,
    backend: str | None = None,
) -> LatencyModel:
    """Measure uniformly pruned copies and the original (``keep_ratios`` ends with 1.0), fit the
    line."""
    if keep_ratios[-1] != 1.0:
        raise ValueError("keep_ratios must end with 1.0 (the original model)")
    points = []
    shape = tuple(example.shape[1:])
    for r in keep_ratios:
        g = [u.channel_groups for u in units]  # a grouped unit keeps whole blocks alike
        kept = [k * max(1, round(r * u.channels / k)) for u, k in zip(units, g, strict=True)]
        lat = measure_latency(pruned_copy(model, example, units, kept).to(device), shape,
                              batch_size=batch_size, device=device, min_time_s=min_time_s,
                              backend=backend)
        points.append((cost.macs(kept), lat.median_ms))
    macs = np.array([p[0] for p in points], dtype=np.float64)
    ms = np.array([p[1] for p in points])
    # Non-negative least squares: neither a negative overhead nor latency falling as MACs grow,
    # whatever the timing noise.
    from scipy.optimize import nnls  # scipy only when a line is fitted: it slows every start-up

    scale = macs.max()
    (intercept, slope), _ = nnls(np.stack([np.ones_like(macs), macs / scale], 1), ms)
    return LatencyModel(float(intercept), float(slope / scale), float(ms[-1]), tuple(points))
