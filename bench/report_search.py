"""BENCHMARKS.md sections on searching: training, environment throughput and speed levers, parallel
workers, the big-case projection, channel criteria and search quality."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from amc_agent.cli import train
from amc_agent.policies.stats import difference
from bench.report_common import fmt_mean_std, machine_line, network, network_label, pct, se_points


def workers_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Episodes per minute with N parallel workers (bench_workers), and search quality with them."""
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
                    "; ".join(f"{n} {b} worker(s) {fmt_mean_std(v)}" for (n, b), v in by.items()) +
                    "."]
        if r.get("note"):
            out += ["", f"Note: {r['note']}"]
        out += ["", f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    return out


def scale_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """The ResNet-50 big-case projection from measured per-image costs (bench_scale)."""
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
        out += [f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    if not any(r["device"].startswith("cuda") for r in rows):
        out += ["GPU rows: not yet measured (`bash bench/device_session.sh scale` on a GPU "
                "machine).", ""]
    return out


def training_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """The baseline checkpoints the benchmarks prune (bench_train)."""
    rows = [r for k, r in results.items() if k.startswith("train_")]
    if not rows:
        return []
    out = ["## Baseline training (`amc-train`)", "",
           "*s/epoch*: wall time per epoch on a shared machine, with whatever else ran there (a "
           "run continued with `--resume` also counts the time it lay paused): the epochs and "
           "accuracies are the figures to compare, not the speed.", "",
           "| checkpoint | model | dataset | epochs | s/epoch | test acc | MACs | params "
           "| CPU latency b1 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r["latency"]
        flags, _ = train.build_parser().parse_known_args(r["command"].split()[1:])
        out.append(f"| {network_label(*network(r))} | {flags.model} | {flags.dataset} "
                   f"| {r['epochs']} "
                   f"| {r['seconds_per_epoch']:.0f} | {100 * r['test_acc']:.2f}% "
                   f"| {r['macs'] / 1e6:.2f}M | {r['params'] / 1e3:.1f}k "
                   f"| {lat['median_ms']:.2f} ms ({lat['threads']} threads, {lat['device']}) |")
    out.append("")
    for r in rows:
        out += [f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    return out


def env_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Environment throughput, the reward signal and the speed levers (bench_env, bench_search)."""
    rows = [r for k, r in results.items() if k.startswith("env_")]
    if not rows:
        return []
    out = ["## Environment throughput (one episode, random policies)", "",
           "| model | criterion | units | val images | recalib images | episode s | surgery s "
           "| criterion s | recalibration s | evaluation s | one eval pass s "
           "| episode / eval pass | episodes / min |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["median_parts_s"]
        out.append(f"| {r['model']} | {r['criterion']} | {r['units']} | {r['val_size']} "
                   f"| {r['recalib_images']} "
                   f"| {r['median_episode_s']:.2f} | {p['surgery']:.3f} | {p['criterion']:.3f} "
                   f"| {p['recalibration']:.3f} | {p['evaluation']:.3f} | {r['eval_pass_s']:.3f} "
                   f"| {r['ratio_episode_to_eval']:.2f} | {60 / r['median_episode_s']:.1f} |")
    out.append("")
    for r in rows:
        u = r["uniform_0.5_val_acc_recalibration"]
        a = r["random_policy_val_acc"]
        out += [f"Reward signal ({r['model']}, {r['criterion']}, "
                f"{100 * r.get('budget', 0.5):.0f}% MACs): uniform keep 0.5 gives "
                f"{100 * u['with']:.1f}% validation accuracy with BN recalibration and "
                f"{100 * u['without']:.1f}% without; {r['episodes']} random policies spanned "
                f"{100 * a['min']:.1f}-{100 * a['max']:.1f}% (median {100 * a['median']:.1f}%) "
                "with it.", ""]
        if "levers" in r:
            out += _levers(r)
        out += [f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    out += _search_speed(results)
    return out


def _levers(r: dict[str, Any]) -> list[str]:
    out = [f"Speed levers on the same {r['episodes']} random policies, interleaved episode by "
           f"episode ({r['model']}, {r['criterion']}, {100 * r.get('budget', 0.5):.0f}% MACs, "
           f"round-to {r['round_to']}, {r['threads']} threads; the cache "
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
                f"Commands: `{a['command']}`; `{b['command']}`  ",
                f"Machine: {machine_line(a)}", ""]
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


def search_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Search quality per checkpoint, criterion and budget (bench_search), with the seed-spread
    verdicts."""
    rows = [r for k, r in results.items() if k.startswith("search_")]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(*network(r), r["criterion"], r["budget"], r["round_to"], r["eval_size"],
                r["threads"])].append(r)
    out: list[str] = []
    for (ckpt, sha, crit, budget, round_to, eval_size, threads), rs in groups.items():
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            by[_strategy_label(r)].append(r)
        first = rs[0]
        has_test = any(r.get("test_acc_before_finetune") is not None for r in rs)
        out += [f"## Search quality ({first['model']} {network_label(ckpt, sha)}, "
                f"{first['dataset']}, "
                f"{100 * budget:.0f}% MACs, criterion {crit}, round-to {round_to}, "
                f"{eval_size} validation images, {threads} threads, before fine-tuning)", "",
                "Search val acc: the declared winner as the search scored it (selected on those "
                "images, so biased upwards); held-out: the same policy on validation images no "
                "episode scored (after re-scoring the top 5 distinct policies there, so still the "
                "best of 5 on them: a few tenths optimistic against a heuristic's one policy, see "
                "the selection-bias section). Mean ± std over seeds. Search time is wall time on "
                "a shared machine, including any slow-down by other jobs; the speed claims are in "
                "the throughput section."
                + (" Test acc: the winner on the test split, which no choice saw (results from "
                   "before it was recorded: -)." if has_test else ""), "",
                "| strategy | seeds | episodes | search val acc | held-out val acc | per seed "
                "(held-out) | " + ("test acc | " if has_test else "") + "MACs kept "
                "| winner found at | search time (min) | cache hits |",
                "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if has_test else "")]

        def key(kv: tuple[str, list[dict[str, Any]]]) -> float:
            return -statistics.mean(r.get("rescored_val_acc") or r["best_val_acc"]
                                    for r in kv[1])

        for label, g in sorted(by.items(), key=key):
            held = [r["rescored_val_acc"] for r in g if r.get("rescored_val_acc") is not None]
            test = [r["test_acc_before_finetune"] for r in g
                    if r.get("test_acc_before_finetune") is not None]
            found = ", ".join(
                f"{r['best_episode']}" + (f" ({r['best_seed_policy']})"
                                          if r.get("best_seed_policy") else "")
                for r in g if "best_episode" in r) or "-"
            hits = [r.get("episodes_served_from_cache") for r in g]
            out.append(
                f"| {label} | {len(g)} | {g[0]['episodes']} "
                f"| {fmt_mean_std([r['best_val_acc'] for r in g])} "
                f"| {fmt_mean_std(held) if held else '-'} "
                f"| {', '.join(f'{100 * a:.2f}' for a in held) or '-'} "
                + (f"| {fmt_mean_std(test) if test else '-'} " if has_test else "")
                + f"| {statistics.mean(r['best_macs_ratio'] for r in g):.3f} | {found} "
                f"| {statistics.mean(r['seconds'] for r in g) / 60:.1f} "
                f"| {', '.join(str(h) for h in hits) if any(hits) else '-'} |")
        out += ["", *_search_findings(by), "", "Commands:"]
        out += [f"- `{r['command']}`" for r in rs]
        out += ["", f"Machine: {machine_line(first)}", ""]
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


def criteria_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Channel-selection criteria at fixed per-unit channel counts (bench_criteria)."""
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
                f"{se_points(r)} points there), after BN recalibration; "
                f"reconstruction samples {r['calib_images']} images x {r['calib_points']} "
                f"positions per consumer layer. Unpruned validation accuracy: "
                f"{pct(r.get('original_val_acc'))}.", "",
                "| criterion | " + " | ".join(f"{c}: val acc (held-out)" for c in sets)
                + " | episode s | of which criterion + refit s |",
                "|---|" + "---|" * (len(sets) + 2)]
        by: dict[str, dict[str, Any]] = {}
        for x in r["rows"]:
            by.setdefault(x["criterion"], {})[x.get("counts", "uniform")] = x
        for crit, cells in by.items():
            first = next(iter(cells.values()))
            accs = [f"{pct(cells[c]['val_acc'])} ({pct(cells[c].get('val_acc_heldout'))})"
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
            out += ["", f"Machine: {machine_line(first)} (first run; the updates ran on the same "
                    "machine at their own --threads)", ""]
        else:
            out += ["", f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    return out


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
        parts = [f"best without a refit **{k}** ({pct(a)})" for k, a in
                 [max(plain.items(), key=lambda kv: kv[1])] if plain]
        parts += [f"best with one **{k}** ({pct(a)})" for k, a in
                  [max(refit.items(), key=lambda kv: kv[1])] if refit]
        if "random" in acc:
            below = [k for k, a in plain.items() if k != "random" and a <= acc["random"]]
            parts.append("at or below `random`: " + (", ".join(below) if below else "none"))
        out.append(f"- {c} counts (held-out): " + "; ".join(parts) + ".")
    return out
