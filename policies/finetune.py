"""Fine-tuning a pruned model, training its architecture from scratch, and measuring either.

Train-from-scratch follows Liu et al., "Rethinking the Value of Network Pruning" (ICLR 2019),
scratch-E: the pruned architecture with freshly initialised weights, trained for as many epochs
as the baseline. Both reuse :func:`amc_agent.env.training.fit`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from amc_agent.env import distributed
from amc_agent.env.cost import measure_cost
from amc_agent.env.datasets import DataSplits, make_loader
from amc_agent.env.latency import measure_latency
from amc_agent.env.models import build_model
from amc_agent.env.surgery import apply_pruning_record
from amc_agent.env.training import Diverged, TrainConfig, evaluate, fit


def finetune(model: nn.Module, data: DataSplits, cfg: TrainConfig, device: str,
             progress: bool = True) -> list[dict[str, Any]]:
    """Train ``model`` in place on the training split with ``cfg`` (same recipe for everyone);
    under torchrun, data-parallel over its processes (amc_agent.env.distributed)."""
    torch.manual_seed(cfg.seed)
    if distributed.active():
        loader = distributed.loader(data.train, cfg.batch_size, cfg.seed, cfg.workers)
        return fit(distributed.wrap(model, device), loader, cfg, device,
                   progress=progress and distributed.is_main())
    loader = make_loader(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed,
                         workers=cfg.workers)
    return fit(model, loader, cfg, device, progress=progress)


def finetune_or_diverged(model: nn.Module, data: DataSplits, cfg: TrainConfig, device: str,
                         progress: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """:func:`finetune`, with a diverged run (NaN/inf loss) returned as its message instead of
    raised: ``(history, None)`` or ``([], "training diverged ...")``. For comparisons that report
    a diverged strategy and go on with the others."""
    try:
        return finetune(model, data, cfg, device, progress), None
    except Diverged as exc:
        return [], str(exc)


def scratch_model(recipe: dict[str, Any], record: dict[str, Any], seed: int) -> nn.Module:
    """The pruned architecture with freshly initialised weights."""
    torch.manual_seed(seed)
    return apply_pruning_record(build_model(recipe), record)


def interleaved_latency(models: dict[str, nn.Module], input_shape: tuple[int, ...], device: str,
                        batch_sizes: tuple[int, ...] = (1, 64), rounds: int = 3,
                        min_time_s: float = 0.3, backend: str | None = None
                        ) -> dict[str, dict[str, dict[str, Any]]]:
    """Latency of several models measured round-robin (``rounds`` passes over all of them), the
    median of each model's per-round medians: load on a shared machine then hits every model
    alike, so ratios between them stay honest. Each entry also lists its per-round medians
    (``round_ms``, in round order) for ratios taken round by round. ``backend``:
    amc_agent.env.latency.BACKENDS.

    Each model is timed over a block of back-to-back calls after its own warm-up, as a serving
    loop runs one model, never call by call alternating with another: on 2 CPU cores at batch
    64 a pruned ResNet-20 timed that way measured 0.65x the original, alternating single calls
    0.82x (the first call after a switch runs on cold caches and fresh allocations)."""
    runs: dict[str, dict[int, list]] = {n: {b: [] for b in batch_sizes} for n in models}
    for _ in range(rounds):
        for name, model in models.items():
            for b in batch_sizes:
                runs[name][b].append(measure_latency(model, input_shape, batch_size=b,
                                                     device=device, min_time_s=min_time_s,
                                                     backend=backend))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, per in runs.items():
        out[name] = {}
        for b, lats in per.items():
            best = sorted(lats, key=lambda lat: lat.median_ms)[len(lats) // 2]
            out[name][f"b{b}"] = {**best.to_dict(), "rounds": rounds,
                                  "round_ms": [lat.median_ms for lat in lats]}
    return out


def round_ratios(lat: dict[str, dict[str, dict[str, Any]]], num: str, den: str,
                 batch: int) -> list[float]:
    """Per-round latency ratios ``num / den`` at ``batch`` from an :func:`interleaved_latency`
    result: each round's two medians were measured back to back, under the same load."""
    a, b = lat[num][f"b{batch}"]["round_ms"], lat[den][f"b{batch}"]["round_ms"]
    return [x / y for x, y in zip(a, b, strict=True)]


def measure(model: nn.Module, data: DataSplits, device: str,
            latency_batches: tuple[int, ...] = (1, 64), min_time_s: float = 0.5,
            backend: str | None = None) -> dict[str, Any]:
    """Test accuracy, MACs, params and latency (ms, each batch size in ``latency_batches``,
    measured on ``backend``)."""
    test = evaluate(model, make_loader(data.test, 512), device)
    cost = measure_cost(model, data.spec.input_shape)
    lat = {f"b{b}": measure_latency(model, data.spec.input_shape, batch_size=b, device=device,
                                    min_time_s=min_time_s, backend=backend).to_dict()
           for b in latency_batches}
    return {"test_acc": test.acc, "macs": cost.macs, "params": cost.params, "latency": lat}
