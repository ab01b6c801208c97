"""``amc-apply`` fine-tuning under ``torchrun`` (amc_agent.env.distributed): two CPU processes
(gloo) train one pruned model data-parallel and only rank 0 measures and writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from amc_agent.cli import search
from amc_agent.env import distributed
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint

REPO = Path(__file__).resolve().parents[2]
DATA = ["--model", "cnn", "--dataset", "synthetic", "--eval-size", "32", "--no-progress"]


def test_two_gloo_processes_finetune_and_write_one_checkpoint(tmp_path) -> None:
    found = tmp_path / "search"
    assert search.main([*DATA, "--recalib-batches", "1", "--recalib-batch-size", "16",
                        "--wandb-mode", "disabled", "--agent", "random", "--episodes", "2",
                        "--rescore-top", "0", "--out", str(found)]) == 0
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "-m", "amc_agent.cli.apply", "--policy", str(found / "policy.json"), *DATA,
         "--finetune-epochs", "2", "--batch-size", "32", "--threads", "1",
         "--latency-time", "0.02", "--out", str(out / "pruned.pt")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(summaries) == 1  # rank 1 neither measures nor prints
    assert [p.name for p in out.iterdir()] == ["pruned.pt"]  # one file, no leftovers
    ckpt = load_checkpoint(out / "pruned.pt")
    history = ckpt["metrics"]["finetune_history"]
    # Both epochs ran (the two processes stayed in step to the end) and it learned.
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert ckpt["metrics"]["after_finetune"]["test_acc"] == summaries[0]["test_acc_finetuned"]
    model = model_from_checkpoint(ckpt).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 16, 16))).all()


def test_outside_torchrun_nothing_is_distributed(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not distributed.active() and distributed.is_main()
    assert distributed.setup("cpu") == "cpu"


def test_compare_under_torchrun_searches_once_and_finetunes_on_both(tmp_path) -> None:
    # Rank 0 searches and broadcasts; both processes fine-tune every strategy data-parallel;
    # rank 0 alone measures and writes, and its search is the one-process search.
    flags = [*DATA, "--recalib-batches", "1", "--recalib-batch-size", "16", "--wandb-mode",
             "disabled", "--episodes", "2", "--rescore-top", "0", "--threads", "1"]
    alone = tmp_path / "alone"
    assert search.main([*flags, "--agent", "random", "--out", str(alone)]) == 0
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "-m", "amc_agent.cli.compare", *flags, "--strategies", "random,uniform",
         "--finetune-epochs", "1", "--finetune-seeds", "2", "--batch-size", "32",
         "--latency-time", "0.02", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len([ln for ln in proc.stdout.splitlines() if ln.startswith("{")]) == 1
    results = json.loads((out / "results.json").read_text())
    rows = results["strategies"]
    assert list(rows) == ["random", "uniform"]
    assert rows["random"]["keep_ratios"] == json.loads(
        (alone / "policy.json").read_text())["keep_ratios"]
    for row in rows.values():
        assert len(row["test_acc_seeds"]) == 2 and None not in row["test_acc_seeds"]
        for history in row["finetune_histories"]:
            # Each process trained on half of every epoch: the other half ran on rank 1.
            assert [2 * h["images"] for h in history] == [results["config"]["finetune_images"]]
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy_vs_macs.png", "keep_ratios.png", "policy-random.json", "policy-uniform.json",
        "report.md", "results.json", "search-random", "search_curves.png"]
