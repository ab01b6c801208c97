"""``amc-train`` on a user's pretrained model with its own layer subclasses: the checkpoint
rebuilds exactly the network that was trained (issue 14)."""

from __future__ import annotations

import functools

import pytest
import torch

import amc_agent.env.datasets as datasets_module
from amc_agent.cli import train
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.training import evaluate
from tests.custom_layers import SameConv2d, ScaledLinear, WSConv2d, make


@pytest.fixture
def grey_ten_class_synthetic(monkeypatch) -> functools.partial:
    """``--dataset synthetic`` with 1-channel images and 10 classes (its defaults are 3 and 4),
    so a 3-channel, 7-class weights file needs both its stem and its head adapted."""
    data = functools.partial(datasets_module.synthetic, in_channels=1, num_classes=10)
    monkeypatch.setitem(datasets_module.DATASETS._entries, "synthetic", data)
    return data


def test_trained_user_model_reloads_identically(tmp_path, monkeypatch,
                                                grey_ten_class_synthetic) -> None:
    weights = tmp_path / "user.pth"
    torch.save(make(num_classes=7, in_channels=3).state_dict(), weights)
    trained = []
    real_save = train.save_checkpoint

    def spy(path, model, *args, **kwargs):  # the model in memory at each write
        trained.append(model)
        real_save(path, model, *args, **kwargs)

    monkeypatch.setattr(train, "save_checkpoint", spy)
    out = tmp_path / "m.pt"
    assert train.main(["--model", "tests.custom_layers:make", "--weights", str(weights),
                       "--dataset", "synthetic", "--epochs", "1", "--batch-size", "64",
                       "--no-progress", "--out", str(out)]) == 0
    ckpt = load_checkpoint(out)
    rebuilt = model_from_checkpoint(ckpt).eval()
    assert [type(rebuilt[i]) for i in (0, 3, 8)] == [SameConv2d, WSConv2d, ScaledLinear]
    assert [type(trained[-1][i]) for i in (0, 3, 8)] == [SameConv2d, WSConv2d, ScaledLinear]
    test = grey_ten_class_synthetic().test
    x = torch.stack([test[i][0] for i in range(16)])
    with torch.no_grad():
        assert torch.equal(rebuilt(x), trained[-1].eval()(x))
    loader = torch.utils.data.DataLoader(test, batch_size=512)
    again = evaluate(rebuilt, loader, torch.device("cpu"))
    assert again.acc == ckpt["metrics"]["test_acc"] and again.loss == ckpt["metrics"]["test_loss"]


def test_a_model_its_recipe_cannot_rebuild_is_refused_before_training(tmp_path,
                                                                      monkeypatch) -> None:
    from amc_agent.cli import cli
    from amc_agent.env import training

    real = cli.resolve_model

    def drifted(*args, **kwargs):
        model, recipe, ckpt = real(*args, **kwargs)
        model.features[2] = torch.nn.Tanh()  # not what the recipe "cnn" builds
        return model, recipe, ckpt

    monkeypatch.setattr(cli, "resolve_model", drifted)
    epochs: list[int] = []
    monkeypatch.setattr(training, "train_one_epoch",
                        lambda *a, **k: epochs.append(1))
    out = tmp_path / "m.pt"
    with pytest.raises(train.UserError, match="cannot train 'cnn'.*features.2"):
        train.main(["--model", "cnn", "--dataset", "synthetic", "--epochs", "1",
                    "--no-progress", "--out", str(out)])
    assert not epochs and not out.exists()
