"""The local comparison report: ``report.md`` with the table and matplotlib PNG plots."""

from __future__ import annotations

import io
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np

from amc_agent.env import atomic
from amc_agent.env.checkpoint import library_versions
from amc_agent.policies.compare import HEURISTIC_STRATEGIES
from amc_agent.policies.peers import PEER_STRATEGIES


def _plt() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, imported on first use: it costs ~0.5 s
    at every process start (workers, torchrun ranks) that never draws."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def plot_accuracy_vs_macs(results: dict[str, Any], path: Path) -> None:
    """Test accuracy after fine-tuning against MACs, one point per strategy, with the standard
    deviation over fine-tune seeds as error bars."""
    fig, ax = _plt().subplots(figsize=(6.5, 4.5))
    o = results["original"]
    ax.scatter([o["macs"] / 1e6], [100 * o["test_acc"]], marker="*", s=180, c="black",
               label="original")
    # Distinct markers, shrinking in size, keep coinciding strategies (e.g. a search and random
    # search that found the same policy) visible on top of each other.
    markers = "os^Dvp<>"
    for i, (name, r) in enumerate(results["strategies"].items()):
        if r["test_acc"] is not None:  # a diverged fine-tune has no accuracy to show
            std = r.get("test_acc_std")
            ax.errorbar([r["macs"] / 1e6], [100 * r["test_acc"]],
                        yerr=None if std is None else [100 * std], fmt=markers[i % len(markers)],
                        markersize=max(5, 12 - 1.5 * i), capsize=4, alpha=0.85, label=name)
    ax.set_xlabel("MACs per image (millions)")
    ax.set_ylabel("test accuracy after fine-tuning (%, mean ± std over seeds)")
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
    wide = max(7, 0.45 * len(units) * max(1, len(strategies)) / 2)
    fig, ax = _plt().subplots(figsize=(wide, 4.5))
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
    fig, ax = _plt().subplots(figsize=(6.5, 4.5))
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


def _pct(v: float | None, std: float | None = None, n: int = 0) -> str:
    if v is None:
        return "-"
    if std is None:
        return f"{100 * v:.2f}%"
    return f"{100 * v:.2f} ± {100 * std:.2f}% (n={n})"


def _ms(lat: dict[str, Any]) -> str:
    return f"{lat['median_ms']:.3f} ({lat['iqr_ms']:.3f})"


def _row(name: str, r: dict[str, Any], original: dict[str, Any]) -> list[str]:
    ol, lat = original["latency"], r["latency"]
    budget = "-" if r.get("cost_kept") is None else f"{r['cost_kept']:.3f}" + (
        "" if r.get("budget_ok") else " **not within one step**")
    after = _pct(r["test_acc"], r.get("test_acc_std"), len(r.get("test_acc_seeds") or []))
    return [name, r.get("criterion") or "-", _pct(r["val_acc_before_finetune"]),
            _pct(r.get("val_acc_heldout")),
            _pct(r["test_acc_before_finetune"]), after, f"{r['macs'] / original['macs']:.3f}",
            budget, f"{r['params'] / 1e3:.1f}", _ms(lat["b1"]), _ms(lat["b64"]),
            f"{ol['b1']['median_ms'] / lat['b1']['median_ms']:.2f}x",
            f"{ol['b64']['median_ms'] / lat['b64']['median_ms']:.2f}x"]


HEADER = ["strategy", "criterion", "val acc (search images)", "val acc (held-out)",
          "test acc before FT", "test acc after FT (mean ± std)", "MACs kept", "budget kept",
          "params (k)",
          "latency b1 ms (IQR)", "latency b64 ms (IQR)", "speed-up b1", "speed-up b64"]


def before_finetune_lead(results: dict[str, Any]) -> list[str]:
    """Sentences on the first searched strategy's lead before fine-tuning, on the test split:
    a lead counts when it exceeds two standard errors of the difference (binomial error of
    each accuracy on the test images)."""
    rows = {n: r for n, r in results["strategies"].items()
            if r.get("test_acc_before_finetune") is not None}
    agent = next((n for n in rows if n not in (*HEURISTIC_STRATEGIES, "random", "scratch")),
                 None)
    n_test = results["original"].get("test_images")
    if agent is None or not n_test:
        return []
    a = rows[agent]["test_acc_before_finetune"]
    ahead, behind = [], []
    for name, r in rows.items():
        if name == agent:
            continue
        b = r["test_acc_before_finetune"]
        two_se = 2 * math.sqrt((a * (1 - a) + b * (1 - b)) / n_test)
        (ahead if a - b > two_se else behind).append(
            f"{name} ({100 * (a - b):+.2f} points, 2 SE {100 * two_se:.2f})")
    out = [f"Before fine-tuning ({n_test} test images), {agent} is ahead of: "
           f"{', '.join(ahead) or 'none'}."]
    found, warmup = rows[agent].get("found_at_episode"), rows[agent].get("warmup_episodes")
    if rows[agent].get("seed_policy"):
        out.append(f"{agent}'s winner is episode {found}, the {rows[agent]['seed_policy']} "
                   "policy it was seeded with: the search found nothing better.")
    elif found is not None and warmup and found < warmup:
        out.append(f"{agent}'s winner is episode {found}, inside its {warmup} warm-up episodes "
                   "of uniformly random keep ratios: the learned actor found nothing better than "
                   "random sampling.")
    if behind:
        out.append(f"Not ahead by more than the noise (or behind): {', '.join(behind)}.")
    return out


def write_report(results: dict[str, Any], out: Path, command: str) -> Path:
    """Write ``report.md`` and its PNGs into ``out``; returns the report's path."""
    plot_accuracy_vs_macs(results, out / "accuracy_vs_macs.png")
    plot_keep_ratios(results, out / "keep_ratios.png")
    has_curves = bool(results["curves"])
    if has_curves:
        plot_search_curves(results, out / "search_curves.png")
    cfg = results["config"]
    o = results["original"]
    lat = o["latency"]["b1"]
    seeds = cfg.get("finetune_seeds", 1)
    lines = [
        "# Pruning strategies compared", "",
        f"Budget: {cfg['target']} {cfg['budget']} (fraction of the original kept); criterion "
        f"{cfg['criterion']}" + ("" if not set(results["strategies"]) & set(PEER_STRATEGIES) else
                                 " (tp-* rows: Torch-Pruning's default importance, group-l2)")
        + "; " + (
            f"fine-tune: {cfg['finetune_epochs']} epoch(s)"
            + (f" on {cfg['finetune_images']} training images" if cfg.get("finetune_images")
               else "") + ", same recipe for every strategy, "
            f"seeds {cfg['seed']}..{cfg['seed'] + seeds - 1}." if cfg["finetune_epochs"]
            else "no fine-tuning (test accuracy after FT = before)."),
        "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER),
        "| " + " | ".join(["original", "-", "-", "-", _pct(o["test_acc"]), _pct(o["test_acc"]),
                           "1.000", "1.000", f"{o['params'] / 1e3:.1f}",
                           _ms(o["latency"]["b1"]), _ms(o["latency"]["b64"]), "1.00x",
                           "1.00x"]) + " |",
    ]
    lines += ["| " + " | ".join(_row(n, r, o)) + " |" for n, r in results["strategies"].items()]
    lines += [f"\n**{name}: {r['diverged']}**; its accuracy after training is not reported."
              for name, r in results["strategies"].items() if r.get("diverged")]
    lines += [f"\n{name} chose the same network as {r['same_network_as']} (the same channels): "
              "it was fine-tuned once, and its row is that one network, not a tie."
              for name, r in results["strategies"].items() if r.get("same_network_as")]
    held = next((r.get("heldout_images") for r in results["strategies"].values()
                 if r.get("heldout_images")), 0)
    lines += [
        "", f"Latency: median ms per batch (inter-quartile range) on {lat['device']} "
        f"({lat.get('backend', 'eager')}), {lat['threads']} threads, batch 1 and 64, measured "
        "round-robin in this run; speed-up = original latency / pruned latency.",
        "Budget kept: the target's cost kept (predicted by the cost model the wall uses); every "
        "strategy is completed through the same wall, and a row more than one rounding step "
        "under the budget is flagged.",
        f"Validation accuracy: on the search's scoring images (its reward, optimistic for the "
        f"best of a search) and on {held} held-out validation images no episode scored (searched "
        "strategies keep the best of their top policies re-scored there). Test accuracy: the "
        "test split.", "",
    ]
    lines += before_finetune_lead(results)
    diffs = results.get("differences") or {}
    if diffs and cfg["finetune_epochs"]:
        lines += ["", "After fine-tuning, against the best mean (a difference counts when it "
                  "exceeds two standard errors over the fine-tune seeds):", ""]
        for name, d in diffs.items():
            verdict = "no spread (one seed)" if d["exceeds_spread"] is None else (
                "exceeds the spread" if d["exceeds_spread"] else "within the spread")
            se = "" if d["two_se"] is None else f", 2 SE {100 * d['two_se']:.2f}"
            lines.append(f"- {name} vs {d['versus']}: {100 * d['delta']:+.2f} points{se}: "
                         f"{verdict}")
    lines += ["", "![accuracy vs MACs](accuracy_vs_macs.png)", "",
              "![keep ratios](keep_ratios.png)", ""]
    if has_curves:
        lines += ["![search curves](search_curves.png)", ""]
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    lines += ["## Reproduce", "", "```", command, "```", "",
              f"Versions: {versions}. Machine: {platform.platform()}, "
              f"{platform.processor() or platform.machine()}.", ""]
    path = out / "report.md"
    atomic.write_text(path, "\n".join(lines))
    return path
