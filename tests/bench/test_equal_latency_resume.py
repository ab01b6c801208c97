"""bench_equal_latency ``--resume``: a finished search with the same flags is reused, an
unfinished one continued, one with other flags started again."""

from __future__ import annotations

import argparse

import pytest

from amc_agent.cli import search as search_cli
from amc_agent.cli import train
from bench import bench_equal_latency as bench


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    assert train.main(["--model", "cnn", "--dataset", "synthetic", "--epochs", "1",
                       "--no-progress", "--out", str(path)]) == 0
    return path


def test_resume_reuses_continues_or_restarts(checkpoint, tmp_path, monkeypatch) -> None:
    runs: list[list[str]] = []

    def run(cmd, check):  # amc-search in this process, so the test sees every call
        runs.append(cmd[3:])
        assert search_cli.main(cmd[3:]) == 0

    monkeypatch.setattr(bench.subprocess, "run", run)
    args = argparse.Namespace(checkpoint=checkpoint, episodes=2, round_to=8, strict_round=False,
                              seed_policies="", drop_dominated_counts=False, search_seed=0,
                              threads=None, device="cpu", eval_size=64, batch=1,
                              backend="eager", resume=True)
    out = tmp_path / "flops"
    bench.search(args, "flops", 0.5, out)
    assert len(runs) == 1 and "--resume" not in runs[0]
    assert (out / bench.LAST_WRITTEN["flops"]).exists()
    episodes = (out / "episodes.jsonl").read_text()

    bench.search(args, "flops", 0.5, out)  # finished, same flags: nothing runs
    assert len(runs) == 1 and (out / "episodes.jsonl").read_text() == episodes

    (out / bench.LAST_WRITTEN["flops"]).unlink()  # killed after its last episode
    bench.search(args, "flops", 0.5, out)
    assert runs[-1][-1] == "--resume" and (out / bench.LAST_WRITTEN["flops"]).exists()
    assert (out / "episodes.jsonl").read_text() == episodes

    bench.search(args, "flops", 0.6, out)  # another budget: a new search
    assert len(runs) == 3 and "--resume" not in runs[-1]
    assert not bench.same_search(out, ["python", "-m", "amc_agent.cli.search", *runs[0]])

    args.resume = False  # without --resume a search always starts afresh
    bench.search(args, "flops", 0.6, out)
    assert len(runs) == 4 and "--resume" not in runs[-1]
