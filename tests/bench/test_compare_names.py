"""bench_compare's result names: one file per (model, target, budget, criterion, variant, tag,
search seed), so a reconstruction ladder never overwrites the default criterion's rung; and a
rerun of an interrupted comparison resumes it."""

from __future__ import annotations

from pathlib import Path

from bench.bench_compare import result_name, resumed


def test_a_criterion_other_than_the_default_gets_its_own_file() -> None:
    assert result_name("resnet20", "flops", 0.2, "group-l2") == "compare_resnet20_flops0.2"
    rec = result_name("resnet20", "flops", 0.2, "group-l2+reconstruct")
    assert rec == "compare_resnet20_flops0.2_group-l2-reconstruct"
    assert result_name("resnet20", "flops", 0.35, "group-l2+reconstruct", "unseen", "heur",
                       1) == "compare_resnet20_flops0.35_group-l2-reconstruct_unseen_heur_s1"
    names = {result_name("r", "flops", 0.5, c, v, t, s) for c in ("group-l2", "l1", "thinet")
             for v in ("", "scratch") for t in ("", "x") for s in (0, 1)}
    assert len(names) == 24


def test_an_interrupted_comparison_is_resumed_and_a_fresh_one_is_not(tmp_path: Path) -> None:
    argv = ["--budget", "0.3", "--out", str(tmp_path / "w")]
    assert resumed(argv, tmp_path / "w") == argv  # no folder yet
    (tmp_path / "w").mkdir()
    assert resumed(argv, tmp_path / "w") == argv  # an empty folder is a fresh start
    (tmp_path / "w" / "search-amc-ddpg").mkdir()
    assert resumed(argv, tmp_path / "w") == [*argv, "--resume"]
    assert resumed([*argv, "--resume"], tmp_path / "w").count("--resume") == 1
