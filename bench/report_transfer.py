"""BENCHMARKS.md section "Search once, apply many": a trained (budget-conditioned, multi-model)
actor applied without a search, from ``bench_compare`` runs with the ``transfer`` strategy and
``bench_warmstart`` runs. Three questions, each against its target:

- zero-shot on a model the actor never saw: its policy before fine-tuning against the best of the
  random policies drawn at the same budget (target: at least as good), and every strategy after
  a short fine-tune over seeds;
- a budget the actor was not searched at, on a model it was trained on: its policy against a
  search at that budget (target: within 1 point before fine-tuning);
- warm start (``amc-search --init-actor``): episodes to reach a from-scratch search's best
  (target: at most a third of the scratch search's episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from amc_agent.policies.stats import difference
from bench.report_common import network, pct

UNSEEN_GAP = 0.01
"""How close (accuracy, fraction) the actor at an unseen budget must come to a search there."""

COLUMNS = ("transfer", "random", "uniform", "global", "amc-ddpg")


def _after(x: dict[str, Any]) -> str:
    if x.get("test_acc") is None:
        return "-"
    std = x.get("test_acc_std")
    return f"{100 * x['test_acc']:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def _seeds(x: dict[str, Any]) -> list[float]:
    return [a for a in x.get("test_acc_seeds") or [] if a is not None]


def _vs(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``a`` against ``b`` after fine-tuning: the gap in points and whether it exceeds two
    standard errors over the fine-tune seeds (amc_agent.policies.stats.difference)."""
    sa, sb = _seeds(a), _seeds(b)
    if not sa or not sb:
        return "-"
    d = difference(sa, sb)
    word = "no spread" if d["exceeds_spread"] is None else (
        ("ahead" if d["delta"] > 0 else "behind") if d["exceeds_spread"] else "tie")
    return f"{100 * d['delta']:+.2f} ({word})"


def _transfer_runs(results: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, r) for k, r in sorted(results.items())
            if k.startswith("compare_") and "transfer" in r.get("strategies", {})]


def _is_source(r: dict[str, Any]) -> bool:
    """The comparison ran on a model the actor was trained on (an unseen-budget test)."""
    return r["checkpoint"] in (r["config"].get("transfer_trained_on") or [])


def _origin(r: dict[str, Any]) -> str:
    c = r["config"]
    rng = c.get("transfer_budget_range")
    where = ", ".join(f"`{p}`" for p in c.get("transfer_trained_on") or []) or "-"
    # Runs from before the episode count was recorded are told apart by the actor's folder.
    effort = f", {c['transfer_episodes']} episodes" if c.get("transfer_episodes") else \
        f" (actor `{c.get('transfer')}`)"
    # Runs from before the observation was recorded saw AMC's.
    seen = c.get("transfer_observation", "amc")
    effort += f", observation {seen}" if seen != "amc" else ""
    return (f"{where} over budgets {rng[0]:g}:{rng[1]:g}" if rng else
            f"{where} at budget {c.get('transfer_budget')}") + effort


def _model(r: dict[str, Any]) -> str:
    """A comparison's target model as a row names it: the checkpoint's file stem, and the
    digest of its tensors where the result recorded one."""
    ckpt, sha = network(r)
    return Path(ckpt).stem + (f" (weights {sha})" if sha else "")


def _scratch(results: dict[str, dict[str, Any]], r: dict[str, Any]) -> dict[str, Any] | None:
    """The amc-ddpg row of another comparison on the same checkpoint and budget (the
    from-scratch search on the target, e.g. ``bench_compare --variant scratch``)."""
    for k, x in sorted(results.items()):
        if k.startswith("compare_") and x is not r and "checkpoint" in x \
                and network(x) == network(r) \
                and x.get("config", {}).get("budget") == r["config"]["budget"] \
                and "amc-ddpg" in x.get("strategies", {}):
            return x["strategies"]["amc-ddpg"] | {"episodes": x["config"].get("episodes")}
    return None


def _zero_shot(runs: list[tuple[str, dict[str, Any]]],
               results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [(k, r) for k, r in runs if not _is_source(r)]
    if not rows:
        return []
    out = ["### Zero-shot on models the actor never saw", "",
           "Test accuracy before fine-tuning / after (mean ± std over fine-tune seeds). *random*: "
           "the best of the random policies drawn at the same budget (its episode count in the "
           "row), re-scored on held-out validation images; *amc-ddpg*: a search from scratch on "
           "the target (its own comparison, same fine-tune seeds; episodes in brackets). The "
           "target: zero-shot before "
           "fine-tuning at least as good as that best random policy. After fine-tuning, the "
           "transfer row against each other strategy counts only beyond two standard errors.",
           "", "| model | budget | actor trained on | " + " | ".join(COLUMNS)
           + " | zero-shot >= best random (before FT) | transfer after FT vs others |",
           "|---|---|---|" + "---|" * len(COLUMNS) + "---|---|"]
    for _, r in rows:
        s, c = dict(r["strategies"]), r["config"]
        scratch = _scratch(results, r) if "amc-ddpg" not in s else None
        if scratch is not None:
            s["amc-ddpg"] = scratch
        cells = [f"{pct(s[n]['test_acc_before_finetune'])} / {_after(s[n])}" if n in s else "-"
                 for n in COLUMNS]
        if scratch is not None:
            cells[-1] += f" ({scratch['episodes']} episodes)"
        t = s["transfer"]
        meets = "-" if "random" not in s else (
            "yes" if t["test_acc_before_finetune"] >= s["random"]["test_acc_before_finetune"]
            else "**no**")
        vs = "; ".join(f"{n} {_vs(t, s[n])}" for n in COLUMNS[1:] if n in s) or "-"
        model = _model(r)
        out.append(f"| {model} | {c['budget']:g} | {_origin(r)} | " + " | ".join(cells)
                   + f" | {meets} (random: {c['episodes']} episodes) | {vs} |")
    return [*out, ""]


def _unseen(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    rows = [(k, r) for k, r in runs if _is_source(r) and "amc-ddpg" in r["strategies"]]
    if not rows:
        return []
    out = ["### An unseen budget on a model the actor was trained on", "",
           "The conditioned actor's policy at the budget against an amc-ddpg search at that "
           "budget (its episodes in brackets: compare the actor's training episodes with them), "
           f"test accuracy before fine-tuning; target: within {100 * UNSEEN_GAP:.0f} point.", "",
           "| model | budget | actor trained on | actor before FT | search before FT | gap "
           "| within target | actor after FT | search after FT | actor vs search after FT |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in rows:
        s = r["strategies"]
        t, a = s["transfer"], s["amc-ddpg"]
        gap = t["test_acc_before_finetune"] - a["test_acc_before_finetune"]
        model = _model(r)
        out.append(f"| {model} | {r['config']['budget']:g} | {_origin(r)} "
                   f"| {pct(t['test_acc_before_finetune'])} "
                   f"| {pct(a['test_acc_before_finetune'])} ({r['config']['episodes']} episodes) "
                   f"| {100 * gap:+.2f} "
                   f"| {'yes' if gap >= -UNSEEN_GAP else '**no**'} | {_after(t)} | {_after(a)} "
                   f"| {_vs(t, a)} |")
    return [*out, ""]


def _warm(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    out = ["### Warm start from the actor against a search from scratch", "",
           "`amc-search --init-actor` and a plain amc-ddpg search on the same model, budget, seed "
           "and episode count; search validation accuracy (the same images for both). Target: "
           "the warm start reaches the scratch search's best within a third of its episodes.", "",
           "| model | budget | episodes | scratch best (found at) | warm first episode "
           "| best at a third: scratch / warm | warm episodes to scratch's best "
           "| within a third | held-out: scratch / warm |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, w = r["scratch"], r["warm"]
        reach = r["warm_episodes_to_scratch_best"]
        out.append(f"| {r['model']} | {r['budget']:g} | {r['episodes']} "
                   f"| {pct(s['best'])} ({s['found_at']}) | {pct(w['first_episode_acc'])} "
                   f"| {pct(s['best_at_third'])} / {pct(w['best_at_third'])} "
                   f"| {'never' if reach is None else reach} "
                   f"| {'yes' if r['meets_third'] else '**no**'} (a third: {r['third']}) "
                   f"| {pct(s['heldout_acc'])} / {pct(w['heldout_acc'])} |")
    return [*out, ""]


def transfer(results: dict[str, dict[str, Any]],
             provenance: Callable[[dict[str, Any]], list[str]]) -> list[str]:
    """The section, or nothing without transfer results; ``provenance(result)`` gives a result's
    command and machine lines."""
    runs = _transfer_runs(results)
    warm = [r for k, r in sorted(results.items()) if k.startswith("warmstart_")]
    body = [*_zero_shot(runs, results), *_unseen(runs), *_warm(warm)]
    if not body:
        return []
    out = ["## Search once, apply many: a trained actor without a search", "",
           "The per-model comparisons (every strategy's row, differences, commands) are in the "
           "`Policies compared with error bars` sections; warm-start commands below.", "", *body]
    for r in warm:
        # A reused scratch search ran under its own comparison's command, not the one rebuilt here.
        scratch = (f"scratch reused from `{r['scratch_reused']}` (see its comparison's command)"
                   if r.get("scratch_reused") else f"`{r['search_commands']['scratch']}`")
        out += [f"Warm start: `{r['command']}` (searches: {scratch}; "
                f"`{r['search_commands']['warm']}`)  ", *provenance(r), ""]
    return out
