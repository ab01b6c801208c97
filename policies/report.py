"""The local comparison report: ``report.md`` with the table and matplotlib PNG plots."""

from __future__ import annotations

import io
import platform
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
import numpy as np

from amc_env import atomic
from amc_env.checkpoint import library_versions
from policies.compare import TABLE_COLUMNS, table_rows


def _save(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def plot_accuracy_vs_macs(results: dict[str, Any], path: Path) -> None:
    """Test accuracy after fine-tuning against MACs, one point per strategy."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    o = results["original"]
    ax.scatter([o["macs"] / 1e6], [100 * o["test_acc"]], marker="*", s=180, c="black",
               label="original")
    # Distinct markers, shrinking in size, keep coinciding strategies (e.g. a search and random
    # search that found the same policy) visible on top of each other.
    markers = "os^Dvp<>"
    for i, (name, r) in enumerate(results["strategies"].items()):
        if r["test_acc"] is not None:  # a diverged fine-tune has no accuracy to show
            ax.scatter([r["macs"] / 1e6], [100 * r["test_acc"]], s=max(30, 140 - 20 * i),
                       marker=markers[i % len(markers)], alpha=0.85, label=name)
    ax.set_xlabel("MACs per image (millions)")
    ax.set_ylabel("test accuracy after fine-tuning (%)")
    ax.set_title("Accuracy vs MACs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_keep_ratios(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: keep ratio of every unit, one bar colour per strategy."""
    strategies = [n for n in results["strategies"] if n != "scratch"]
    units = list(results["strategies"][strategies[0]]["keep_ratios"])
    x = np.arange(len(units))
    width = 0.8 / max(1, len(strategies))
    fig, ax = plt.subplots(figsize=(max(7, 0.45 * len(units) * max(1, len(strategies)) / 2), 4.5))
    for i, name in enumerate(strategies):
        ratios = results["strategies"][name]["keep_ratios"]
        ax.bar(x + i * width - 0.4 + width / 2, [ratios[u] for u in units], width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(units, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("keep ratio (fraction of channels kept)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Per-unit keep ratios")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_search_curves(results: dict[str, Any], path: Path) -> None:
    """Per-episode reward (faint) and best reward so far (solid) for each searched strategy."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, curve in results["curves"].items():
        eps = np.arange(len(curve["reward"]))
        line = ax.plot(eps, curve["best_reward"], label=f"{name} best so far")[0]
        ax.plot(eps, curve["reward"], alpha=0.3, color=line.get_color(), lw=0.8,
                label=f"{name} episode reward")
    ax.set_xlabel("episode")
    ax.set_ylabel("reward (validation accuracy before fine-tuning)")
    ax.set_title("Search reward curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if v < 10 else f"{v:.1f}"
    return str(v)


def write_report(results: dict[str, Any], out: Path, command: str) -> Path:
    """Write ``report.md`` and its PNGs into ``out``; returns the report's path."""
    plot_accuracy_vs_macs(results, out / "accuracy_vs_macs.png")
    plot_keep_ratios(results, out / "keep_ratios.png")
    has_curves = bool(results["curves"])
    if has_curves:
        plot_search_curves(results, out / "search_curves.png")
    lat = results["original"]["latency"]["b1"]
    lines = [
        "# Pruning strategies compared", "",
        f"Budget: {results['config']['target']} {results['config']['budget']}; criterion "
        f"{results['config']['criterion']}; fine-tune: {results['config']['finetune_epochs']} "
        f"epoch(s), same recipe and seed for every strategy; seed {results['config']['seed']}.",
        "", "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table_rows(results)]
    lines += [f"\n**{name}: {r['diverged']}**; its accuracy after training is not reported."
              for name, r in results["strategies"].items() if r.get("diverged")]
    lines += [
        "", f"Latency: median ms per batch on {lat['device']}, {lat['threads']} threads, "
        "batch 1 and 64; speed-up = original latency / pruned latency, measured in this run.",
        "Validation accuracy is on the held-out part of the training split (the search's "
        "reward); test accuracy on the test split.", "",
        "![accuracy vs MACs](accuracy_vs_macs.png)", "",
        "![keep ratios](keep_ratios.png)", "",
    ]
    if has_curves:
        lines += ["![search curves](search_curves.png)", ""]
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    lines += ["## Reproduce", "", "```", command, "```", "",
              f"Versions: {versions}. Machine: {platform.platform()}, "
              f"{platform.processor() or platform.machine()}.", ""]
    path = out / "report.md"
    atomic.write_text(path, "\n".join(lines))
    return path
