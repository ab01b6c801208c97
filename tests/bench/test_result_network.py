"""A benchmark result names the network it was measured on (a digest of the checkpoint's
tensors), a rerun on another network at the same path never overwrites it, and the reports
never pool the two networks' rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from amc_agent.env.checkpoint import FORMAT, load_checkpoint
from bench import common, report_ladder
from tests.bench.test_report_ladder import _run


def _checkpoint(path: Path, weight: float, note: str) -> Path:
    """A minimal checkpoint file: one tensor and some metadata."""
    torch.save({"format": FORMAT, "recipe": {"name": "x"}, "dataset": "fashion-mnist",
                "state_dict": {"w": torch.full((2, 3), weight), "n": torch.tensor(3)},
                "metrics": {"note": note}}, path)
    load_checkpoint(path)  # what the benchmarks read must accept it
    return path


def test_the_digest_follows_the_tensors_not_the_metadata(tmp_path: Path) -> None:
    a = common.checkpoint_sha256(_checkpoint(tmp_path / "a.pt", 1.0, "first timing"))
    same = common.checkpoint_sha256(_checkpoint(tmp_path / "b.pt", 1.0, "another timing"))
    other = common.checkpoint_sha256(_checkpoint(tmp_path / "c.pt", 1.5, "first timing"))
    assert a == same != other and len(a) == 16


def test_a_result_from_another_network_at_the_same_path_is_kept(tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    ckpt = tmp_path / "net.pt"
    _checkpoint(ckpt, 1.0, "")
    first = common.write_result("search_x", {"checkpoint": str(ckpt), "acc": 0.9})
    digest = json.loads(first.read_text())["checkpoint_sha256"]
    assert digest == common.checkpoint_sha256(ckpt)
    # The same network again replaces its own result.
    assert common.write_result("search_x", {"checkpoint": str(ckpt), "acc": 0.91}) == first
    _checkpoint(ckpt, 2.0, "")  # trained again into another network
    second = common.write_result("search_x", {"checkpoint": str(ckpt), "acc": 0.5})
    new = common.checkpoint_sha256(ckpt)
    assert second.name == f"search_x_{new}.json"
    assert json.loads(first.read_text())["acc"] == 0.91  # nothing lost
    assert json.loads(second.read_text())["benchmark"] == f"search_x_{new}"
    # A result from before digests were recorded is kept too.
    legacy = common.RESULTS / "search_y.json"
    legacy.write_text(json.dumps({"benchmark": "search_y", "checkpoint": str(ckpt)}))
    assert common.write_result("search_y", {"checkpoint": str(ckpt)}).name \
        == f"search_y_{new}.json"
    assert "checkpoint_sha256" not in json.loads(legacy.read_text())


@pytest.fixture()
def no_plot(monkeypatch) -> None:
    monkeypatch.setattr(report_ladder, "_ladder_plot",
                        lambda *a: report_ladder.ROOT / "bench" / "x.png")


def test_the_ladder_never_pools_two_networks_at_one_path(no_plot) -> None:
    def run(budget: float, seed: int, acc: float, sha: str | None) -> dict[str, Any]:
        r = _run(budget, seed, {"amc-ddpg": [acc, acc], "uniform": [acc - 0.01, acc - 0.01]})
        return r | ({"checkpoint_sha256": sha} if sha else {})

    results = {"compare_a": run(0.5, 0, 0.90, None), "compare_b": run(0.3, 0, 0.80, None),
               "compare_c": run(0.5, 1, 0.70, "abc"), "compare_d": run(0.3, 1, 0.60, "abc")}
    text = "\n".join(report_ladder.ladder_section(results))
    assert text.count("## Difficulty ladder") == 2
    assert "## Difficulty ladder (`runs/r20.pt`, criterion" in text
    assert "## Difficulty ladder (`runs/r20.pt` (weights abc), criterion" in text
    assert "(2 search seeds)" not in text  # seed 1 ran on the other network
