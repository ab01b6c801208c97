"""BENCHMARKS.md section "Difficulty ladder": compare runs of one checkpoint and criterion at
several budgets, pooled over search seeds, with verdicts and an accuracy-vs-budget plot."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amc_agent.agents import AGENTS
from amc_agent.policies.stats import difference, mean_std
from bench.report_common import ROOT, network, network_label, pct


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


@dataclass
class Ladder:
    """The compare runs of one network, criterion and fine-tune size that make a ladder: its
    budgets (largest first), search seeds per budget, the row names present at every budget,
    each budget's rows by name and those rows pooled over search seeds (``rungs``)."""

    ckpt: str
    sha: str | None
    criterion: str
    finetune_images: str
    budgets: list[float]
    seeds: dict[float, list[int]]
    names: list[str]
    rows: dict[float, dict[str, list[dict[str, Any]]]]
    rungs: dict[float, dict[str, dict[str, Any]]]


def ladders(results: dict[str, dict[str, Any]]
            ) -> list[tuple[Ladder, dict[tuple[str, float], list[dict[str, Any]]]]]:
    """Every ladder among the MACs-target compare results (two or more budgets, or one budget at
    two or more search seeds), each with its variant runs (``bench_compare --variant``) by
    (variant, budget)."""
    groups: dict[tuple[Any, ...], dict[float, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    variants: dict[tuple[Any, ...], dict[tuple[str, float], list[dict[str, Any]]]] = \
        defaultdict(lambda: defaultdict(list))
    for k, r in results.items():
        if k.startswith("compare_") and r.get("config", {}).get("target") == "flops":
            key = (*network(r), str(r["config"]["criterion"]),
                   str(r["config"].get("finetune_images")))
            if r.get("variant"):
                variants[key][(r["variant"], r["config"]["budget"])].append(r)
            else:
                groups[key][r["config"]["budget"]].append(r)
    out = []
    for key, by_budget in groups.items():
        seeds = {b: sorted({r["config"].get("seed", 0) for r in runs})
                 for b, runs in by_budget.items()}
        # One budget is a rung of its own once it ran at two search seeds: pooled, its verdicts
        # carry the search's own spread, which a single compare table cannot show.
        if len(by_budget) < 2 and all(len(s) < 2 for s in seeds.values()):
            continue
        budgets = sorted(by_budget, reverse=True)
        rows = {b: _rows_by_label(by_budget[b]) for b in budgets}
        names = [n for n in rows[budgets[0]] if all(n in rows[b] for b in budgets)]
        rungs = {b: {n: _pool(rows[b][n]) for n in names} for b in budgets}
        out.append((Ladder(*key, budgets, seeds, names, rows, rungs), variants[key]))
    return out


def _sorted_verdicts(samples: list[float], rung: dict[str, dict[str, Any]],
                     others: list[str]) -> dict[str, list[str]]:
    """``samples`` against each of ``others`` in ``rung``: names with the difference in points,
    under "ahead", "tied" or "behind" (beyond two standard errors, as :func:`_verdict`)."""
    out: dict[str, list[str]] = {"ahead": [], "tied": [], "behind": []}
    for other in others:
        d = difference(samples, rung[other]["samples"])
        key = "tied" if not d["exceeds_spread"] else "ahead" if d["delta"] > 0 else "behind"
        out[key].append(f"{other} {100 * d['delta']:+.2f}")
    return out


def summary_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """One line per ladder rung: the learned policy (amc-ddpg, winner chosen after the short
    fine-tune) after fine-tuning against Torch-Pruning's own strategies (the floor), our
    heuristics and the other searches, ahead / tied / behind beyond two standard errors; then
    how many rungs fall each way."""
    lines: list[str] = []
    tally: dict[tuple[tuple[str, ...], str], int] = defaultdict(int)
    for lad, _ in ladders(results):
        net = Path(lad.ckpt).stem + (f" ({lad.sha[:8]})" if lad.sha else "")
        for b in lad.budgets:
            # Every row this budget has (a ladder's table keeps only rows of every budget).
            rung = {n: _pool(rs) for n, rs in lad.rows[b].items()}
            if "amc-ddpg" not in rung:
                continue
            me = rung["amc-ddpg"]
            cells = []
            for group in (PEERS, OURS, None):
                others = [n for n in rung if n != "amc-ddpg" and (
                    n in group if group else n not in PEERS and n not in OURS)]
                v = _sorted_verdicts(me["samples"], rung, others)
                cells.append("; ".join(f"{k}: {', '.join(x)}" for k, x in v.items() if x) or "-")
                if group is not None and others:
                    tally[(group, "behind at least one" if v["behind"] else
                           "ahead of every one" if len(v["ahead"]) == len(others)
                           else "ahead of none or some, tied with the rest")] += 1
            lines.append(f"| {net} | {lad.criterion} | {100 * b:.0f}% "
                         f"| {len(me['per_search_seed'])} "
                         f"| {100 * me['test_acc']:.2f} ± {100 * (me['test_acc_std'] or 0):.2f} "
                         f"| " + " | ".join(cells) + " |")
    if not lines:
        return []
    rungs = len(lines)
    counts = {g: "; ".join(f"{k} in {n}" for (h, k), n in sorted(tally.items()) if h is g)
              for g in (PEERS, OURS)}
    return ["## Where the search pays after fine-tuning (every ladder rung)", "",
            "amc-ddpg's test accuracy after fine-tuning (its winner chosen after the short "
            "fine-tune; search seeds pooled) against every other strategy of the same rung, in "
            "points; ahead or behind only beyond two standard errors, as in each ladder's "
            "verdicts below. A rung searched at one seed has only the fine-tune seeds' spread "
            "(the search's own is not in it). Rows that chose the same network as another are "
            "one network (named under each ladder).", "",
            "| network | criterion | MACs kept | search seeds | amc-ddpg after FT "
            "| vs Torch-Pruning (the floor) | vs our heuristics | vs other searches |",
            "|---|---|---|---|---|---|---|---|", *lines, "",
            f"Over {rungs} rungs, against Torch-Pruning's strategies amc-ddpg is {counts[PEERS]}; "
            f"against our heuristics it is {counts[OURS]}.", ""]


def ladder_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """Compare results of one checkpoint and criterion at two or more budgets, or at one budget
    with two or more search seeds: a table of test accuracy before and after fine-tuning per
    strategy and budget (pooled over search seeds where a budget ran with several), the verdicts
    against every other strategy, Torch-Pruning's named, and (several budgets) a plot; the
    summary of every rung first."""
    out: list[str] = summary_section(results)
    for lad, variants in ladders(results):
        ckpt, sha, crit, ft_images = lad.ckpt, lad.sha, lad.criterion, lad.finetune_images
        budgets, seeds, names, rows, rungs = lad.budgets, lad.seeds, lad.names, lad.rows, \
            lad.rungs
        model = Path(ckpt).stem + (f"_{sha}" if sha else "")
        out += [f"## Difficulty ladder ({network_label(ckpt, sha)}, criterion {crit}, MACs budgets "
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
                cells.append(f"{pct(x['test_acc_before_finetune'])} / {after}"
                             + (f" ({runs} search seeds)" if runs > 1 else ""))
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out += ["", *_ladder_verdicts(budgets, names, rungs), *_same_policies_lines(budgets, rows),
                *_variant_verdicts(variants, rungs)]
        if len(budgets) > 1:  # a one-budget plot has no curve to show
            plot = _ladder_plot(model, crit, budgets, names, rungs)
            out += ["", f"![accuracy vs budget]({plot.relative_to(ROOT)})"]
        out.append("")
    return out


def _same_policies_lines(budgets: list[float],
                         rows: dict[float, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """Rows of one budget that kept the same channels at a search seed they share (the same
    keep ratios chosen by the same criterion), at every shared seed or at some: their equal
    figures are one network measured twice, not two strategies that tie (e.g. a search whose
    winner is a warm-up episode drawn by the same random stream as random search). The same
    ratios under another criterion or a refit (Torch-Pruning's own channels beside ours with
    reconstruction) are other networks."""
    out = []
    for b in budgets:
        by_seed = {n: {r["search_seed"]: None if r.get("keep_ratios") is None
                       else (r["keep_ratios"], r.get("criterion")) for r in rs}
                   for n, rs in rows[b].items()}
        names = sorted(by_seed)
        for i, n in enumerate(names):
            for m in names[i + 1:]:
                shared = sorted(set(by_seed[n]) & set(by_seed[m]))
                same = [k for k in shared
                        if by_seed[n][k] is not None and by_seed[n][k] == by_seed[m][k]]
                if not same:
                    continue
                seeds = ", ".join(map(str, same))
                if len(same) == len(shared):
                    out.append(f"- {100 * b:.0f}% MACs: {n} and {m} chose the same policy "
                               f"(search seed {seeds}): one network measured twice, not a tie "
                               "between strategies.")
                else:
                    out.append(f"- {100 * b:.0f}% MACs: {n} and {m} chose the same policy at "
                               f"search seed {seeds} (of {', '.join(map(str, shared))}): that "
                               "seed's sample is one network measured twice in both rows.")
    return ["", *out] if out else []


LEARNED = ("amc-ddpg", "amc-ppo")


PEERS = ("tp-uniform", "tp-global")
OURS = ("uniform", "sensitivity", "global")
"""Our heuristic strategies (amc_agent.policies.heuristics)."""


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
                       f"{pct(x['test_acc_before_finetune'])} / {100 * x['test_acc']:.2f} ± "
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
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model}, {crit}")
    axes[0].invert_xaxis()  # once: the axes share x, so a second call would undo it
    axes[1].legend(fontsize=8)
    path = ROOT / "bench" / "plots" / f"ladder_{model}_{crit}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
