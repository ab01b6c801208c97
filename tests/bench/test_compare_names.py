"""bench_compare's result names: one file per (model, target, budget, criterion, variant, tag,
search seed), so a reconstruction ladder never overwrites the default criterion's rung; and a
rerun of an interrupted comparison resumes it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from bench.bench_compare import finished, result_name, resumed


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


def test_a_finished_comparison_is_reread_only_for_the_same_flags(tmp_path: Path) -> None:
    """A folder finished with other strategies (say, without the transferred actor) must not
    stand in for this comparison: it is resumed with this run's flags instead."""
    work = tmp_path / "w"
    argv = ["--budget", "0.3", "--strategies", "random,uniform", "--out", str(work)]
    assert not finished(work, argv)  # nothing there
    work.mkdir()
    (work / "results.json").write_text(json.dumps(
        {"command": "amc-compare " + shlex.join([*argv, "--resume"])}))
    assert finished(work, argv)  # the same run, resumed once: re-read
    other = ["--budget", "0.3", "--strategies", "transfer,random,uniform", "--out", str(work),
             "--transfer", "actor"]
    assert not finished(work, other)
    assert resumed(other, work) == [*other, "--resume"]
