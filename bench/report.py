"""Regenerate ``BENCHMARKS.md`` from ``bench/results/*.json`` (figures are never typed by hand).

    python -m bench.report
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from amc_agent.agents import AGENTS
from amc_agent.cli import train
from amc_agent.env import atomic
from amc_agent.policies.compare import speedup
from amc_agent.policies.report import before_finetune_lead
from amc_agent.policies.stats import difference, mean_std
from bench.common import RESULTS, display_program
from bench.report_transfer import transfer

ROOT = Path(__file__).resolve().parent.parent


def _load() -> dict[str, dict[str, Any]]:
    results = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    for r in results.values():
        prog, _, rest = r["command"].partition(" ")
        r["command"] = f"{display_program(prog)} {rest}"
    return results


def _workers(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, r in results.items():
        if not key.startswith("workers_"):
            continue
        out += [f"## Parallel workers (`amc-search --workers N`; {r['model']}, {r['agent']}, "
                f"{r['episodes']} episodes, budget {r['budget']})", "",
                "Every variant runs the same command on the same checkpoint and seed; the "
                f"learner has {r['threads']} torch threads and N workers share them "
                "(1 thread each here). Episodes per minute over the episodes' own time (a batch's "
                "wall time shared among its episodes; workers' start-up and the final re-scoring "
                "apart); *whole command*: wall time of the command including both. *Same "
                "episodes*: every episode's keep ratios equal the 1-worker run's (expected for "
                "an agent that does not learn from rewards; a learning agent's batches change "
                "what it tries).", "",
                "| seed | workers | backend | episodes / min | speed-up vs 1 worker | whole "
                "command s | same episodes | search val acc | held-out val acc | cache hits |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["runs"]:
            same = {True: "yes", False: "no", None: "-"}[x["same_episodes_as_one_worker"]]
            held = f"{100 * x['heldout_val_accuracy']:.2f}%" \
                if x.get("heldout_val_accuracy") is not None else "-"
            out.append(f"| {x['seed']} | {x['workers']} | {x['backend']} | "
                       f"{x['episodes_per_min']:.1f} | {x['speedup']:.2f}x | {x['wall_s']:.0f} | "
                       f"{same} | {100 * x['val_accuracy']:.2f}% | {held} | "
                       f"{x['cache_hits']} |")
        by: dict[tuple[int, str], list[float]] = {}
        for x in r["runs"]:
            if x.get("heldout_val_accuracy") is not None:
                by.setdefault((x["workers"], x["backend"]), []).append(
                    x["heldout_val_accuracy"])
        if len(by) > 1 and all(len(v) > 1 for v in by.values()):
            out += ["", "Held-out validation accuracy of the declared winner over seeds: " +
                    "; ".join(f"{n} {b} worker(s) {_mean_std(v)}" for (n, b), v in by.items()) +
                    "."]
        if r.get("note"):
            out += ["", f"Note: {r['note']}"]
        out += ["", f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _scale(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("scale_")]
    if not rows:
        return []
    r0 = rows[0]
    out = ["## Numbers for the big case: ResNet-50 at ImageNet size", "",
           "Measured per image on each device (torchvision ResNet-50, 1000 classes, 224x224): "
           "the scoring pass as episodes run it (BN folded, channels-last), the BN-recalibration "
           "pass, one fine-tune step; and one episode's surgery and channel selection (group-l2, "
           "a random policy) from the environment's timings. Projected: a search of "
           f"{r0['episodes']} episodes (AMC used 400-800), each recalibrating BN on "
           f"{r0['recalib_images']} images and scoring {r0['reward_images']} held-out images "
           "(AMC's ImageNet reward set), the pruned model costing what the full one does (an "
           "upper bound), workers scaling linearly (each holds one device; a synchronous batch "
           "waits for its slowest episode, and the learner's walk and update per batch take "
           "milliseconds). Fine-tuning the winner is extra.", "",
           "| device | batch | units | score ms / image | recalibrate ms / image | fine-tune "
           "ms / image | surgery + selection s | episode s | " +
           " | ".join(f"search h, {p['workers']} worker(s)" for p in r0["projection"]) + " |",
           "|---|---|---|---|---|---|---|---|" + "---|" * len(r0["projection"])]
    for r in rows:
        out.append(f"| {r['device_name']} | {r['batch']} | {r['units']} | "
                   f"{r['eval_ms_per_image']:.2f} | {r['recal_ms_per_image']:.2f} | "
                   f"{r['train_ms_per_image']:.2f} | {r['prune_s']:.2f} | "
                   f"{r['episode_s']:.1f} | " +
                   " | ".join(f"{p['search_hours']:.2f}" for p in r["projection"]) + " |")
    out.append("")
    for r in rows:
        out += [f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    if not any(r["device"].startswith("cuda") for r in rows):
        out += ["GPU rows: not yet measured (`bash bench/device_session.sh scale` on a GPU "
                "machine).", ""]
    return out


def _timed_on(r: dict[str, Any]) -> str:
    """The device a latency row was measured on: the GPU's name, or the CPU thread count."""
    gpu = r["machine"].get("gpu")
    if gpu and r.get("device_name") == gpu:
        return gpu
    return f"CPU ({r['machine']['torch_threads']} threads)"


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
           "| checkpoint | model | dataset | epochs | s/epoch | test acc | MACs | params "
           "| CPU latency b1 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r["latency"]
        flags, _ = train.build_parser().parse_known_args(r["command"].split()[1:])
        out.append(f"| `{r['checkpoint']}` | {flags.model} | {flags.dataset} | {r['epochs']} "
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
                "with it.", ""]
        if "levers" in r:
            out += _levers(r)
        out += [f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    out += _search_speed(results)
    return out


def _levers(r: dict[str, Any]) -> list[str]:
    out = [f"Speed levers on the same {r['episodes']} random policies, interleaved episode by "
           f"episode ({r['model']}, round-to {r['round_to']}, {r['threads']} threads; the cache "
           "only acts on repeated policies, so it is measured by the whole search below):", "",
           "| variant | episode s | recalibration s | evaluation s | recount s "
           "| speed-up vs plain | episodes / min |", "|---|---|---|---|---|---|---|"]
    for name, v in r["levers"].items():
        p = v["median_parts_s"]
        out.append(f"| {name} | {v['median_episode_s']:.2f} | {p['recalibration']:.3f} "
                   f"| {p['evaluation']:.3f} | {p.get('recount', 0):.3f} "
                   f"| {v['speedup_vs_plain']:.2f}x | {v['episodes_per_minute']:.1f} |")
    out += ["", f"Largest validation-accuracy difference between the variants on the same "
            f"policies: {100 * r['max_accuracy_diff_plain_vs_fast']:.2f} points.", ""]
    return out


def _search_speed(results: dict[str, dict[str, Any]]) -> list[str]:
    fast = {k.removesuffix("_levers"): r for k, r in results.items()
            if k.startswith("search_") and k.endswith("_levers")}
    out = []
    for stem, a in fast.items():
        b = results.get(stem + "_plain")
        if b is None:
            continue
        same = a["keep_ratios"] == b["keep_ratios"] and a["best_episode"] == b["best_episode"]
        out += [f"Whole search, {a['agent']} seed {a['seed']}, {a['episodes']} episodes "
                f"({a['model']}, round-to {a['round_to']}, {a['threads']} threads, "
                f"{a['eval_size']} validation images): **{a['seconds'] / 60:.1f} min with the "
                f"levers** ({a['episodes_served_from_cache']} episodes served from the cache) vs "
                f"{b['seconds'] / 60:.1f} min without ({b['seconds'] / a['seconds']:.2f}x); "
                f"same best policy: {'yes' if same else 'NO'} (episode {a['best_episode']} vs "
                f"{b['best_episode']}, search val acc {100 * a['best_val_acc']:.1f} vs "
                f"{100 * b['best_val_acc']:.1f}).", "",
                f"Commands: `{a['command']}`; `{b['command']}`  ", f"Machine: {_machine(a)}", ""]
    return out


def _strategy_label(r: dict[str, Any]) -> str:
    """A search result's strategy: agent, its settings, seeds and switched-off levers."""
    label = r["agent"]
    if r.get("agent_kwargs"):
        label += " " + ", ".join(f"{k}={v}" for k, v in r["agent_kwargs"].items())
    if r.get("seed_policies"):
        label += f" seeded ({'+'.join(r['seed_policies'])})"
    if r.get("fast_scoring") is False or r.get("cache") is False:
        label += " [plain scoring, no cache]"
    if r.get("channels_chosen_by") and r["channels_chosen_by"] != r["criterion"]:
        label += f" (channels by {r['channels_chosen_by']}, as Torch-Pruning chooses them)"
    return label


def _mean_std(values: list[float]) -> str:
    mean = f"{100 * statistics.mean(values):.2f}"
    return f"{mean} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else mean


def _search(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("search_")]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["checkpoint"], r["criterion"], r["budget"], r["round_to"], r["eval_size"],
                r["threads"])].append(r)
    out: list[str] = []
    for (ckpt, crit, budget, round_to, eval_size, threads), rs in groups.items():
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            by[_strategy_label(r)].append(r)
        first = rs[0]
        out += [f"## Search quality ({first['model']} `{ckpt}`, {first['dataset']}, "
                f"{100 * budget:.0f}% MACs, criterion {crit}, round-to {round_to}, "
                f"{eval_size} validation images, {threads} threads, before fine-tuning)", "",
                "Search val acc: the declared winner as the search scored it (selected on those "
                "images, so biased upwards); held-out: the same policy on validation images no "
                "episode scored (after re-scoring the top 5 distinct policies there; heuristics: "
                "their one policy). Mean ± std over seeds. Search time is wall time on a shared "
                "machine, including any slow-down by other jobs; the speed claims are in the "
                "throughput section.", "",
                "| strategy | seeds | episodes | search val acc | held-out val acc | per seed "
                "(held-out) | MACs kept | winner found at | search time (min) | cache hits |",
                "|---|---|---|---|---|---|---|---|---|---|"]

        def key(kv: tuple[str, list[dict[str, Any]]]) -> float:
            return -statistics.mean(r.get("rescored_val_acc") or r["best_val_acc"]
                                    for r in kv[1])

        for label, g in sorted(by.items(), key=key):
            held = [r["rescored_val_acc"] for r in g if r.get("rescored_val_acc") is not None]
            found = ", ".join(
                f"{r['best_episode']}" + (f" ({r['best_seed_policy']})"
                                          if r.get("best_seed_policy") else "")
                for r in g if "best_episode" in r) or "-"
            hits = [r.get("episodes_served_from_cache") for r in g]
            out.append(
                f"| {label} | {len(g)} | {g[0]['episodes']} "
                f"| {_mean_std([r['best_val_acc'] for r in g])} "
                f"| {_mean_std(held) if held else '-'} "
                f"| {', '.join(f'{100 * a:.2f}' for a in held) or '-'} "
                f"| {statistics.mean(r['best_macs_ratio'] for r in g):.3f} | {found} "
                f"| {statistics.mean(r['seconds'] for r in g) / 60:.1f} "
                f"| {', '.join(str(h) for h in hits) if any(hits) else '-'} |")
        out += ["", *_search_findings(by), "", "Commands:"]
        out += [f"- `{r['command']}`" for r in rs]
        out += ["", f"Machine: {_machine(first)}", ""]
    return out


def _search_findings(by: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Each searched strategy (two or more seeds) against every other row on held-out accuracy:
    ahead/behind only beyond two standard errors of the difference (amc_agent.policies.stats)
    *and* beyond one binomial standard error of a held-out accuracy (every row is scored on the
    same images, whose own sampling error the seed spread does not see); a heuristic is one
    deterministic policy, so only the search's own spread counts."""
    held = {k: [r["rescored_val_acc"] for r in g if r.get("rescored_val_acc") is not None]
            for k, g in by.items()}
    images = [r["rescore_images"] for g in by.values() for r in g if r.get("rescore_images")]
    accs = [a for v in held.values() for a in v]
    if not images or not accs:
        return []
    p = statistics.mean(accs)
    split_se = (p * (1 - p) / min(images)) ** 0.5
    out = []
    for a, va in held.items():
        if len(va) < 2:
            continue
        ahead, tied, behind = [], [], []
        for b, vb in held.items():
            if b == a or not vb or (len(vb) < 2 and "episodes_served_from_cache" in by[b][0]):
                continue  # a search with one seed: no spread to judge
            d = difference(va, vb if len(vb) > 1 else vb * 2)  # heuristic: no spread of its own
            text = f"{b} ({100 * d['delta']:+.2f}, 2 SE {100 * (d['two_se'] or 0):.2f})"
            counts = d["exceeds_spread"] and abs(d["delta"]) > split_se
            (tied if not counts else ahead if d["delta"] > 0 else behind).append(text)
        out.append(f"- {a} ({len(va)} seeds), held-out: ahead of {', '.join(ahead) or 'none'}; "
                   f"within the noise of {', '.join(tied) or 'none'}; behind "
                   f"{', '.join(behind) or 'none'}.")
    if out:
        out.insert(0, "Differences in points (held-out), counted only beyond two standard errors "
                      "over the search seeds and beyond the held-out images' own binomial "
                      f"standard error ({100 * split_se:.2f} points on {min(images)} images at "
                      f"{100 * p:.0f}%):")
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
        if r.get("updates"):
            out += ["", f"Command: `{r['first_command']}` ({r['first_date']}); rows rerun or "
                    "added later (same settings; their episode times measured then, possibly "
                    "beside other jobs):"]
            out += [f"- {', '.join(u['criteria'])}: `{u['command']}` ({u['date']})"
                    for u in r["updates"]]
            first = {"machine": r["first_machine"], "date": r["first_date"]}
            out += ["", f"Machine: {_machine(first)} (first run; the updates ran on the same "
                    "machine at their own --threads)", ""]
        else:
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
            if k.startswith("latency_")
            and not k.startswith(("latency_target_", "latency_predictor_"))]
    if not rows:
        return []
    out = ["## Measured speed-up vs MACs reduction", "",
           "Uniformly pruned copies at several MACs budgets and the learned policy, measured "
           "round-robin in one run (median of per-round medians).", "",
           "| device | backend | model | MACs kept | MACs speed-up | latency b1 (ms) "
           "| speed-up b1 | latency b64 (ms) | speed-up b64 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = r.get("device_name") or f"CPU ({r['machine']['torch_threads']} threads)"
        out += [f"| {dev} | {r.get('backend', 'eager')} | {x['model']} | {x['macs_kept']:.3f} "
                f"| {x['macs_speedup']:.2f}x "
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


def _latency_predictor(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("latency_predictor_")]
    if not rows:
        return []
    out = ["## Latency predictors vs measurement", "",
           "Random policies at a MACs budget; each pruned model's measured latency ratio to the "
           "original (measured round-robin with it) against the ratio each predictor gives: the "
           "per-layer latency table (the default) and the line a + b x MACs. Absolute relative "
           "error of the ratio.", "",
           "*Repeat* is a second, independent measurement of the same pair against the first: "
           "the noise floor of the measurement itself. *Table scale*: the factor on the sum of "
           "layer entries fitted on whole uniformly pruned networks (rows without one predate "
           "that calibration: the raw sum).", "",
           "| device | model | backend | batch | policies | table median (p90) "
           "| line median (p90) | repeat median (p90) | table scale | table build s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, ln = r["errors"]["table"], r["errors"]["line"]
        rep = r["errors"].get("repeat")
        repeat = "-" if rep is None else (f"{100 * rep['median_abs_error']:.1f}% "
                                          f"({100 * rep['p90_abs_error']:.1f}%)")
        scale = f"{r['table_scale']:.3f}" if "table_scale" in r else "uncalibrated"
        out.append(f"| {_timed_on(r)} | {r['benchmark'].split('_')[2]} | {r['backend']} "
                   f"| {r['batch']} "
                   f"| {len(r['policies'])} | {100 * t['median_abs_error']:.1f}% "
                   f"({100 * t['p90_abs_error']:.1f}%) | {100 * ln['median_abs_error']:.1f}% "
                   f"({100 * ln['p90_abs_error']:.1f}%) | {repeat} | {scale} "
                   f"| {r['table_build_s']:.0f} |")
    out.append("")
    for r in rows:
        out += [f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _latency_target(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("latency_target_")]
    if not rows:
        return []
    out = ["## Latency-target search (`amc-search --target latency`)", "",
           "The action wall works from a predicted latency (predictor `line`: a + b x MACs "
           "fitted on uniformly pruned copies; `table`: per-layer latency tables); every "
           "episode's model is also measured, and an episode only counts if the measurement "
           "meets the budget. The best model is then measured again against the original, "
           "round-robin.", "",
           "The wall margin is the quantile of measured / predicted latency over recent "
           "episodes that the wall aims below the budget by (`--latency-margin`; off: the wall "
           "trusts the predictor).", "",
           "| device | model | predictor (backend) | wall margin | batch | budget | episodes "
           "| best val acc | MACs kept | search-time ms "
           "(predicted) | re-measured ratio | meets budget | predictor median abs error "
           "| episodes over budget |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, m, pr = r["best"], r["remeasured"], r["predictor"]
        out.append(f"| {_timed_on(r)} | {r['model']} | {r.get('predictor_kind', 'line')} "
                   f"({r.get('backend', 'eager')}) | {r.get('latency_margin') or 'off'} "
                   f"| {r['latency_batch']} | {r['budget']:.2f} "
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


def _equal_latency(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [r for k, r in results.items() if k.startswith("equal_latency_")]
    if not rows:
        return []
    out = ["## Equal measured latency: latency-target search vs FLOPs-target search vs uniform",
           "", "A latency-target search (`--target latency`), a FLOPs-target search at the "
           "latency winner's MACs, and uniform pruning, each cut to the same *measured* "
           "latency: the largest common scale of its keep ratios whose model meets the budget "
           "in every round-robin round against the original (amc_agent.policies.equal_latency), "
           "then fine-tuned alike. A difference counts only beyond two standard errors over "
           "fine-tune seeds.", "",
           "Latency falls in steps with channel counts: *next step* is what the smallest "
           "probed scale above the cut measured, so a row far under the budget could not get "
           "nearer to it with this policy's shape.", "",
           "| device | model | backend | batch | latency budget | strategy | scale "
           "| measured latency ratio | next step | MACs kept | test acc before FT "
           "| test acc after FT | vs best |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for name, x in r["strategies"].items():
            above = [q for q in x["probes"] if q["scale"] > x["scale"]]
            step = f"{min(above, key=lambda q: q['scale'])['worst']:.3f}" if above else "-"
            d = r["differences"].get(name)
            verdict = "best" if d is None else (
                f"{100 * d['delta']:+.2f} ({'beyond' if d['exceeds_spread'] else 'within'} "
                f"spread {100 * d['two_se']:.2f})" if d["two_se"] is not None
                else f"{100 * d['delta']:+.2f}")
            out.append(f"| {_timed_on(r)} | {r['model']} | {r['backend']} | {r['batch']} "
                       f"| {r['budget']:.2f} | {name} | {x['scale']:.3f} "
                       f"| {x['latency_ratio']:.3f}{'' if x['met'] else ' (not met)'} "
                       f"| {step} | {x['macs_kept']:.3f} | {_pct(x['test_acc_before_finetune'])} "
                       f"| {_pct(x['test_acc'])} ± {100 * (x['test_acc_std'] or 0):.2f} "
                       f"| {verdict} |")
    out.append("")
    for r in rows:
        ft, ls = r["finetune"], r["latency_search"]
        out += [f"Fine-tune: {ft['epochs']} epoch(s) on {ft['images']} images, lr {ft['lr']}, "
                f"seeds {ft['seeds']}. Latency search: {r['episodes']} episodes, "
                f"{100 * ls['predictor']['share_over_budget']:.0f}% of them measured over the "
                f"budget, predictor median error "
                f"{100 * ls['predictor']['median_abs_error']:.1f}%; FLOPs search at "
                f"{r['flops_budget']:.2f} of MACs.  ",
                f"Command: `{r['command']}`  ", f"Searches: `{r['search_commands']['latency']}`; "
                f"`{r['search_commands']['flops']}`  ", f"Machine: {_machine(r)}", ""]
    return out


CORRELATION_SIGNALS = (("plain", "val acc, no BN recalibration"),
                       ("recalibrated", "val acc (the search's score)"),
                       ("heldout", "held-out val acc"),
                       ("short_finetune", "held-out val acc after the short fine-tune"))


def _correlation(results: dict[str, dict[str, Any]]) -> list[str]:
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
        out += ["", f"Ranges: search val acc {_pct(min(recal))}-{_pct(max(recal))}, test acc "
                f"after fine-tune {_pct(min(accs))}-{_pct(max(accs))}.", "",
                f"Command: `{r['command']}`  ", f"Machine: {_machine(r)}", ""]
    return out


def _thin(lat: dict[str, Any]) -> str:
    """A dagger for a latency measured from fewer than 5 calls."""
    return " †" if lat.get("runs", 5) < 5 else ""


def _sweep(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, title, what in (("sweep", "Any-model sweep", "every torchvision classifier and the "
                              "zoo"),
                             ("sweep_timm", "Any-model sweep: timm", "a sample of timm image "
                              "classifiers across its CNN and hybrid families")):
        if key in results:
            out += _sweep_one(results[key], title, what)
    return out


def _sweep_one(r: dict[str, Any], title: str, what: str) -> list[str]:
    rows = r["models"]
    first = r.get("first_run", r)
    passed = [x for x in rows if x["status"] == "pass"]
    out = [f"## {title}", "",
           f"**{r['passed']} of {r['total']} models pass** ({what}; random weights, 10 "
           "classes, a seeded random policy at "
           f"{100 * r['budget']:.0f}% MACs, round-to {r['round_to']}). Stages: build, env "
           "(units from the dependency graph), episode, forward (finite (2, 10) output), MACs "
           "(predicted == recounted, within budget), export (weights_only checkpoint rebuilt "
           "from recipe + pruning record, outputs bit-identical). Wall time "
           f"{r.get('wall_s_first_run', r['wall_s']):.0f} s with {first['workers']} worker(s) "
           f"x {first['threads_per_model']} "
           f"thread(s); each model in its own process with a "
           f"{first.get('timeout_s', 300):.0f} s limit and {first.get('memory_gib', 12):.0f} GiB "
           "of address space (first run; reruns below).", ""]
    fails = [x for x in rows if x["status"] != "pass"]
    if fails:
        out += ["| failing model | input | stage | error |", "|---|---|---|---|"]
        out += [f"| {x['model']} | {'x'.join(map(str, x.get('input', [])))} | {x['stage']} "
                f"| {x['error'].replace('|', '/')} |" for x in fails]
        out.append("")
        why = {"infeasible": "*infeasible*: what can be cut cannot reach the budget with keep "
                             "ratios >= lbound;",
               "cannot trace": "*cannot trace*: Torch-Pruning's dependency tracing itself fails "
                               "on the model's forward;",
               "predicted": "*cost model*: the wall's predicted MACs differ from the recount of "
                            "the pruned model (operations the cost model does not scale with "
                            "channels: sliced concatenations, split attention, attention "
                            "matmuls); reported MACs are always the recount;",
               "no result": "*timeout*: Torch-Pruning's group search (`get_all_groups`) did not "
                            "finish in the limit (windowed attention), or ran out of memory;"}
        seen = [text for key, text in why.items() if any(key in x["error"] for x in fails)]
        if seen:
            out += ["Reasons: " + " ".join(seen), ""]
    out += ["Passing (units, MACs kept): " + ", ".join(
        f"{x['model']} ({x['units']}, {x['macs_kept']:.2f})" for x in passed) + ".", ""]
    timed = sorted((x["env_s"], x["model"]) for x in rows if "env_s" in x)
    if timed:
        mid = timed[len(timed) // 2][0]
        out += [f"Unit discovery (the env stage, uncached) took a median {mid:.1f} s, at most "
                f"{timed[-1][0]:.1f} s ({timed[-1][1]}), over the {len(timed)} models that "
                "reached it.", ""]
    partial = [x for x in passed if x.get("left_unpruned")]
    if partial:
        out += ["Passing with channel groups left unpruned (count by kind: *opaque op*: reaches "
                "an operation Torch-Pruning cannot map, a channel shuffle, attention-head "
                "reshape or concatenation of unknown widths; *breaks forward*: the model's code "
                "fixes the width; *grouped conv*: one channel per convolution group; "
                "*irregular tie*): " + ", ".join(
                    f"{x['model']} (" + ", ".join(f"{n} {k}" for k, n in
                                                  sorted(x["left_unpruned"].items())) + ")"
                    for x in partial) + ".", ""]
    grouped = [x for x in passed if x.get("grouped_units")]
    if grouped:
        out += ["Grouped convolutions, cut group-balanced (units touching them, and how many the "
                "random policy cut): " + ", ".join(
                    f"{x['model']} ({x['grouped_units_cut']} of {x['grouped_units']})"
                    for x in grouped) + ".", ""]
    out += [f"Command: `{r['command']}`  "]
    out += [f"Then, after fixes, these again ({', '.join(x['models'])}): "
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
           f"Unpruned test accuracy {_pct(r['base_test_acc'])}. CPU speed-up: the median over "
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
                   f"| {_pct(x['val_acc_before_finetune'])} "
                   f"| {_pct(x['val_acc_heldout'])} | {_pct(x['test_acc_before_finetune'])} "
                   f"| {after} | {per} | {x['macs_kept']:.3f} | {x['cost_kept']:.3f}{ok} "
                   f"| {speedup(o['latency']['b1'], lat['b1']):.2f}x{_thin(lat['b1'])} / "
                   f"{speedup(o['latency']['b64'], lat['b64']):.2f}x{_thin(lat['b64'])} |")
    if any(_thin(x["latency"][b]) for x in r["strategies"].values() for b in ("b1", "b64")):
        out += ["", "† a latency resting on fewer than 5 timed calls (one slow call filled the "
                "time budget): not a measurement; latencies now always time at least 5 calls."]
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


def _pool(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One strategy's rows from compare runs at several search seeds, pooled: every fine-tune
    seed of every search seed is one sample of what a user gets after fine-tuning. A strategy
    that does not depend on the search seed (a heuristic) may have run at one seed only."""
    after = [a for x in rows for a in x["test_acc_seeds"] if a is not None]
    before = [x["test_acc_before_finetune"] for x in rows]
    mean, std = mean_std(after) if after else (None, None)
    per_seed = [x["test_acc"] for x in rows if x["test_acc"] is not None]
    # Runs of one search share its policy: with several search seeds, each seed's mean is one
    # independent sample (pooling the runs as independent would understate the spread).
    return {"test_acc_before_finetune": statistics.fmean(before), "test_acc": mean,
            "test_acc_std": std, "samples": per_seed if len(per_seed) > 1 else after,
            "per_search_seed": per_seed}


NO_FT_RESCORE = " (no FT re-score)"


def _finetune_images(run: dict[str, Any], name: str) -> int:
    """Training images of the short fine-tune that chose a searched strategy's winner. Rows
    record it since it became the default; earlier runs show it only as a flag (off by default
    then)."""
    images = run["strategies"][name].get("rescore_finetune_images")
    if images is not None:
        return int(images)
    flag = re.search(r"--rescore-finetune[ =](\d+)", run.get("compare_command", ""))
    return int(flag.group(1)) if flag else 0


def _label(run: dict[str, Any], name: str) -> str:
    """A ladder row's name: a searched strategy whose winner was chosen without the short
    fine-tune (amc_agent.agents.rescore) is another row than the default selection."""
    return name + NO_FT_RESCORE if name in AGENTS and not _finetune_images(run, name) else name


def _rows_by_label(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Strategy rows of compare runs at one budget, by ladder row name; one row per search
    seed (a re-run of the same seed and selection is not a new sample)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for run in runs:
        for name, row in run["strategies"].items():
            label, seed = _label(run, name), run["config"].get("seed", 0)
            if (label, seed) not in seen:
                seen.add((label, seed))
                out[label].append(row | {"search_seed": seed})
    return out


def _ladder(results: dict[str, dict[str, Any]]) -> list[str]:
    """Compare results of one checkpoint and criterion at two or more budgets: a table of test
    accuracy before and after fine-tuning per strategy and budget (pooled over search seeds where
    a budget ran with several), the verdicts against Torch-Pruning's strategies, and a plot."""
    groups: dict[tuple[str, str, str], dict[float, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    variants: dict[tuple[str, str, str], dict[tuple[str, float], list[dict[str, Any]]]] = \
        defaultdict(lambda: defaultdict(list))
    for k, r in results.items():
        if k.startswith("compare_") and r.get("config", {}).get("target") == "flops":
            key = (r["checkpoint"], str(r["config"]["criterion"]),
                   str(r["config"].get("finetune_images")))
            if r.get("variant"):
                variants[key][(r["variant"], r["config"]["budget"])].append(r)
            else:
                groups[key][r["config"]["budget"]].append(r)
    out: list[str] = []
    for (ckpt, crit, ft_images), by_budget in groups.items():
        if len(by_budget) < 2:
            continue
        budgets = sorted(by_budget, reverse=True)
        model = Path(ckpt).stem
        rows = {b: _rows_by_label(by_budget[b]) for b in budgets}
        names = [n for n in rows[budgets[0]] if all(n in rows[b] for b in budgets)]
        rungs = {b: {n: _pool(rows[b][n]) for n in names} for b in budgets}
        seeds = {b: sorted({r["config"].get("seed", 0) for r in by_budget[b]}) for b in budgets}
        out += [f"## Difficulty ladder (`{ckpt}`, criterion {crit}, MACs budgets "
                f"{', '.join(f'{100 * b:.0f}%' for b in budgets)})", "",
                "Test accuracy before fine-tuning / after (mean ± std over every fine-tune run; "
                f"{ft_images} fine-tune images). Search seeds per budget: "
                + ", ".join(f"{100 * b:.0f}%: {', '.join(map(str, seeds[b]))}" for b in budgets)
                + " (several: before-FT is their mean, after-FT pools every fine-tune seed of "
                "every search seed, so the spread includes the search's own). **Bold**: best "
                "mean after fine-tuning at that budget. A searched strategy picks its winner "
                "among its top policies by their held-out accuracy after a short fine-tune "
                "(`--rescore-finetune`, the default); rows marked"
                f" *{NO_FT_RESCORE.strip()}* are the same kind of search judged on held-out "
                "accuracy right after pruning (runs from before that default).", "",
                "| strategy | " + " | ".join(f"{100 * b:.0f}% MACs" for b in budgets) + " |",
                "|---|" + "---|" * len(budgets)]
        best = {b: max(names, key=lambda n, b=b: rungs[b][n]["test_acc"] or 0) for b in budgets}
        for n in names:
            cells = []
            for b in budgets:
                x = rungs[b][n]
                after = f"{100 * x['test_acc']:.2f} ± {100 * (x['test_acc_std'] or 0):.2f}"
                after = f"**{after}**" if best[b] == n else after
                runs = len(x["per_search_seed"])
                cells.append(f"{_pct(x['test_acc_before_finetune'])} / {after}"
                             + (f" ({runs} search seeds)" if runs > 1 else ""))
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out += ["", *_ladder_verdicts(budgets, names, rungs), *_same_policies_lines(budgets, rows),
                *_variant_verdicts(variants[(ckpt, crit, ft_images)], rungs)]
        plot = _ladder_plot(model, crit, budgets, names, rungs)
        out += ["", f"![accuracy vs budget]({plot.relative_to(ROOT)})", ""]
    return out


def _same_policies_lines(budgets: list[float],
                         rows: dict[float, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """Rows of one budget that kept the same channels at every search seed they share: their
    equal figures are one network measured twice, not two strategies that tie (e.g. a search
    whose winner is a warm-up episode drawn by the same random stream as random search)."""
    out = []
    for b in budgets:
        by_seed = {n: {r["search_seed"]: r.get("keep_ratios") for r in rs}
                   for n, rs in rows[b].items()}
        names = sorted(by_seed)
        for i, n in enumerate(names):
            for m in names[i + 1:]:
                shared = set(by_seed[n]) & set(by_seed[m])
                if shared and all(by_seed[n][k] is not None and by_seed[n][k] == by_seed[m][k]
                                  for k in shared):
                    out.append(f"- {100 * b:.0f}% MACs: {n} and {m} chose the same policy "
                               f"(search seed {', '.join(map(str, sorted(shared)))}): one "
                               "network measured twice, not a tie between strategies.")
    return ["", *out] if out else []


LEARNED = ("amc-ddpg", "amc-ppo")
PEERS = ("tp-uniform", "tp-global")


def _ladder_verdicts(budgets: list[float], names: list[str],
                     rungs: dict[float, dict[str, dict[str, Any]]]) -> list[str]:
    """Per budget: the learned policy against every other strategy after fine-tuning, as
    ahead / tied / behind beyond two standard errors of the pooled runs
    (amc_agent.policies.stats)."""
    out = ["The learned policy after fine-tuning, per budget, against every other strategy "
           "(ahead or behind only beyond two standard errors; else tied; a strategy searched at "
           "several seeds counts each search seed's mean as one sample, one searched once each "
           "fine-tune run). "
           "The test split's own sampling error is shared by every row and not in these error "
           "bars (see each budget's compare table): a lead of a few tenths is reproducible on "
           "this split, not proof that it generalises.", ""]
    for b in budgets:
        for learned in (n for n in names if n.removesuffix(NO_FT_RESCORE) in LEARNED):
            out.append(f"- {100 * b:.0f}% MACs, {learned}: "
                       + _verdict(rungs[b][learned]["samples"], rungs[b], learned) + ".")
    return out


def _verdict(samples: list[float], rung: dict[str, dict[str, Any]], skip: str = "") -> str:
    """``samples`` against every strategy of one rung: ahead of / tied with / behind."""
    verdicts: dict[str, list[str]] = {"ahead of": [], "tied with": [], "behind": []}
    for other, x in rung.items():
        if other == skip:
            continue
        d = difference(samples, x["samples"])
        key = "tied with" if not d["exceeds_spread"] else (
            "ahead of" if d["delta"] > 0 else "behind")
        peer = ", Torch-Pruning's" if other in PEERS else ""
        verdicts[key].append(f"{other} ({100 * d['delta']:+.2f}{peer})")
    return "; ".join(f"{k} {', '.join(v)}" for k, v in verdicts.items() if v)


def _variant_verdicts(variants: dict[tuple[str, float], list[dict[str, Any]]],
                      rungs: dict[float, dict[str, dict[str, Any]]]) -> list[str]:
    """Compare runs with extra search flags (``bench_compare --variant``) at a ladder budget,
    pooled over their search seeds, against the ladder's strategies at that budget."""
    out = []
    for (variant, b), runs in sorted(variants.items()):
        if b not in rungs:
            continue
        for name, rows in _rows_by_label(runs).items():
            x = _pool(rows)
            out.append(f"- {100 * b:.0f}% MACs, {name} ({variant}; "
                       f"{len(x['per_search_seed'])} search seed(s), "
                       f"{_pct(x['test_acc_before_finetune'])} / {100 * x['test_acc']:.2f} ± "
                       f"{100 * (x['test_acc_std'] or 0):.2f}): "
                       + _verdict(x["samples"], rungs[b]) + ".")
    if not out:
        return []
    return ["", "Variants (the same search with extra flags, e.g. `ftrescore`: "
            "`--rescore-finetune`; their compare tables give the flags) against the ladder's "
            "strategies:", "", *out]


def _ladder_plot(model: str, crit: str, budgets: list[float], names: list[str],
                 rungs: dict[float, dict[str, Any]]) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for i, n in enumerate(names):
        rows = [rungs[b][n] for b in budgets]
        x = [100 * b for b in budgets]
        style = {"marker": "os^vD<>p*"[i % 9], "label": n}
        axes[0].plot(x, [100 * r["test_acc_before_finetune"] for r in rows], **style)
        axes[1].errorbar(x, [100 * r["test_acc"] for r in rows],
                         yerr=[100 * (r["test_acc_std"] or 0) for r in rows], capsize=3, **style)
    for ax, title in zip(axes, ("before fine-tuning", "after fine-tuning (mean ± std)"),
                         strict=True):
        ax.set_xlabel("MACs kept (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{model}, {crit}: {title}")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    path = ROOT / "bench" / "plots" / f"ladder_{model}_{crit}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _transfer(results: dict[str, dict[str, Any]]) -> list[str]:
    return transfer(results, lambda r: [f"Machine: {_machine(r)}"])


def render() -> str:
    """The whole BENCHMARKS.md text."""
    results = _load()
    lines = ["# Benchmarks", "",
             "Generated by `python -m bench.report` from `bench/results/*.json`; every figure "
             "comes with the command that produced it and the machine it ran on. Timings on "
             "shared machines are noisy: compare ratios measured in the same run.", ""]
    for section in (_training, _env, _workers, _scale, _criteria, _search, _compare, _ladder,
                    _transfer, _policies, _seeds,
                    _latency, _latency_predictor,
                    _latency_target, _equal_latency,
                    _correlation, _sweep, _reliability, _demo):
        lines += section(results)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Write BENCHMARKS.md."""
    atomic.write_text(ROOT / "BENCHMARKS.md", render())
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
