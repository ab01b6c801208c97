"""The "search once, apply many" benchmark: the warm-start figures (bench.bench_warmstart) from a
real pair of tiny searches, and the BENCHMARKS.md section (bench.report_transfer) deciding each
target from the results."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

import bench.common
from amc_agent.agents import search as search_module
from amc_agent.cli import search, train
from bench import bench_warmstart
from bench.bench_warmstart import best_so_far, episodes_to_reach, summary
from bench.report_transfer import transfer

SMALL = ["--eval-size", "32", "--recalib-batches", "1", "--recalib-batch-size", "16",
         "--agent-kwargs", "{warmup_episodes: 1, batch_size: 4}"]


def _ep(acc: float, ok: bool = True) -> dict:
    return {"accuracy": acc, "meets_budget": ok}


def test_best_so_far_ignores_episodes_over_budget_and_counts_episodes_from_one() -> None:
    curve = best_so_far([_ep(0.5), _ep(0.9, ok=False), _ep(0.6), _ep(0.55)])
    assert curve == [0.5, 0.5, 0.6, 0.6]
    assert episodes_to_reach(curve, 0.6) == 3 and episodes_to_reach(curve, 0.7) is None
    assert best_so_far([_ep(0.9, ok=False)]) == [None]


def test_warm_start_meets_a_third_only_when_it_reaches_the_scratch_best_in_time() -> None:
    P = SimpleNamespace(metrics={"rescored_val_accuracy": 0.7, "rescore_images": 100})

    scratch = [_ep(a) for a in (0.5, 0.6, 0.6, 0.6, 0.6, 0.8)]  # best 0.8 at episode 6
    fast = [_ep(a) for a in (0.7, 0.81, 0.5, 0.5, 0.5, 0.5)]
    slow = [_ep(a) for a in (0.7, 0.7, 0.7, 0.8, 0.5, 0.5)]
    s = summary(scratch, fast, {"scratch": P, "warm": P})
    assert s["third"] == 2 and s["warm_episodes_to_scratch_best"] == 2 and s["meets_third"]
    assert s["scratch"]["found_at"] == 6 and s["scratch"]["best_at_third"] == 0.6
    assert s["warm"]["best_at_third"] == 0.81 and s["warm"]["first_episode_acc"] == 0.7
    s = summary(scratch, slow, {"scratch": P, "warm": P})
    assert s["warm_episodes_to_scratch_best"] == 4 and not s["meets_third"]
    never = summary(scratch, [_ep(0.1)] * 6, {"scratch": P, "warm": P})
    assert never["warm_episodes_to_scratch_best"] is None and not never["meets_third"]


def test_warmstart_runs_both_searches_resumes_and_writes_the_figures(tmp_path,
                                                                   monkeypatch) -> None:
    ckpt = tmp_path / "cnn.pt"
    assert train.main(["--model", "cnn", "--dataset", "synthetic", "--epochs", "1",
                       "--no-progress", "--out", str(ckpt)]) == 0
    actor = tmp_path / "actor"
    assert search.main(["--checkpoint", str(ckpt), *SMALL, "--no-progress", "--wandb-mode",
                        "disabled", "--budget", "0.3:0.6", "--episodes", "3",
                        "--out", str(actor)]) == 0
    work = tmp_path / "work"
    # The warm search is interrupted at its second episode, then the benchmark runs again.
    real = search_module.Search._episode

    def crash(self, e):
        if e == 1 and self.cfg.init_actor is not None:
            raise KeyboardInterrupt
        return real(self, e)

    argv = ["bench_warmstart", "--checkpoint", str(ckpt), "--actor", str(actor), "--budget",
            "0.5", "--episodes", "3", "--work", str(work), "--", *SMALL]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(search_module.Search, "_episode", crash)
    with pytest.raises(KeyboardInterrupt):
        bench_warmstart.main()
    scratch_rows = (work / "scratch" / "episodes.jsonl").read_text()
    monkeypatch.setattr(search_module.Search, "_episode", real)
    bench_warmstart.main()
    assert (work / "scratch" / "episodes.jsonl").read_text() == scratch_rows  # not re-run
    r = json.loads((tmp_path / "results" / "warmstart_cnn_flops0.5.json").read_text())
    warm = [json.loads(x) for x in (work / "warm" / "episodes.jsonl").read_text().splitlines()]
    assert [x["episode"] for x in warm] == [0, 1, 2]  # resumed, nothing lost or doubled
    assert warm[0]["seed_policy"] == "init-actor"
    assert r["warm"]["first_episode_acc"] == warm[0]["accuracy"]
    assert r["scratch_best"] == max(json.loads(x)["accuracy"]
                                    for x in scratch_rows.splitlines()
                                    if json.loads(x)["meets_budget"])
    assert r["actor_budget_range"] == [0.3, 0.6]
    assert r["actor_trained_on"] == [str(ckpt)]
    assert "--init-actor" in r["search_commands"]["warm"]


def _row(before: float, seeds: list[float]) -> dict:
    return {"test_acc_before_finetune": before, "test_acc": sum(seeds) / len(seeds),
            "test_acc_std": 0.001, "test_acc_seeds": seeds}


def _compare(ckpt: str, rows: dict, trained_on: list[str], observation: str = "amc") -> dict:
    return {"checkpoint": ckpt, "strategies": rows,
            "config": {"budget": 0.5, "episodes": 50, "transfer_trained_on": trained_on,
                       "transfer_budget_range": [0.3, 0.6], "transfer_budget": 0.45,
                       "transfer_episodes": 600, "transfer_observation": observation}}


def test_report_decides_each_target_from_the_results() -> None:
    sources = ["runs/c/resnet20.pt", "runs/c/resnet32.pt"]
    results = {
        "compare_resnet56_flops0.5_zeroshot": _compare("runs/c/resnet56.pt", {
            "transfer": _row(0.70, [0.900, 0.901, 0.902]),
            "random": _row(0.72, [0.880, 0.881, 0.882]),
            "uniform": _row(0.60, [0.900, 0.902, 0.901])}, sources),
        "compare_resnet56_flops0.5_zeroshot_share": _compare("runs/c/resnet56.pt", {
            "transfer": _row(0.73, [0.900, 0.901, 0.902]),
            "random": _row(0.72, [0.880, 0.881, 0.882])}, sources, "amc+share"),
        "compare_resnet20_flops0.5_unseen": _compare("runs/c/resnet20.pt", {
            "transfer": _row(0.845, [0.89, 0.891]),
            "amc-ddpg": _row(0.86, [0.89, 0.892])}, sources),
        "compare_resnet20_flops0.5": {"checkpoint": "x.pt", "strategies": {"uniform": {}},
                                      "config": {}},
        "compare_resnet56_flops0.5_scratch": {
            "checkpoint": "runs/c/resnet56.pt", "strategies": {"amc-ddpg": _row(
                0.75, [0.905, 0.906, 0.907])}, "config": {"budget": 0.5, "episodes": 300}},
    }
    text = "\n".join(transfer(results, lambda r: []))
    zero = next(ln for ln in text.splitlines() if ln.startswith("| resnet56 |"))
    assert "70.00% / 90.10 ± 0.10" in zero
    assert "| **no** (random: 50 episodes) |" in zero  # 70% < the best random policy's 72%
    assert "random +2.00 (ahead)" in zero and "uniform +0.00 (tie)" in zero
    # The from-scratch search on the target comes from its own comparison.
    assert "75.00% / 90.60 ± 0.10 (300 episodes)" in zero and "amc-ddpg -0.50 (behind)" in zero
    unseen = next(ln for ln in text.splitlines() if ln.startswith("| resnet20 |"))
    assert "| -1.50 | **no** |" in unseen  # 1.5 points behind the search: outside 1 point
    assert "| 86.00% (50 episodes) |" in unseen  # the search's own effort, beside the actor's
    assert "`runs/c/resnet20.pt`, `runs/c/resnet32.pt` over budgets 0.3:0.6, 600 episodes" \
        in unseen
    # An actor trained on another observation set is its own row, named by it.
    share = [ln for ln in text.splitlines() if "600 episodes, observation amc+share" in ln]
    assert len(share) == 1 and "| yes (random: 50 episodes) |" in share[0]
    assert "Warm start" not in text
    assert transfer({"compare_x": results["compare_resnet20_flops0.5"]}, lambda r: []) == []


def test_report_names_a_reused_scratch_search_by_its_folder() -> None:
    """A warm start measured against a finished comparison's search shows that folder, not a
    rebuilt command it never ran under."""
    row = {"model": "resnet56", "budget": 0.5, "episodes": 300, "third": 100,
           "scratch": {"best": 0.745, "found_at": 127, "best_at_third": 0.734,
                       "heldout_acc": 0.754},
           "warm": {"first_episode_acc": 0.419, "best_at_third": 0.774, "heldout_acc": 0.767},
           "warm_episodes_to_scratch_best": 27, "meets_third": True, "command": "bench",
           "search_commands": {"scratch": "amc-search rebuilt", "warm": "amc-search warm"},
           "scratch_reused": "runs/x/search-amc-ddpg"}
    text = "\n".join(transfer({"warmstart_resnet56_flops0.5": row}, lambda r: []))
    assert "| 27 | yes (a third: 100) |" in text
    assert "scratch reused from `runs/x/search-amc-ddpg`" in text
    assert "amc-search rebuilt" not in text
    text = "\n".join(transfer({"warmstart_resnet56_flops0.5": {**row, "scratch_reused": None}},
                              lambda r: []))
    assert "`amc-search rebuilt`" in text
