"""Shared by the BENCHMARKS.md sections: where a figure was measured, and number formats."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def network(r: dict[str, Any]) -> tuple[str, str | None]:
    """Which network a result was measured on: its checkpoint path and the digest of its
    tensors (bench.common.checkpoint_sha256; ``None`` in results from before the digest was
    recorded). Rows pool only when both agree: a path can be trained again into another
    network."""
    return r["checkpoint"], r.get("checkpoint_sha256")


def network_label(ckpt: str, sha: str | None) -> str:
    """A checkpoint as a section names it: its path, and its digest where one was recorded."""
    return f"`{ckpt}`" + (f" (weights {sha})" if sha else "")


def timed_on(r: dict[str, Any]) -> str:
    """The device a latency row was measured on: the GPU's name, or the CPU (its generation
    where recorded) and thread count: two CPUs under one name can time differently."""
    m = r["machine"]
    if m.get("gpu") and r.get("device_name") == m["gpu"]:
        return m["gpu"]
    kind = f" {m['cpu_generation']}" if m.get("cpu_generation") else ""
    return f"{m['cpu']}{kind} ({m['torch_threads']} threads)"


def machine_line(r: dict[str, Any]) -> str:
    """CPU, cores, torch version and threads, GPU if any, and the date of a result."""
    m = r["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    kind = ", ".join(x for x in (m.get("cpu_generation"), m.get("cpu_capability")) if x)
    cpu = f"{m['cpu']} ({kind})" if kind else m["cpu"]
    return (f"{cpu}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)"
            f"{gpu}; {r['date']}")


def fmt_mean_std(values: list[float]) -> str:
    """Accuracies (fractions) as "mean ± sample std" in percent (the mean alone for one value)."""
    mean = f"{100 * statistics.mean(values):.2f}"
    return f"{mean} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else mean


def pct(v: float | None) -> str:
    """A fraction as a percentage with two decimals ("-" for None)."""
    return "-" if v is None else f"{100 * v:.2f}%"


def same_policies(rows: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Groups of two or more strategies that built the same network: the same keep ratios with
    the same criterion (under another criterion or a refit, the same ratios keep other channels
    or other weights, e.g. Torch-Pruning's own channels beside ours with reconstruction)."""
    groups: dict[str, list[str]] = {}
    for name, x in rows.items():
        if x.get("keep_ratios"):
            key = json.dumps([x["keep_ratios"], x.get("criterion")], sort_keys=True)
            groups.setdefault(key, []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def se_points(r: dict[str, Any]) -> str:
    """Binomial standard error, in accuracy points, of the median held-out accuracy of a
    criteria result on its held-out images."""
    accs = [x["val_acc_heldout"] for x in r["rows"] if x.get("val_acc_heldout") is not None]
    n = r.get("heldout_images")
    if not accs or not n:
        return "-"
    p = statistics.median(accs)
    return f"{100 * (p * (1 - p) / n) ** 0.5:.1f}"


def thin(lat: dict[str, Any]) -> str:
    """A dagger for a latency measured from fewer than 5 calls."""
    return " †" if lat.get("runs", 5) < 5 else ""
