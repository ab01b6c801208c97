"""BENCHMARKS.md sections on comparisons: amc-compare tables with error bars, comparisons over
seeds, the older policies table, and search-time accuracy against accuracy after fine-tuning."""

from __future__ import annotations

import statistics
from typing import Any

from amc_agent.agents import AGENTS
from amc_agent.policies.compare import HEURISTIC_STRATEGIES, speedup
from amc_agent.policies.report import before_finetune_lead
from bench.report_common import machine_line, network, network_label, pct, same_policies, thin


def policies_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """The older policies table (one fine-tune seed, GPU speed-ups) and the ResNet-56 transfer
    row."""
    out = []
    for key, r in results.items():
        if not key.startswith("policies_") or key.startswith("policies_seeds_"):
            continue
        acc = r["accuracy_runs"]
        c = acc["config"]
        out += [f"## Policies compared ({key.removeprefix('policies_')}, {c['target']} "
                f"{c['budget']}, criterion {c['criterion']}, same fine-tune for all)", "",
                f"Fine-tune: {c['finetune_epochs']} epoch(s), identical recipe and seed; scratch "
                f"= the learned architecture re-initialised and trained {c['scratch_epochs']} "
                f"epochs (scratch-E, Liu et al. 2019). Unpruned test accuracy "
                f"{pct(r['base_test_acc'])}. Accuracy runs on {acc['device']}; CPU latency "
                "measured here, round-robin over all architectures.", "",
                *([] if r.get("equal_budgets") else [
                    "**Superseded as a verdict**: produced before the heuristics were completed "
                    "to the budget (their rows keep less of it, sensitivity 0.421 of MACs) and "
                    "with one fine-tune seed; kept for the GPU speed-ups and the transfer row. "
                    "The comparison with equal budgets and error bars is the section above; the "
                    "ResNet-20 rerun is `bash bench/device_session.sh policies` (GPU).", ""]),
                "| strategy | val acc before FT | test acc before FT | test acc after FT "
                "| MACs kept | params (k) | CPU b1 (ms) | CPU speed-up b1 | CPU b64 (ms) "
                "| CPU speed-up b64 | GPU speed-up b1 / b64 |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["rows"]:
            out.append(
                f"| {x['strategy']} | {pct(x['val_acc_before_finetune'])} "
                f"| {pct(x['test_acc_before_finetune'])} | {pct(x['test_acc'])} "
                f"| {x['macs_kept']:.3f} | {x['params'] / 1e3:.1f} "
                f"| {x['cpu_latency_b1_ms']:.2f} | {x['cpu_speedup_b1']:.2f}x "
                f"| {x['cpu_latency_b64_ms']:.1f} | {x['cpu_speedup_b64']:.2f}x "
                f"| {x['accel_speedup_b1']:.2f}x / {x['accel_speedup_b64']:.2f}x |")
        t = r.get("transfer")
        if t:
            a, u = t["actor"], t["uniform"]
            out += ["", f"Transfer: the ResNet-20 actor applied to ResNet-56 ({t['base_epochs']} "
                    f"epochs, {pct(t['base_test_acc'])} test) at 50% MACs, against uniform on "
                    "the same ResNet-56:", "",
                    "| ResNet-56 policy | mode | MACs kept | params kept | test acc before FT "
                    "| test acc after FT |", "|---|---|---|---|---|---|",
                    f"| resnet20 actor | {a['mode']} | {a['macs_kept']:.3f} "
                    f"| {a['params_kept']:.3f} | {pct(a['test_acc_before_finetune'])} "
                    f"| {pct(a['test_acc'])} |",
                    f"| uniform | - | {u['macs_kept']:.3f} | {u['params_kept']:.3f} "
                    f"| {pct(u['test_acc_before_finetune'])} | {pct(u['test_acc'])} |"]
        out += ["", f"Accuracy runs: `{acc['command']}` (via `bash bench/device_session.sh "
                "policies` / `transfer`)  ", f"Command: `{r['command']}`  ",
                f"Machine: {machine_line(r)}", ""]
    return out


CORRELATION_SIGNALS = (("plain", "val acc, no BN recalibration"),
                       ("recalibrated", "val acc (the search's score)"),
                       ("heldout", "held-out val acc"),
                       ("short_finetune", "held-out val acc after the short fine-tune"))


def correlation_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Search-time signals against the test accuracy after fine-tuning: rank and linear
    correlations."""
    out = []
    for key, r in results.items():
        if not key.startswith("correlation_"):
            continue
        ft = r["finetune"]
        images = f", {r['finetune_images']} training images" if "finetune_images" in r else ""
        seeds = f"{ft['seeds']} seeds, mean" if "seeds" in ft else f"seed {ft['seed']}"
        short = r.get("short_finetune")
        out += [f"## Search-time accuracy vs accuracy after fine-tuning "
                f"({key.removeprefix('correlation_')}, {r['agent']} search, budget "
                f"{r['budget']})", "",
                f"Policies from the search's episodes, replayed on its {r['val_size']} "
                "validation images without and with BN recalibration"
                + (f", scored on the held-out validation images before and after a short "
                   f"fine-tune ({short['images']} training images, one pass, lr {short['lr']})"
                   if short else "")
                + f", then fine-tuned {ft['epochs']} epoch(s) (lr {ft['lr']}, {seeds}{images}) "
                f"on {r['device']} and scored on the test split. Spearman (Pearson) correlation "
                "of each signal with the final test accuracy:", ""]
        sigs = [(n, label) for n, label in CORRELATION_SIGNALS
                if any(n in c for c in r["correlation"].values())]
        out += ["| policies | n | " + " | ".join(label for _, label in sigs)
                + " | final acc range | fine-tune seed std |",
                "|---|---|" + "---|" * len(sigs) + "---|---|"]

        def f(c: dict[str, Any] | None) -> str:
            if c is None or c["spearman"] is None:
                return "-"
            return f"{c['spearman']:.2f} ({c['pearson']:.2f})"

        def pts(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.2f} pts"

        for name, c in r["correlation"].items():
            n = next((c[s]["n"] for s, _ in sigs if s in c), 0)
            out.append(f"| {name} | {n} | " + " | ".join(f(c.get(s)) for s, _ in sigs)
                       + f" | {pts(c.get('final_accuracy_range'))} "
                       f"| {pts(c.get('finetune_seed_std'))} |")
        accs = [x["test_acc_after_finetune"] for x in r["policies"]
                if x["test_acc_after_finetune"] is not None]
        recal = [x["val_acc_recalibrated"] for x in r["policies"]]
        out += ["", f"Ranges: search val acc {pct(min(recal))}-{pct(max(recal))}, test acc "
                f"after fine-tune {pct(min(accs))}-{pct(max(accs))}.", "",
                f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    return out


def compare_table(r: dict[str, Any]) -> list[str]:
    """A compare summary (bench.bench_compare.summary) as a table, the differences against the
    best mean, and the searched strategy's lead before fine-tuning."""
    c, o = r["config"], r["original"]
    out = [f"Every strategy completed through the same wall (budget kept: the target's cost, "
           "flagged if more than one rounding step under); the checkpoint's own validation split; "
           f"searched winners re-scored on held-out validation images; {c['finetune_epochs']} "
           f"fine-tune epoch(s) on {c.get('finetune_images') or 'all'} training images with "
           f"{c.get('finetune_seeds', 1)} seed(s) (mean ± std). "
           f"Unpruned test accuracy {pct(r['base_test_acc'])}. CPU speed-up: the median over "
           "3 round-robin rounds of original / pruned latency, timed while the comparison ran "
           "(often beside other jobs on this 2-core machine): a rough figure; speed-up claims "
           "come from the quiet runs in the speed-up section.", "",
           "| strategy | criterion | val acc (search images) | val acc (held-out) "
           "| test acc before FT | test acc after FT | per seed | MACs kept | budget kept "
           "| CPU speed-up b1 / b64 |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, x in r["strategies"].items():
        after = "-" if x["test_acc"] is None else f"{100 * x['test_acc']:.2f}%" + (
            "" if x["test_acc_std"] is None else f" ± {100 * x['test_acc_std']:.2f}")
        per = ", ".join("div" if a is None else f"{100 * a:.2f}" for a in x["test_acc_seeds"])
        ok = "" if x["budget_ok"] else " **under**"
        lat = x["latency"]
        out.append(f"| {name} | {x.get('criterion') or '-'} "
                   f"| {pct(x['val_acc_before_finetune'])} "
                   f"| {pct(x['val_acc_heldout'])} | {pct(x['test_acc_before_finetune'])} "
                   f"| {after} | {per} | {x['macs_kept']:.3f} | {x['cost_kept']:.3f}{ok} "
                   f"| {speedup(o['latency']['b1'], lat['b1']):.2f}x{thin(lat['b1'])} / "
                   f"{speedup(o['latency']['b64'], lat['b64']):.2f}x{thin(lat['b64'])} |")
    if any(thin(x["latency"][b]) for x in r["strategies"].values() for b in ("b1", "b64")):
        out += ["", "† a latency resting on fewer than 5 timed calls (one slow call filled the "
                "time budget): not a measurement; latencies now always time at least 5 calls."]
    same = same_policies(r["strategies"])
    if same:
        once = any(r["strategies"][n].get("same_network_as") for g in same for n in g)
        out += ["", "Identical policies (one network, not a tie between strategies; "
                + ("fine-tuned once, its rows identical): " if once
                   else "identical rows up to fine-tune noise): ")
                + "; ".join(" = ".join(g) for g in same) + "."]
    n, acc = o.get("test_images"), o["test_acc"]
    test_se = "" if not n else (
        f" The test split itself has {n} images: one accuracy near {100 * acc:.0f}% carries a "
        f"binomial standard error of {100 * (acc * (1 - acc) / n) ** 0.5:.2f} points, shared by "
        "every row (same images), so a gap beyond the seed spread is reproducible on this split, "
        "not proof that it generalises.")
    out += ["", "After fine-tuning, against the best mean (counts only beyond two standard errors "
            f"over the seeds).{test_se}", ""]
    for name, d in r["differences"].items():
        verdict = "no spread (one seed)" if d["exceeds_spread"] is None else (
            "**exceeds the spread**" if d["exceeds_spread"] else "within the spread")
        se = "" if d["two_se"] is None else f" (2 SE {100 * d['two_se']:.2f})"
        out.append(f"- {name} vs {d['versus']}: {100 * d['delta']:+.2f} points{se}: {verdict}")
    out += ["", *before_finetune_lead({"strategies": r["strategies"], "original": o}), "",
            f"Comparison: `{r['compare_command']}`  "]
    return out


def compare_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """One table per amc-compare result (bench_compare): every strategy with error bars."""
    out = []
    for key, r in results.items():
        if not key.startswith("compare_"):
            continue
        c = r["config"]
        out += [f"## Policies compared with error bars ({key.removeprefix('compare_')})", "",
                f"`amc-compare` at {c['target']} {c['budget']}, criterion {c['criterion']}, "
                f"{c['episodes']} episodes per search, on {network_label(*network(r))} (trained "
                f"{r['base_epochs']} epochs).", "", *compare_table(r),
                f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    return out


def selection_gaps(results: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Per searched row of every comparison: its held-out validation accuracy minus its test
    accuracy, both before fine-tuning, less the mean of that gap over the same comparison's
    heuristic rows (which pick nothing on the held-out images), in points; keyed by how the
    search chose its winner among its re-scored top policies (``"after a short fine-tune"`` or
    ``"right after pruning"``). The heuristics' gap is the checkpoint's own validation/test
    offset; what a searched row has beyond it is what choosing on those images added."""
    out: dict[str, list[float]] = {}
    for key, r in results.items():
        if not key.startswith("compare_"):
            continue
        gap = {n: 100 * (x["val_acc_heldout"] - x["test_acc_before_finetune"])
               for n, x in r["strategies"].items()
               if x.get("val_acc_heldout") is not None
               and x.get("test_acc_before_finetune") is not None}
        base = [g for n, g in gap.items() if n in HEURISTIC_STRATEGIES]
        if not base:
            continue
        for n, g in gap.items():
            if n in AGENTS:
                how = "after a short fine-tune" \
                    if r["strategies"][n].get("rescore_finetune_images") else "right after pruning"
                out.setdefault(how, []).append(g - statistics.mean(base))
    return out


def selection_bias_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """How optimistic a searched winner's held-out validation accuracy is (it is the best of
    the re-scored top policies on those images), measured against the test split."""
    gaps = {k: v for k, v in selection_gaps(results).items() if len(v) > 1}
    if not gaps:
        return []
    out = ["## Selection bias of the held-out figure (every amc-compare result)", "",
           "A search declares the best of its top policies re-scored on held-out validation "
           "images, so its held-out accuracy is a maximum over a few noisy estimates, while a "
           "heuristic's is one estimate. Measured as each searched row's gap (held-out minus "
           "test accuracy, both before fine-tuning; the test split is scored after the choice) "
           "less the mean gap of the heuristic rows of the same comparison, in points. Rows of "
           "one comparison share that baseline, so the standard error is approximate.", "",
           "| winner chosen on held-out accuracy | searched rows | excess gap (points) "
           "| standard error |", "|---|---|---|---|"]
    for how, v in sorted(gaps.items()):
        out.append(f"| {how} | {len(v)} | {statistics.mean(v):+.2f} "
                   f"| {statistics.stdev(v) / len(v) ** 0.5:.2f} |")
    out += ["", "Search-quality tables (`bench_search`) choose right after pruning: their "
            "searched rows' held-out figures carry that excess against the heuristics' rows; "
            "the comparisons' test accuracies do not.", "",
            "Computed by `python -m bench.report` from the `compare_*` results.", ""]
    return out


def seeds_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Whole comparisons repeated over seeds (bench_seeds), side by side."""
    out = []
    for key, r in results.items():
        if not key.startswith("policies_seeds_"):
            continue
        seeds = [run["seed"] for run in r["runs"]]
        out += [f"### Over seeds ({key.removeprefix('policies_seeds_')}, amc-compare seeds "
                f"{', '.join(map(str, seeds))})", "",
                "Each run differs only in `--seed` (search, validation split, fine-tune). "
                "Accuracy before FT / test accuracy after the 1-epoch fine-tune:", "",
                "| strategy | " + " | ".join(f"seed {s}" for s in seeds) + " | mean after FT |",
                "|---|" + "---|" * (len(seeds) + 1)]
        for name, m in r["mean"].items():
            cells = []
            for run in r["runs"]:
                x = run["strategies"].get(name)
                cells.append("-" if x is None else
                             f"{pct(x['test_acc_before_finetune'])} / {pct(x['test_acc'])}")
            out.append(f"| {name} | " + " | ".join(cells) + f" | {pct(m['test_acc'])} |")
        out += ["", f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
        out += [f"Run (seed {run['seed']}, on {run['device']}): `{run['command']}`  "
                for run in r["runs"]]
        out.append("")
    return out
