"""Regenerate ``BENCHMARKS.md`` from ``bench/results/*.json`` (figures are never typed by hand).

    python -m bench.report
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from amc_env import atomic
from bench.common import RESULTS, display_program
from policies.compare import TABLE_COLUMNS
from scripts import train

ROOT = Path(__file__).resolve().parent.parent


def _load() -> dict[str, dict[str, Any]]:
    results = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    for r in results.values():
        prog, _, rest = r["command"].partition(" ")
        r["command"] = f"{display_program(prog)} {rest}"
    return results


def _machine(r: dict[str, Any]) -> str:
    m = r["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)"
            f"{gpu}; {r['date']}")


def _training(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("train_")]
    if not rows:
        return []
    out = ["## Baseline training (`amc-train`)", "",
           "| model | dataset | epochs | s/epoch | test acc | MACs | params | CPU latency b1 |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r["latency"]
        flags, _ = train.build_parser().parse_known_args(r["command"].split()[1:])
        out.append(f"| {flags.model} | {flags.dataset} | {r['epochs']} "
                   f"| {r['seconds_per_epoch']:.0f} | {100 * r['test_acc']:.2f}% "
                   f"| {r['macs'] / 1e6:.2f}M | {r['params'] / 1e3:.1f}k "
                   f"| {lat['median_ms']:.2f} ms ({lat['threads']} threads, {lat['device']}) |")
    out.append("")
    for r in rows:
        out += [f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _env(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("env_")]
    if not rows:
        return []
    out = ["## Environment throughput (one episode, random policies)", "",
           "| model | units | val images | recalib images | episode s | surgery s | criterion s "
           "| recalibration s | evaluation s | one eval pass s | episode / eval pass |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["median_parts_s"]
        out.append(f"| {r['model']} | {r['units']} | {r['val_size']} | {r['recalib_images']} "
                   f"| {r['median_episode_s']:.2f} | {p['surgery']:.3f} | {p['criterion']:.3f} "
                   f"| {p['recalibration']:.3f} | {p['evaluation']:.3f} | {r['eval_pass_s']:.3f} "
                   f"| {r['ratio_episode_to_eval']:.2f} |")
    out.append("")
    for r in rows:
        u = r["uniform_0.5_val_acc_recalibration"]
        a = r["random_policy_val_acc"]
        out += [f"Reward signal ({r['model']}, {r['criterion']}, 50% MACs): uniform keep 0.5 gives "
                f"{100 * u['with']:.1f}% validation accuracy with BN recalibration and "
                f"{100 * u['without']:.1f}% without; {r['episodes']} random policies spanned "
                f"{100 * a['min']:.1f}-{100 * a['max']:.1f}% (median {100 * a['median']:.1f}%) "
                "with it.", "",
                f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _search(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("search_")]
    if not rows:
        return []
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["agent"]].append(r)
    first = rows[0]
    out = [f"## Search quality ({first['model']}, {first['dataset']}, {100 * first['budget']:.0f}% "
           f"MACs, criterion {first['criterion']}, round-to {first['round_to']}, "
           f"{first['eval_size']} validation images, before fine-tuning)", "",
           "| strategy | seeds | episodes | best val acc (mean) | per seed | MACs kept "
           "| search time (min) | episodes/min |", "|---|---|---|---|---|---|---|---|"]
    for agent, rs in sorted(by.items(), key=lambda kv: -statistics.mean(
            r["best_val_acc"] for r in kv[1])):
        accs = [r["best_val_acc"] for r in rs]
        per = ", ".join(f"{100 * a:.1f}" for a in accs)
        epm = [r["episodes_per_minute"] for r in rs if "episodes_per_minute" in r]
        out.append(f"| {agent} | {len(rs)} | {rs[0]['episodes']} "
                   f"| {100 * statistics.mean(accs):.2f}% | {per} "
                   f"| {statistics.mean(r['best_macs_ratio'] for r in rs):.3f} "
                   f"| {statistics.mean(r['seconds'] for r in rs) / 60:.1f} "
                   f"| {statistics.mean(epm):.1f} |" if epm else
                   f"| {agent} | {len(rs)} | {rs[0]['episodes']} "
                   f"| {100 * statistics.mean(accs):.2f}% | {per} "
                   f"| {statistics.mean(r['best_macs_ratio'] for r in rs):.3f} | - | - |")
    out.append("")
    out.append("Commands:")
    out += [f"- `{r['command']}`" for r in rows]
    out += ["", f"Machine: {_machine(first)}", ""]
    return out


def _demo(results: dict[str, dict[str, Any]]) -> list[str]:
    r = results.get("demo")
    if r is None:
        return []
    c, b = r["config"], r["base"]
    out = [f"## `make demo` from a fresh clone: {r['wall_seconds'] / 60:.1f} min wall time", "",
           f"Set-up (venv, packages, data) + `cnn` trained {b['epochs']} epochs "
           f"({b['seconds_per_epoch']:.0f} s/epoch, {100 * b['test_acc']:.2f}% test) + "
           f"`amc-compare` of {', '.join(c['strategies'])} at {c['target']} {c['budget']}, "
           f"{c['episodes']} episodes per search, {c['finetune_epochs']} fine-tune epoch.", "",
           "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    out += ["| " + " | ".join("-" if v is None else (f"{v:.4f}" if isinstance(v, float)
                                                   and v < 10 else f"{v:.1f}"
                                                   if isinstance(v, float) else str(v))
                              for v in row) + " |" for row in r["table"]]
    out += ["", f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def render() -> str:
    """The whole BENCHMARKS.md text."""
    results = _load()
    lines = ["# Benchmarks", "",
             "Generated by `python -m bench.report` from `bench/results/*.json`; every figure "
             "comes with the command that produced it and the machine it ran on. Timings on "
             "shared machines are noisy: compare ratios measured in the same run.", ""]
    for section in (_training, _env, _search, _demo):
        lines += section(results)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Write BENCHMARKS.md."""
    atomic.write_text(ROOT / "BENCHMARKS.md", render())
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
