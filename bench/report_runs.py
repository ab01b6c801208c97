"""BENCHMARKS.md sections on robustness and set-up: the any-model sweeps, the fault and bad-input
counts, and `make demo` from a fresh clone."""

from __future__ import annotations

from typing import Any

from bench.report_common import machine_line
from bench.report_compare import compare_table


def demo_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """`make demo` from a fresh clone: wall time per step (bench_demo)."""
    r = results.get("demo")
    if r is None:
        return []
    c, b = r["config"], r["base"]
    return [f"## `make demo` from a fresh clone: {r['wall_seconds'] / 60:.1f} min wall time", "",
            f"Set-up (venv, packages, data) + `cnn10` trained {b['epochs']} epochs "
            f"({b['seconds_per_epoch']:.0f} s/epoch, {100 * b['test_acc']:.2f}% test) + "
            f"`amc-compare` of {', '.join(c['strategies'])} at {c['target']} {c['budget']}, "
            f"{c['episodes']} episodes per search.", "", *compare_table(r),
            f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]


def sweep_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """The any-model sweeps (bench_sweep): torchvision and zoo models, and timm."""
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
    out += [f"Machine: {machine_line(r)}", ""]
    return out


def reliability_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Fault and bad-input counts (bench_reliability)."""
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
    out += ["", f"Command: `{r['command']}`  ", f"Machine: {machine_line(r)}", ""]
    return out
