"""The ladder pools compare runs at several search seeds and states verdicts by the seed rule."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report_ladder
from bench.report_common import same_policies


def _run(budget: float, seed: int, accs: dict[str, list[float]],
         finetune: int | None = 2000) -> dict[str, Any]:
    """A compare result as bench.bench_compare writes it, reduced to what the ladder reads
    (``finetune``: the searches' short fine-tune before re-scoring; None: not recorded)."""
    rows = {n: {"test_acc_seeds": a, "test_acc": sum(a) / len(a), "test_acc_std": 0.0,
                "test_acc_before_finetune": 0.5} for n, a in accs.items()}
    if finetune is not None:
        for row in rows.values():
            row["rescore_finetune_images"] = finetune
    return {"checkpoint": "runs/r20.pt", "strategies": rows,
            "config": {"target": "flops", "budget": budget, "criterion": "group-l2",
                       "finetune_images": 1000, "seed": seed}}


@pytest.fixture()
def no_plot(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(report_ladder, "_ladder_plot",
                        lambda *a: report_ladder.ROOT / "bench" / "x.png")


def test_search_seeds_pool_and_heuristics_may_run_once(no_plot) -> None:
    results = {
        "compare_r20_flops0.5": _run(0.5, 0, {"amc-ddpg": [0.90, 0.91, 0.90],
                                              "tp-uniform": [0.85, 0.86, 0.85]}),
        "compare_r20_flops0.3": _run(0.3, 0, {"amc-ddpg": [0.80, 0.81, 0.80],
                                              "tp-uniform": [0.80, 0.79, 0.81]}),
        "compare_r20_flops0.3_s1": _run(0.3, 1, {"amc-ddpg": [0.70, 0.71, 0.70]}),
    }
    text = "\n".join(report_ladder.ladder_section(results))
    # amc-ddpg at 30% pools six runs over two search seeds: mean 75.33; its verdict counts each
    # search seed once, and their 10-point swing is too wide to call the 4.7-point gap.
    assert "| amc-ddpg | 50.00% / **90.33 ± 0.58** | 50.00% / 75.33 ± 5.50 (2 search seeds) |" \
        in text
    assert "| tp-uniform | 50.00% / 85.33 ± 0.58 | 50.00% / **80.00 ± 1.00** |" in text
    assert "- 50% MACs, amc-ddpg: ahead of tp-uniform (+5.00, Torch-Pruning's)." in text
    assert "- 30% MACs, amc-ddpg: tied with tp-uniform (-4.67, Torch-Pruning's)." in text
    assert "30%: 0, 1" in text


def test_searches_chosen_without_the_short_finetune_are_their_own_rows(no_plot) -> None:
    # Runs from before the default record no selection: a flag in the command tells.
    old = _run(0.5, 0, {"amc-ddpg": [0.80, 0.80], "random": [0.78, 0.78], "uniform": [0.7, 0.7]},
               finetune=None)
    old["compare_command"] = "amc-compare --budget 0.5 --criterion group-l2"
    flagged = _run(0.5, 0, {"amc-ddpg": [0.84, 0.84]}, finetune=None)
    flagged["compare_command"] = "amc-compare --budget 0.5 --rescore-finetune 2000"
    recorded = _run(0.5, 0, {"random": [0.83, 0.83]})
    rerun = _run(0.5, 0, {"random": [0.10, 0.10]})  # same seed and selection: not a new sample
    low = {"old": _run(0.3, 0, {k: [0.6, 0.6] for k in ("amc-ddpg", "random", "uniform")},
                       finetune=0),
           "new": _run(0.3, 0, {k: [0.6, 0.6] for k in ("amc-ddpg", "random")})}
    results = {"compare_r20_flops0.5": old, "compare_r20_flops0.5_ft": flagged,
               "compare_r20_flops0.5_rs": recorded, "compare_r20_flops0.5_rs2": rerun,
               "compare_r20_flops0.3": low["old"], "compare_r20_flops0.3_rs": low["new"]}
    text = "\n".join(report_ladder.ladder_section(results))
    ladder = text[text.index("## Difficulty ladder"):]  # after the summary of every rung
    rows = {ln.split(" | ")[0].removeprefix("| "): ln for ln in ladder.splitlines()
            if ln.startswith("| ") and not ln.startswith("| strategy")}
    assert set(rows) == {"amc-ddpg (no FT re-score)", "random (no FT re-score)", "uniform",
                         "amc-ddpg", "random"}
    assert "| amc-ddpg | 50.00% / **84.00 ± 0.00** |" in rows["amc-ddpg"]
    assert "| random | 50.00% / 83.00 ± 0.00 |" in rows["random"]
    assert "78.00 ± 0.00" in rows["random (no FT re-score)"]
    # Both kinds of learned row get a verdict.
    assert "- 50% MACs, amc-ddpg: ahead of" in text
    assert "- 50% MACs, amc-ddpg (no FT re-score): " in text


def test_rows_that_kept_the_same_channels_are_called_one_network(no_plot) -> None:
    runs = {b: _run(b, 0, {"amc-ddpg": [0.8, 0.8], "random": [0.8, 0.8], "tpe": [0.7, 0.7]})
            for b in (0.5, 0.3)}
    for b, run in runs.items():
        for name, row in run["strategies"].items():
            row["keep_ratios"] = {"a": 0.5 if name != "tpe" else 0.25, "b": b}
    runs[0.3]["strategies"]["random"]["keep_ratios"] = {"a": 0.75, "b": 0.3}
    text = "\n".join(report_ladder.ladder_section(
        {f"compare_r20_flops{b}": r for b, r in runs.items()}))
    assert "- 50% MACs: amc-ddpg and random chose the same policy (search seed 0)" in text
    assert "30% MACs: amc-ddpg and random" not in text and "and tpe chose" not in text
    # The same ratios with other channels (another criterion, or a refit) are other networks.
    runs[0.5]["strategies"]["random"]["criterion"] = "group-l2+reconstruct"
    text = "\n".join(report_ladder.ladder_section(
        {f"compare_r20_flops{b}": r for b, r in runs.items()}))
    assert "amc-ddpg and random chose the same policy" not in text


def test_compare_tables_call_only_the_same_ratios_and_criterion_one_network() -> None:
    rows = {n: {"keep_ratios": {"a": 0.5}, "criterion": c} for n, c in
            (("uniform", "group-l2+reconstruct"), ("tp-uniform", "group-l2"),
             ("global", "group-l2"))}
    assert same_policies(rows) == [["tp-uniform", "global"]]


def test_one_budget_at_two_search_seeds_is_a_rung_and_one_seed_is_not(monkeypatch) -> None:
    drawn: list[Any] = []
    monkeypatch.setattr(report_ladder, "_ladder_plot", lambda *a: drawn.append(a))
    one = {"compare_r20_flops0.5": _run(0.5, 0, {"amc-ddpg": [0.90, 0.91, 0.90],
                                                 "uniform": [0.85, 0.86, 0.85]})}
    assert report_ladder.ladder_section(one) == []
    two = one | {"compare_r20_flops0.5_s1": _run(0.5, 1, {"amc-ddpg": [0.88, 0.88, 0.89]})}
    text = "\n".join(report_ladder.ladder_section(two))
    assert "MACs budgets 50%)" in text and "50%: 0, 1" in text
    # Pooled over both search seeds (six runs); uniform ran once, at seed 0.
    assert "| amc-ddpg | 50.00% / **89.33 ± 1.21** (2 search seeds) |" in text
    assert "- 50% MACs, amc-ddpg: " in text and "uniform (+" in text
    assert not drawn and "![accuracy vs budget]" not in text


def test_the_same_policy_at_one_of_two_search_seeds_is_named(no_plot) -> None:
    runs = {seed: _run(0.5, seed, {"amc-ddpg": [0.8, 0.8], "random": [0.8, 0.8]})
            for seed in (0, 1)}
    for seed, run in runs.items():
        for name, row in run["strategies"].items():
            # Seed 1: both searches declared the same warm-up episode.
            row["keep_ratios"] = {"a": 0.5 if seed == 1 or name == "random" else 0.25}
    text = "\n".join(report_ladder.ladder_section(
        {f"compare_r20_flops0.5_s{seed}": r for seed, r in runs.items()}))
    assert ("- 50% MACs: amc-ddpg and random chose the same policy at search seed 1 (of 0, 1)"
            in text)


def test_the_summary_sorts_each_rung_into_floor_heuristics_and_searches(no_plot) -> None:
    results = {
        "compare_r20_flops0.5": _run(0.5, 0, {
            "amc-ddpg": [0.900, 0.901, 0.902], "tp-uniform": [0.850, 0.851, 0.852],
            "tp-global": [0.899, 0.901, 0.903], "uniform": [0.920, 0.921, 0.922],
            "global": [0.850, 0.851, 0.852], "random": [0.880, 0.881, 0.882]}),
        "compare_r20_flops0.3": _run(0.3, 0, {
            "amc-ddpg": [0.80, 0.81, 0.80], "tp-uniform": [0.70, 0.70, 0.71],
            "tp-global": [0.70, 0.71, 0.70], "uniform": [0.79, 0.80, 0.81],
            "global": [0.70, 0.70, 0.70], "random": [0.80, 0.80, 0.80]}),
        # A rung with fewer rows: the ladder's table drops the others, the summary does not.
        "compare_r20_flops0.2": _run(0.2, 0, {"amc-ddpg": [0.5, 0.5], "uniform": [0.4, 0.4]}),
    }
    lines = report_ladder.summary_section(results)
    text = "\n".join(lines)
    row50 = next(ln for ln in lines if ln.startswith("| r20 | group-l2 | 50% | 1 |"))
    assert row50 == ("| r20 | group-l2 | 50% | 1 | 90.10 ± 0.10 "
                     "| ahead: tp-uniform +5.00; tied: tp-global +0.00 "
                     "| ahead: global +5.00; behind: uniform -2.00 | ahead: random +2.00 |")
    assert "| r20 | group-l2 | 30% | 1 | 80.33 ± 0.58 | ahead: tp-uniform +10.00, tp-global " \
           "+10.00 | ahead: global +10.33; tied: uniform +0.33 | tied: random +0.33 |" in text
    assert "| r20 | group-l2 | 20% | 1 | 50.00 ± 0.00 | - | ahead: uniform +10.00 | - |" in text
    # Rungs without Torch-Pruning's rows are not counted against it.
    assert "Over 3 rungs, against Torch-Pruning's strategies amc-ddpg is ahead of every one in " \
           "1; ahead of none or some, tied with the rest in 1; against our heuristics it is " \
           "ahead of every one in 1; ahead of none or some, tied with the rest in 1; behind at " \
           "least one in 1." in text
    # The summary opens the ladder section.
    assert report_ladder.ladder_section(results)[0] == lines[0]
    assert report_ladder.summary_section({}) == []
