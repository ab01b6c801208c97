"""Group-level criteria score everything a channel carries across its coupled group, on a
hand-built residual stage where scoring the producers alone picks other channels."""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from amc_agent.env.criteria import make_criterion
from tests.amc_env.helpers import make_env
from tests.amc_env.test_criteria import context


class Stage(nn.Module):
    """stem conv+BN, one residual block (conv1+BN, conv2+BN) added to the stem, a head conv and
    a classifier. The residual stream is one unit: members stem, bn0, conv2, bn2; consumers
    conv1 and head (input columns)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(2, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.head, self.fc = nn.Conv2d(4, 3, 1, bias=False), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn0(self.stem(x))
        b = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(torch.relu(a))))))
        return self.fc(self.head(torch.relu(a + b)).mean((2, 3)))


def stage() -> Stage:
    torch.manual_seed(0)
    m = Stage().eval()
    with torch.no_grad():
        # Producers: channel 0 has the largest filters, channel 3 the smallest ...
        m.stem.weight.copy_(torch.tensor([[2.0, 2.0], [1.0, 1.0], [1.0, 1.0], [0.3, 0.3]])[
            ..., None, None])
        m.conv2.weight.copy_(torch.tensor([2.0, 1.0, 1.0, 0.3])[:, None, None, None]
                             * torch.ones(4, 4, 1, 1))
        # ... but the BN scales and every consumer column weigh channel 3 most, channel 0 least.
        for bn in (m.bn0, m.bn2):
            bn.weight.copy_(torch.tensor([0.01, 1.0, 1.0, 6.0]))
        m.conv1.weight.copy_(torch.tensor([0.01, 1.0, 1.0, 6.0])[None, :, None, None]
                             * torch.ones(4, 4, 1, 1))
        m.head.weight.copy_(torch.tensor([0.01, 1.0, 1.0, 6.0])[None, :, None, None]
                            * torch.ones(3, 4, 1, 1))
    return m


def test_group_l1_sums_every_member_bn_scale_and_consumer_column() -> None:
    m = stage()
    ctx = context(m)
    assert ctx.unit.name == "stem"
    assert set(ctx.unit.members) == {"stem", "bn0", "conv2", "bn2"}
    assert set(ctx.unit.consumers) == {"conv1", "head"}
    # Producer filters only (l1) keep channel 0; the whole group keeps channel 3.
    assert make_criterion("l1").select(ctx, 3) == [0, 1, 2]
    assert make_criterion("group-l1").select(ctx, 3) == [1, 2, 3]
    per_item = [m.stem.weight.abs().flatten(1).sum(1), m.bn0.weight.abs(),
                m.conv2.weight.abs().flatten(1).sum(1), m.bn2.weight.abs(),
                m.conv1.weight.abs().transpose(0, 1).flatten(1).sum(1),
                m.head.weight.abs().transpose(0, 1).flatten(1).sum(1)]
    expected = torch.stack(per_item).mean(0).detach()
    expected /= expected.mean()
    s = make_criterion("group-l1").scores(ctx)
    assert torch.allclose(s.float(), expected, rtol=1e-5)
    squares = torch.stack([m.stem.weight.pow(2).flatten(1).sum(1), m.bn0.weight.pow(2),
                           m.conv2.weight.pow(2).flatten(1).sum(1), m.bn2.weight.pow(2),
                           m.conv1.weight.pow(2).transpose(0, 1).flatten(1).sum(1),
                           m.head.weight.pow(2).transpose(0, 1).flatten(1).sum(1)]).mean(0)
    assert torch.allclose(make_criterion("group-l2").scores(ctx).float(),
                          (squares / squares.mean()).detach(), rtol=1e-5)


def test_taylor_is_the_squared_first_order_loss_change_of_the_whole_channel() -> None:
    m = stage()
    batches = [(torch.randn(8, 2, 6, 6), torch.randint(0, 2, (8,))) for _ in range(3)]
    ctx = context(m, batches)
    s = make_criterion("taylor").scores(ctx)
    assert all(p.grad is None for p in m.parameters())  # the criterion leaves no gradients
    z = []
    for x, y in batches:
        m.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()

        def gw(p: torch.Tensor) -> torch.Tensor:
            return (p.grad * p).detach()

        z.append(gw(m.stem.weight).flatten(1).sum(1) + gw(m.bn0.weight) + gw(m.bn0.bias)
                 + gw(m.conv2.weight).flatten(1).sum(1) + gw(m.bn2.weight) + gw(m.bn2.bias)
                 + gw(m.conv1.weight).transpose(0, 1).flatten(1).sum(1)
                 + gw(m.head.weight).transpose(0, 1).flatten(1).sum(1))
    expected = torch.stack(z).pow(2).mean(0)
    assert torch.allclose(s.float(), expected, rtol=1e-4, atol=1e-12)


def test_group_l2_keeps_what_torch_pruning_keeps() -> None:
    """Per unit, ``group-l2`` keeps exactly the channels Torch-Pruning's pruner keeps with its
    default importance at the same width (ResNet-20, every unit)."""
    env = make_env("resnet20", criterion="group-l2", budget=0.5, recalibrate=False)
    pruner = tp.pruner.MetaPruner(env.model, env.example,
                                  importance=tp.importance.GroupMagnitudeImportance(),
                                  pruning_ratio=0.4,
                                  ignored_layers=[env.model.get_submodule("fc")])
    removed = {}
    names = {mod: n for n, mod in env.model.named_modules()}
    for group in pruner.step(interactive=True):
        removed[names[group[0].dep.target.module]] = sorted(group[0].idxs)
    env.reset(seed=0)
    checked = 0
    for u in env.units:
        root = next(n for n in u.members if n in removed)
        gone = removed[root]
        keep = env.criterion.select(env.unit_context(u), u.channels - len(gone))
        assert sorted(set(range(u.channels)) - set(keep)) == gone, u.name
        checked += 1
    assert checked == env.n_units


def test_consumer_l1_ranks_by_the_readers_input_columns() -> None:
    # AMC's ranking: the L1 norm of each channel's columns in conv1 and head (the unit's
    # consumers), summed; the producers and BN scales play no part.
    m = stage()
    with torch.no_grad():
        m.head.weight[:, 1] = 0.0  # channel 1 now weighs less than 2 in the readers
    ctx = context(m)
    expected = (m.conv1.weight.abs().sum((0, 2, 3)) + m.head.weight.abs().sum((0, 2, 3))).double()
    assert torch.allclose(make_criterion("consumer-l1").scores(ctx), expected.detach())
    assert make_criterion("consumer-l1").select(ctx, 2) == [2, 3]
    assert make_criterion("l1").select(ctx, 2) == [0, 1]

