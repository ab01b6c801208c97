"""The validation split belongs to the checkpoint: recorded by ``amc-train``, rebuilt by every
later command whatever its ``--seed``, never overlapping the images the model trained on."""

from __future__ import annotations

import sys

import pytest
import torch

from amc_agent.cli import apply, compare, search, train
from amc_agent.env import datasets as D
from amc_agent.env import env as env_module
from amc_agent.env.checkpoint import load_checkpoint
from amc_agent.policies import finetune as finetune_module

DATA = ["--dataset", "synthetic", "--no-progress"]
FAST = ["--eval-size", "32", "--recalib-batches", "1", "--recalib-batch-size", "16",
        "--wandb-mode", "disabled"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    """A checkpoint trained with --seed 5 and the indices of the images it trained on."""
    out = tmp_path_factory.mktemp("ckpt") / "base.pt"
    seen: list[int] = []
    real = train.make_loader

    def spy(dataset, *args, **kwargs):
        if kwargs.get("shuffle"):
            seen.extend(dataset.indices)
        return real(dataset, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(train, "make_loader", spy)
    try:
        assert train.main(["--model", "cnn", *DATA, "--epochs", "1", "--batch-size", "64",
                           "--seed", "5", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out, set(seen)


def test_train_records_its_split(trained) -> None:
    path, seen = trained
    split = load_checkpoint(path)["split"]
    assert split == {"dataset": "synthetic", "seed": 0, "val_size": 128, "train_size": 512,
                     "image_size": 16, "augment": "none"}
    _, val = D.held_out_split(512, 128, 0)
    assert len(seen) == 512 - 128 and not seen & set(val)


def _capture_env_data(monkeypatch) -> list:
    captured = []
    real_init = env_module.ChannelPruningEnv.__init__

    def init(self, model, data, *args, **kwargs):
        captured.append(data)
        real_init(self, model, data, *args, **kwargs)

    monkeypatch.setattr(env_module.ChannelPruningEnv, "__init__", init)
    return captured


@pytest.mark.parametrize("seed", ["0", "1", "7"])
def test_no_training_image_reaches_a_reward(trained, tmp_path, monkeypatch, seed) -> None:
    path, seen = trained
    captured = _capture_env_data(monkeypatch)
    tuned: list = []
    real_loader = finetune_module.make_loader
    def spy(ds, *args, **kwargs):
        if kwargs.get("shuffle"):  # the fine-tuning loader (test-split loaders never shuffle)
            tuned.append(ds)
        return real_loader(ds, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "make_loader", spy)
    assert search.main(["--checkpoint", str(path), *DATA, *FAST, "--agent", "random",
                        "--episodes", "2", "--seed", seed, "--out", str(tmp_path / "s")]) == 0
    assert compare.main(["--checkpoint", str(path), *DATA, *FAST, "--strategies", "uniform",
                         "--finetune-epochs", "1", "--latency-time", "0.01", "--seed", seed,
                         "--out", str(tmp_path / "c")]) == 0
    assert len(captured) >= 2
    for data in captured:
        reward_set = set(data.val.indices)  # episodes and re-scoring both draw from it
        assert len(reward_set) == 128 and not reward_set & seen
        assert set(data.train.indices) == seen  # fine-tuning uses the training images only
    assert tuned and all(set(ds.indices) == seen for ds in tuned)


def test_a_conflicting_split_is_refused(trained, tmp_path, monkeypatch, capsys) -> None:
    path, _ = trained
    for flags in (["--val-size", "64"], ["--split-seed", "3"]):
        monkeypatch.setattr(sys, "argv", ["amc-search", "--checkpoint", str(path), *DATA,
                                          *FAST, *flags, "--out", str(tmp_path / "o")])
        with pytest.raises(SystemExit) as exc:
            search.entry()
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1
        assert "would score on images it trained on" in err[0] and flags[0] in err[0]
        assert not (tmp_path / "o").exists()
    # Restating the recorded split is fine.
    assert search.main(["--checkpoint", str(path), *DATA, *FAST, "--val-size", "128",
                        "--split-seed", "0", "--agent", "random", "--episodes", "1",
                        "--out", str(tmp_path / "ok")]) == 0


def test_old_checkpoint_without_record_needs_split_seed(trained, tmp_path, monkeypatch,
                                                        capsys) -> None:
    path, _ = trained
    ckpt = torch.load(path, weights_only=True)
    del ckpt["split"]
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    monkeypatch.setattr(sys, "argv", ["amc-search", "--checkpoint", str(old), *DATA, *FAST,
                                      "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exc:
        search.entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--split-seed" in err[0]
    assert not (tmp_path / "o").exists()
    assert search.main(["--checkpoint", str(old), *DATA, *FAST, "--split-seed", "0",
                        "--agent", "random", "--episodes", "1", "--out",
                        str(tmp_path / "s")]) == 0


def test_split_travels_into_derived_checkpoints(trained, tmp_path) -> None:
    path, _ = trained
    record = load_checkpoint(path)["split"]
    more = tmp_path / "more.pt"
    assert train.main(["--checkpoint", str(path), *DATA, "--epochs", "1", "--seed", "9",
                       "--out", str(more)]) == 0
    assert load_checkpoint(more)["split"] == record
    s = tmp_path / "s"
    assert search.main(["--checkpoint", str(path), *DATA, *FAST, "--agent", "random",
                        "--episodes", "2", "--seed", "4", "--out", str(s)]) == 0
    pruned = tmp_path / "pruned.pt"
    assert apply.main(["--policy", str(s / "policy.json"), "--checkpoint", str(path), *DATA,
                       "--finetune-epochs", "1", "--seed", "2", "--latency-time", "0.01",
                       "--out", str(pruned)]) == 0
    assert load_checkpoint(pruned)["split"] == record


def test_a_resized_dataset_cannot_rebuild_the_split(trained, monkeypatch) -> None:
    path, _ = trained
    ckpt = load_checkpoint(path)
    ckpt["split"] = {**ckpt["split"], "train_size": 600}
    with pytest.raises(D.UserError, match="cannot be rebuilt"):
        D.load_checkpoint_data(ckpt)
