"""The shared training/evaluation loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amc_agent.env.datasets import load_dataset, make_loader
from amc_agent.env.models import build_model
from amc_agent.env.training import Diverged, TrainConfig, evaluate, fit

RECIPE = {"name": "cnn", "kwargs": {"in_channels": 3, "num_classes": 4, "widths": (8, 8, 16)}}


def _gammas(model: nn.Module) -> torch.Tensor:
    return torch.cat([m.weight.detach().abs() for m in model.modules()
                      if isinstance(m, nn.BatchNorm2d)])


def test_fit_learns_synthetic_data() -> None:
    data = load_dataset("synthetic")
    model = build_model(RECIPE)
    loader = make_loader(data.train, 32, shuffle=True)
    before = evaluate(model, make_loader(data.val, 64), "cpu").acc
    hist = fit(model, loader, TrainConfig(epochs=3, lr=0.05), "cpu", progress=False)
    after = evaluate(model, make_loader(data.val, 64), "cpu").acc
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert after > 0.9 and after > before


def test_slimming_penalty_shrinks_bn_gammas() -> None:
    data = load_dataset("synthetic")
    loader = make_loader(data.train, 32, shuffle=True)
    norms = []
    for lam in (0.0, 5e-2):
        torch.manual_seed(0)
        model = build_model(RECIPE)
        fit(model, loader, TrainConfig(epochs=2, lr=0.05, slimming_lambda=lam,
                                       weight_decay=0.0), "cpu", progress=False)
        norms.append(_gammas(model).sum().item())
    assert norms[1] < 0.9 * norms[0]


def test_a_nan_loss_stops_training_at_that_step() -> None:
    data = load_dataset("synthetic")
    model = build_model(RECIPE)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")  # every logit row turns NaN from the first batch
    saved = []
    with pytest.raises(Diverged, match=r"epoch 1/2, step 1: loss nan") as exc:
        fit(model, make_loader(data.train, 32), TrainConfig(epochs=2), "cpu",
            on_epoch_end=lambda e, state: saved.append(e), progress=False)
    assert exc.value.step == 1 and saved == []  # no epoch of broken weights was checkpointed
