"""The input belongs to the checkpoint (issue 14): ``--image-size`` changes the input shape end to
end (train, search, apply) and is refused when it differs from what the model was trained on; a
small image folder trains, searches and compares with default flags."""

from __future__ import annotations

import json

import pytest
import torch

from amc_agent.cli import apply, compare, search, train
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy
from tests.amc_env.test_datasets import _folder

FAST = ["--eval-size", "32", "--recalib-batches", "1", "--recalib-batch-size", "16",
        "--wandb-mode", "disabled", "--no-progress"]


def test_image_size_runs_end_to_end(tmp_path) -> None:
    ckpt = tmp_path / "base.pt"
    assert train.main(["--model", "cnn", "--dataset", "synthetic", "--image-size", "20",
                       "--epochs", "1", "--batch-size", "64", "--no-progress",
                       "--out", str(ckpt)]) == 0
    assert load_checkpoint(ckpt)["split"]["image_size"] == 20
    s = tmp_path / "s"
    assert search.main(["--checkpoint", str(ckpt), *FAST, "--agent", "random", "--episodes", "2",
                        "--out", str(s)]) == 0
    assert Policy.load(s / "policy.json").input_shape == [3, 20, 20]
    with pytest.raises(UserError, match="trained on 20x20 inputs; --image-size 16"):
        search.main(["--checkpoint", str(ckpt), *FAST, "--image-size", "16", "--agent",
                     "random", "--episodes", "1", "--out", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()
    pruned = tmp_path / "pruned.pt"
    assert apply.main(["--policy", str(s / "policy.json"), "--checkpoint", str(ckpt),
                       "--eval-size", "32", "--finetune-epochs", "0", "--latency-time", "0.01",
                       "--no-progress", "--out", str(pruned)]) == 0
    saved = load_checkpoint(pruned)
    assert saved["split"]["image_size"] == 20 and saved["pruning"]["input_shape"] == [3, 20, 20]
    assert model_from_checkpoint(saved).eval()(torch.randn(2, 3, 20, 20)).shape == (2, 4)


def test_small_image_folder_with_default_flags(tmp_path, monkeypatch, capsys) -> None:
    """Tens of 12x12 images per class: the defaults hold out a tenth for validation, keep the
    images' own size and do not flip them."""
    monkeypatch.chdir(tmp_path)
    folder = _folder(tmp_path / "digits", 3, 30, (12, 12), val_per_class=5)
    data = ["--dataset", f"imagefolder:{folder}", "--no-progress"]
    ckpt = tmp_path / "base.pt"
    assert train.main(["--model", "cnn", *data, "--epochs", "1", "--out", str(ckpt)]) == 0
    assert load_checkpoint(ckpt)["split"] == {
        "dataset": f"imagefolder:{folder}", "seed": 0, "val_size": 9, "train_size": 90,
        "image_size": 12, "augment": "crop"}
    assert search.main(["--checkpoint", str(ckpt), "--agent", "random", "--episodes", "3",
                        "--wandb-mode", "disabled", "--no-progress",
                        "--out", str(tmp_path / "s")]) == 0
    assert Policy.load(tmp_path / "s" / "policy.json").input_shape == [3, 12, 12]
    capsys.readouterr()
    assert compare.main(["--checkpoint", str(ckpt), "--strategies", "uniform,random",
                         "--episodes", "2", "--wandb-mode", "disabled", "--latency-time", "0.01",
                         "--no-progress", "--out", str(tmp_path / "c")]) == 0
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert results["config"]["image_size"] == 12 and results["config"]["augment"] == "crop"
    assert set(results["strategies"]) == {"uniform", "random"}
    assert all(r["budget_ok"] for r in results["strategies"].values())
