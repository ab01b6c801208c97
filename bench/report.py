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
from policies.report import before_finetune_lead
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
           "| recalibration s | evaluation s | one eval pass s | episode / eval pass "
           "| episodes / min |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["median_parts_s"]
        out.append(f"| {r['model']} | {r['units']} | {r['val_size']} | {r['recalib_images']} "
                   f"| {r['median_episode_s']:.2f} | {p['surgery']:.3f} | {p['criterion']:.3f} "
                   f"| {p['recalibration']:.3f} | {p['evaluation']:.3f} | {r['eval_pass_s']:.3f} "
                   f"| {r['ratio_episode_to_eval']:.2f} | {60 / r['median_episode_s']:.1f} |")
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
    return [f"## `make demo` from a fresh clone: {r['wall_seconds'] / 60:.1f} min wall time", "",
            f"Set-up (venv, packages, data) + `cnn10` trained {b['epochs']} epochs "
            f"({b['seconds_per_epoch']:.0f} s/epoch, {100 * b['test_acc']:.2f}% test) + "
            f"`amc-compare` of {', '.join(c['strategies'])} at {c['target']} {c['budget']}, "
            f"{c['episodes']} episodes per search.", "", *_compare_table(r),
            f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _criteria(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, r in results.items():
        if not key.startswith("criteria_"):
            continue
        sets = list(r.get("count_sets") or ["uniform"])
        out += [f"## Channel-selection criteria at fixed channel counts ({r['model']}, "
                f"{r['dataset']}, {100 * r['budget']:.0f}% MACs, round-to {r['round_to']}, "
                "before any fine-tuning)", "",
                "Every criterion keeps the same number of channels in every unit (count sets: "
                f"{', '.join(sets)}), so only which channels go differs. Accuracy on the "
                f"{r['val_size']} search validation images and on {r.get('heldout_images', 0)} "
                "further held-out ones (binomial standard error about "
                f"{_se_points(r)} points there), after BN recalibration; "
                f"reconstruction samples {r['calib_images']} images x {r['calib_points']} "
                f"positions per consumer layer. Unpruned validation accuracy: "
                f"{_pct(r.get('original_val_acc'))}.", "",
                "| criterion | " + " | ".join(f"{c}: val acc (held-out)" for c in sets)
                + " | episode s | of which criterion + refit s |",
                "|---|" + "---|" * (len(sets) + 2)]
        by: dict[str, dict[str, Any]] = {}
        for x in r["rows"]:
            by.setdefault(x["criterion"], {})[x.get("counts", "uniform")] = x
        for crit, cells in by.items():
            first = next(iter(cells.values()))
            accs = [f"{_pct(cells[c]['val_acc'])} ({_pct(cells[c].get('val_acc_heldout'))})"
                    if c in cells else "-" for c in sets]
            out.append(f"| {crit} | " + " | ".join(accs)
                       + f" | {first['episode_s']:.2f} | {first['criterion_s']:.2f} |")
        out += ["", *_criteria_findings(by, sets)]
        out += ["", f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _same_policies(rows: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Groups of two or more strategies that chose the same keep ratios."""
    groups: dict[str, list[str]] = {}
    for name, x in rows.items():
        if x.get("keep_ratios"):
            groups.setdefault(json.dumps(x["keep_ratios"], sort_keys=True), []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def _criteria_findings(by: dict[str, dict[str, Any]], sets: list[str]) -> list[str]:
    """Per count set: the best criterion on held-out images with and without a refit, and any
    criterion that does not beat ``random``."""
    refits = ("+reconstruct", "thinet", "lasso")
    out = []
    for c in sets:
        acc = {k: v[c]["val_acc_heldout"] for k, v in by.items()
               if c in v and v[c].get("val_acc_heldout") is not None}
        if not acc:
            continue
        plain = {k: a for k, a in acc.items() if not any(f in k for f in refits)}
        refit = {k: a for k, a in acc.items() if any(f in k for f in refits)}
        parts = [f"best without a refit **{k}** ({_pct(a)})" for k, a in
                 [max(plain.items(), key=lambda kv: kv[1])] if plain]
        parts += [f"best with one **{k}** ({_pct(a)})" for k, a in
                  [max(refit.items(), key=lambda kv: kv[1])] if refit]
        if "random" in acc:
            below = [k for k, a in plain.items() if k != "random" and a <= acc["random"]]
            parts.append("at or below `random`: " + (", ".join(below) if below else "none"))
        out.append(f"- {c} counts (held-out): " + "; ".join(parts) + ".")
    return out


def _se_points(r: dict[str, Any]) -> str:
    """Binomial standard error, in accuracy points, of the median held-out accuracy of a
    criteria result on its held-out images."""
    accs = [x["val_acc_heldout"] for x in r["rows"] if x.get("val_acc_heldout") is not None]
    n = r.get("heldout_images")
    if not accs or not n:
        return "-"
    p = statistics.median(accs)
    return f"{100 * (p * (1 - p) / n) ** 0.5:.1f}"


def _latency(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items()
            if k.startswith("latency_") and not k.startswith("latency_target_")]
    if not rows:
        return []
    out = ["## Measured speed-up vs MACs reduction", "",
           "Uniformly pruned copies at several MACs budgets and the learned policy, measured "
           "round-robin in one run (median of per-round medians).", "",
           "| device | model | MACs kept | MACs speed-up | latency b1 (ms) | speed-up b1 "
           "| latency b64 (ms) | speed-up b64 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = r.get("device_name") or f"CPU ({r['machine']['torch_threads']} threads)"
        out += [f"| {dev} | {x['model']} | {x['macs_kept']:.3f} | {x['macs_speedup']:.2f}x "
                f"| {x['latency_b1_ms']:.3f} | {x['speedup_b1']:.2f}x "
                f"| {x['latency_b64_ms']:.3f} | {x['speedup_b64']:.2f}x |" for x in r["rows"]]
    out.append("")
    for r in rows:
        out += [f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _policies(results: dict[str, dict[str, Any]]) -> list[str]:
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
                f"{_pct(r['base_test_acc'])}. Accuracy runs on {acc['device']}; CPU latency "
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
                f"| {x['strategy']} | {_pct(x['val_acc_before_finetune'])} "
                f"| {_pct(x['test_acc_before_finetune'])} | {_pct(x['test_acc'])} "
                f"| {x['macs_kept']:.3f} | {x['params'] / 1e3:.1f} "
                f"| {x['cpu_latency_b1_ms']:.2f} | {x['cpu_speedup_b1']:.2f}x "
                f"| {x['cpu_latency_b64_ms']:.1f} | {x['cpu_speedup_b64']:.2f}x "
                f"| {x['accel_speedup_b1']:.2f}x / {x['accel_speedup_b64']:.2f}x |")
        t = r.get("transfer")
        if t:
            a, u = t["actor"], t["uniform"]
            out += ["", f"Transfer: the ResNet-20 actor applied to ResNet-56 ({t['base_epochs']} "
                    f"epochs, {_pct(t['base_test_acc'])} test) at 50% MACs, against uniform on "
                    "the same ResNet-56:", "",
                    "| ResNet-56 policy | mode | MACs kept | params kept | test acc before FT "
                    "| test acc after FT |", "|---|---|---|---|---|---|",
                    f"| resnet20 actor | {a['mode']} | {a['macs_kept']:.3f} "
                    f"| {a['params_kept']:.3f} | {_pct(a['test_acc_before_finetune'])} "
                    f"| {_pct(a['test_acc'])} |",
                    f"| uniform | - | {u['macs_kept']:.3f} | {u['params_kept']:.3f} "
                    f"| {_pct(u['test_acc_before_finetune'])} | {_pct(u['test_acc'])} |"]
        out += ["", f"Accuracy runs: `{acc['command']}` (via `bash bench/device_session.sh "
                "policies` / `transfer`)  ", f"Command: `{r['command']}`  ",
                f"Machine: {_machine(r)}", ""]
    return out


def _latency_target(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("latency_target_")]
    if not rows:
        return []
    out = ["## Latency-target search (`amc-search --target latency`)", "",
           "The action wall works from a predicted latency (a line a + b x MACs fitted on "
           "uniformly pruned copies); every episode's model is also measured, and an episode "
           "only counts if the measurement meets the budget. The best model is then measured "
           "again against the original, round-robin.", "",
           "| model | batch | budget | episodes | best val acc | MACs kept | search-time ms "
           "(predicted) | re-measured ratio | meets budget | predictor median abs error "
           "| episodes over budget |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, m, pr = r["best"], r["remeasured"], r["predictor"]
        out.append(f"| {r['model']} | {r['latency_batch']} | {r['budget']:.2f} "
                   f"({r['budget_ms_at_search']:.2f} ms) | {r['episodes']} "
                   f"| {_pct(b['accuracy'])} | {b['macs_ratio']:.3f} "
                   f"| {b['latency_ms']:.2f} ({b['predicted_latency_ms']:.2f}) "
                   f"| {m['latency_ratio']:.3f} ({m['searched_ms']:.2f} / "
                   f"{m['original_ms']:.2f} ms) | {'yes' if m['meets_budget'] else 'no'} "
                   f"| {100 * pr['median_abs_error']:.1f}% "
                   f"| {100 * r['episodes_over_budget']:.0f}% |")
    out.append("")
    for r in rows:
        out += [f"Command: `{r['command']}` (search: `{r['search_command']}`)  ",
                f"Machine: {_machine(r)}", ""]
    return out


def _correlation(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, r in results.items():
        if not key.startswith("correlation_"):
            continue
        ft = r["finetune"]
        images = f", {r['finetune_images']} training images" if "finetune_images" in r else ""
        out += [f"## Search-time accuracy vs accuracy after fine-tuning "
                f"({key.removeprefix('correlation_')}, {r['agent']} search, budget "
                f"{r['budget']})", "",
                f"Policies from the search's episodes, replayed on its {r['val_size']} "
                f"validation images without and with BN recalibration, then fine-tuned "
                f"{ft['epochs']} epoch(s) (lr {ft['lr']}, seed {ft['seed']}{images}) on "
                f"{r['device']} "
                "and scored on the test split.", "",
                "| policies | n | Pearson plain | Pearson recalibrated | Spearman plain "
                "| Spearman recalibrated |", "|---|---|---|---|---|---|"]

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        for name, c in r["correlation"].items():
            p, q = c["plain"], c["recalibrated"]
            out.append(f"| {name} | {q['n']} | {f(p['pearson'])} | {f(q['pearson'])} "
                       f"| {f(p['spearman'])} | {f(q['spearman'])} |")
        accs = [x["test_acc_after_finetune"] for x in r["policies"]
                if x["test_acc_after_finetune"] is not None]
        plain = [x["val_acc_plain"] for x in r["policies"]]
        recal = [x["val_acc_recalibrated"] for x in r["policies"]]
        out += ["", f"Ranges: val acc plain {_pct(min(plain))}-{_pct(max(plain))}, recalibrated "
                f"{_pct(min(recal))}-{_pct(max(recal))}, test acc after fine-tune "
                f"{_pct(min(accs))}-{_pct(max(accs))}.", "",
                f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _sweep(results: dict[str, dict[str, Any]]) -> list[str]:
    r = results.get("sweep")
    if r is None:
        return []
    rows = r["models"]
    passed = [x for x in rows if x["status"] == "pass"]
    out = ["## Any-model sweep", "",
           f"**{r['passed']} of {r['total']} models pass** (every torchvision classifier and "
           f"the zoo; random weights, 10 classes, a seeded random policy at "
           f"{100 * r['budget']:.0f}% MACs, round-to {r['round_to']}). Stages: build, env "
           "(units from the dependency graph), episode, forward (finite (2, 10) output), MACs "
           "(predicted == recounted, within budget), export (weights_only checkpoint rebuilt "
           "from recipe + pruning record, outputs bit-identical). Wall time "
           f"{r.get('wall_s_first_run', r['wall_s']):.0f} s with {r['workers']} worker(s) x "
           f"{r['threads_per_model']} "
           f"thread(s); each model in its own process with a {r.get('timeout_s', 300):.0f} s "
           f"limit and {r.get('memory_gib', 12):.0f} GiB of address space.", ""]
    fails = [x for x in rows if x["status"] != "pass"]
    if fails:
        out += ["| failing model | input | stage | error |", "|---|---|---|---|"]
        out += [f"| {x['model']} | {'x'.join(map(str, x.get('input', [])))} | {x['stage']} "
                f"| {x['error'].replace('|', '/')} |" for x in fails]
        out.append("")
        why = {"infeasible": "*infeasible*: channel groups that touch grouped (not depthwise) "
                             "convolutions are left unpruned, and what remains cannot reach the "
                             "budget with keep ratios >= lbound;",
               "cannot trace": "*cannot trace*: Torch-Pruning's dependency tracing itself fails "
                               "on the model's forward (channel shuffle, window reshapes);",
               "no result": "*timeout*: Torch-Pruning's group search (`get_all_groups`) did not "
                            "finish in the limit (windowed attention), or ran out of memory;"}
        seen = [text for key, text in why.items() if any(key in x["error"] for x in fails)]
        if seen:
            out += ["Reasons: " + " ".join(seen), ""]
    out += ["Passing (units, MACs kept): " + ", ".join(
        f"{x['model']} ({x['units']}, {x['macs_kept']:.2f})" for x in passed) + ".", "",
        f"Command: `{r['command']}`  "]
    out += [f"Then, after fixes, the failed ones again ({', '.join(x['models'])}): "
            f"`{x['command']}` ({x['date']})  " for x in r.get("reruns", [])]
    out += [f"Machine: {_machine(r)}", ""]
    return out


def _reliability(results: dict[str, dict[str, Any]]) -> list[str]:
    r = results.get("reliability")
    if r is None:
        return []
    out = ["## Faults and bad input", "",
           "Counts of the fault tests and the bad-input table (they also run in `make test`).",
           "", "| group | passed | failed | skipped |", "|---|---|---|---|"]
    out += [f"| {name} | {g['passed']} | {g['failed']} | {g['skipped']} |"
            for name, g in r["groups"].items()]
    cases = r["bad_input_cases"]
    out += ["", f"Bad-input table ({len(cases)} cases, `tests/scripts/test_bad_input.py`): each "
            "exits with status 2, prints one stderr line matching the pattern, writes "
            "nothing.", "", "| case | command | the error line matches |", "|---|---|---|"]
    out += [f"| {c['case']} | {c['command']} | `{c['error_pattern'].replace('|', '/')}` |"
            for c in cases]
    out += ["", f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _compare_table(r: dict[str, Any]) -> list[str]:
    """A compare summary (bench.bench_compare.summary) as a table, the differences against the
    best mean, and the searched strategy's lead before fine-tuning."""
    c, o = r["config"], r["original"]
    out = [f"Every strategy completed through the same wall (budget kept: the target's cost, "
           "flagged if more than one rounding step under); the checkpoint's own validation split; "
           f"searched winners re-scored on held-out validation images; {c['finetune_epochs']} "
           f"fine-tune epoch(s) on {c.get('finetune_images') or 'all'} training images with "
           f"{c.get('finetune_seeds', 1)} seed(s) (mean ± std). "
           f"Unpruned test accuracy {_pct(r['base_test_acc'])}.", "",
           "| strategy | criterion | val acc (search images) | val acc (held-out) "
           "| test acc before FT | test acc after FT | per seed | MACs kept | budget kept "
           "| CPU speed-up b1 / b64 |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    ob1, ob64 = (o["latency"][b]["median_ms"] for b in ("b1", "b64"))
    for name, x in r["strategies"].items():
        after = "-" if x["test_acc"] is None else f"{100 * x['test_acc']:.2f}%" + (
            "" if x["test_acc_std"] is None else f" ± {100 * x['test_acc_std']:.2f}")
        per = ", ".join("div" if a is None else f"{100 * a:.2f}" for a in x["test_acc_seeds"])
        ok = "" if x["budget_ok"] else " **under**"
        lat = x["latency"]
        out.append(f"| {name} | {x.get('criterion') or '-'} "
                   f"| {_pct(x['val_acc_before_finetune'])} "
                   f"| {_pct(x['val_acc_heldout'])} | {_pct(x['test_acc_before_finetune'])} "
                   f"| {after} | {per} | {x['macs_kept']:.3f} | {x['cost_kept']:.3f}{ok} "
                   f"| {ob1 / lat['b1']['median_ms']:.2f}x / "
                   f"{ob64 / lat['b64']['median_ms']:.2f}x |")
    same = _same_policies(r["strategies"])
    if same:
        out += ["", "Identical policies (so identical rows up to fine-tune noise): "
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


def _compare(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, r in results.items():
        if not key.startswith("compare_"):
            continue
        c = r["config"]
        out += [f"## Policies compared with error bars ({key.removeprefix('compare_')})", "",
                f"`amc-compare` at {c['target']} {c['budget']}, criterion {c['criterion']}, "
                f"{c['episodes']} episodes per search, on `{r['checkpoint']}` (trained "
                f"{r['base_epochs']} epochs).", "", *_compare_table(r),
                f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _seeds(results: dict[str, dict[str, Any]]) -> list[str]:
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
                             f"{_pct(x['test_acc_before_finetune'])} / {_pct(x['test_acc'])}")
            out.append(f"| {name} | " + " | ".join(cells) + f" | {_pct(m['test_acc'])} |")
        out += ["", f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
        out += [f"Run (seed {run['seed']}, on {run['device']}): `{run['command']}`  "
                for run in r["runs"]]
        out.append("")
    return out


def render() -> str:
    """The whole BENCHMARKS.md text."""
    results = _load()
    lines = ["# Benchmarks", "",
             "Generated by `python -m bench.report` from `bench/results/*.json`; every figure "
             "comes with the command that produced it and the machine it ran on. Timings on "
             "shared machines are noisy: compare ratios measured in the same run.", ""]
    for section in (_training, _env, _criteria, _search, _compare, _policies, _seeds, _latency,
                    _latency_target,
                    _correlation, _sweep, _reliability, _demo):
        lines += section(results)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Write BENCHMARKS.md."""
    atomic.write_text(ROOT / "BENCHMARKS.md", render())
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
