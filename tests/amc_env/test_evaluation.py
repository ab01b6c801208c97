"""BN recalibration and the fixed validation subset."""

from __future__ import annotations

import torch
from torch import nn

from amc_agent.env.datasets import load_dataset
from amc_agent.env.evaluation import accuracy, recalibrate_bn, take_batches


def test_recalibration_is_exact_average_over_batches() -> None:
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5)
    model = nn.Sequential(conv, bn).eval()
    batches = [(torch.randn(8, 3, 6, 6) + i, torch.zeros(8)) for i in range(3)]
    recalibrate_bn(model, batches)
    with torch.no_grad():
        feats = [conv(x) for x, _ in batches]
    # Cumulative average of per-batch means (equal batch sizes): the mean over all images.
    expected = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert not model.training and bn.momentum == 0.1


def test_take_batches_is_fixed_and_sized() -> None:
    data = load_dataset("synthetic")
    a = take_batches(data.val, 50, 16, "cpu")
    b = take_batches(data.val, 50, 16, "cpu")
    assert [len(y) for _, y in a] == [16, 16, 16, 2]
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b, strict=True))
    shuffled = take_batches(data.train_plain, 32, 32, "cpu", seed=1)
    assert not torch.equal(shuffled[0][0], take_batches(data.train_plain, 32, 32, "cpu")[0][0])


def test_accuracy_counts_correct_fraction() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    y = torch.tensor([0, 1, 1, 1])
    assert accuracy(model, [(x, y)]) == 0.75
