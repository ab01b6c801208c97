"""Results from before the digest adopt a checkpoint's digest only when the checkpoint
reproduces their deterministic figures exactly; otherwise nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import adopt_digest, common
from tests.bench.test_result_network import _checkpoint

UNIFORM = {"keep_ratios": {"a": 0.5, "b": 0.625}, "val_acc_before_finetune": 0.903,
           "test_acc_before_finetune": 0.8941, "test_acc_seeds": [0.897, 0.8965, 0.8958]}


def _results(seed0: float) -> dict[str, Any]:
    return {"command": "amc-compare x", "original": {"test_acc": 0.9075},
            "strategies": {"uniform": {**UNIFORM, "test_acc_seeds": [seed0]}}}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(adopt_digest, "RESULTS", results)
    ckpt = _checkpoint(tmp_path / "net.pt", 1.0, "")
    witness = {"checkpoint": str(ckpt), "original": {"test_acc": 0.9075}, "base_test_acc": None,
               "strategies": {"uniform": UNIFORM, "amc-ddpg": {}},
               "compare_command": f"amc-compare --checkpoint {ckpt} --strategies amc-ddpg,uniform "
                                  f"--finetune-seeds 3 --out runs/old --threads 1"}
    (results / "compare_w.json").write_text(json.dumps(witness))
    (results / "search_old.json").write_text(json.dumps({"checkpoint": str(ckpt), "acc": 1}))
    (results / "search_other.json").write_text(json.dumps(
        {"checkpoint": str(ckpt), "checkpoint_sha256": "0" * 16}))
    (results / "search_elsewhere.json").write_text(json.dumps({"checkpoint": "x.pt"}))
    return results, ckpt


def _fake_compare(monkeypatch, ckpt: Path, seed0: float, calls: list[list[str]]) -> None:
    def run(argv: list[str]) -> int:
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(_results(seed0)))
        return 0
    monkeypatch.setattr(adopt_digest.compare, "main", run)


def test_an_exact_reproduction_adopts_the_digest(folder, tmp_path, monkeypatch, capsys) -> None:
    results, ckpt = folder
    calls: list[list[str]] = []
    _fake_compare(monkeypatch, ckpt, 0.897, calls)
    assert adopt_digest.main(["--checkpoint", str(ckpt), "--witness", "compare_w",
                              "--work", str(tmp_path / "w")]) == 0
    # The witness's own flags, only uniform, one fine-tune seed, a fresh folder.
    assert calls == [["--checkpoint", str(ckpt), "--strategies", "uniform", "--finetune-seeds",
                      "1", "--out", str(tmp_path / "w"), "--threads", "1"]]
    sha = common.checkpoint_sha256(ckpt)
    for name in ("compare_w", "search_old"):
        r = json.loads((results / f"{name}.json").read_text())
        assert r["checkpoint_sha256"] == sha
        assert r["checkpoint_sha256_adopted"]["witness"] == "compare_w"
    other = json.loads((results / "search_other.json").read_text())
    assert other["checkpoint_sha256"] == "0" * 16 and "checkpoint_sha256_adopted" not in other
    assert "checkpoint_sha256" not in json.loads((results / "search_elsewhere.json").read_text())
    assert "adopted by 2 results" in capsys.readouterr().out


def test_one_differing_figure_adopts_nothing(folder, tmp_path, monkeypatch, capsys) -> None:
    results, ckpt = folder
    before = {p.name: p.read_text() for p in results.iterdir()}
    _fake_compare(monkeypatch, ckpt, 0.8971, [])
    assert adopt_digest.main(["--checkpoint", str(ckpt), "--witness", "compare_w",
                              "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "uniform fine-tune seed 0 test_acc 0.8971 here, 0.897 there" in err[0]
    assert {p.name: p.read_text() for p in results.iterdir()} == before
    # A checkpoint whose own test accuracy differs is refused before any rerun.
    w = json.loads((results / "compare_w.json").read_text())
    (results / "compare_w.json").write_text(json.dumps({**w, "base_test_acc": 0.9}))
    assert adopt_digest.main(["--checkpoint", str(ckpt), "--witness", "compare_w",
                              "--work", str(tmp_path / "u")]) == 2
    assert "its test accuracy is None, the witness's 0.9" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
    # A witness that is not an undigested comparison at this path is refused.
    assert adopt_digest.main(["--checkpoint", str(ckpt), "--witness", "search_other",
                              "--work", str(tmp_path / "v")]) == 2
