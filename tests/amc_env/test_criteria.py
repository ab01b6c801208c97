"""Each criterion keeps the channels its definition says, on hand-built layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amc_agent.env.criteria import CRITERIA, Criterion, UnitContext, make_criterion
from amc_agent.env.errors import UserError
from amc_agent.env.surgery import Surgeon, full_group
from amc_agent.env.units import build_graph, discover_units

EXAMPLE = torch.zeros(1, 2, 6, 6)


def net(bn: bool = True) -> nn.Sequential:
    """conv(2->4, 1x1) [-> BN] -> ReLU -> conv(4->3, 1x1) -> pool -> linear: unit 0 is the first
    conv's 4 channels."""
    layers: list[nn.Module] = [nn.Conv2d(2, 4, 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.Conv2d(4, 3, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(3, 2)]
    return nn.Sequential(*layers).eval()


def context(model: nn.Module, batches=None) -> UnitContext:
    unit = discover_units(model, EXAMPLE)[0]
    s = Surgeon(model, EXAMPLE)
    return UnitContext(unit=unit, model=s.model, graph=s.graph, group=s.group(unit.name),
                       original=model, original_group=full_group(build_graph(model, EXAMPLE),
                                                                 model, unit.name),
                       calibration=batches or [], rng=torch.Generator().manual_seed(0))


def set_filters(model: nn.Module, rows: list[list[float]]) -> None:
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(rows).view(4, 2, 1, 1))


def test_l1_and_l2_keep_largest_norm_filters() -> None:
    model = net()
    # L1 norms 2.0, 1.5, 0.2, 1.6 ; L2 norms 1.41, 1.5, 0.2, 1.13: they disagree on 0 vs 3 and 1.
    set_filters(model, [[1.0, 1.0], [1.5, 0.0], [0.1, 0.1], [0.8, 0.8]])
    ctx = context(model)
    assert make_criterion("l1").select(ctx, 2) == [0, 3]
    assert make_criterion("l2").select(ctx, 2) == [0, 1]
    assert make_criterion("l1").select(ctx, 4) == [0, 1, 2, 3]


def test_slimming_keeps_largest_gammas() -> None:
    model = net()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -2.0, 0.01, 1.0]))
    assert make_criterion("slimming").select(context(model), 2) == [1, 3]
    with pytest.raises(UserError, match="needs BatchNorm"):
        make_criterion("slimming").select(context(net(bn=False)), 2)


def test_snip_drops_channels_the_loss_ignores() -> None:
    torch.manual_seed(0)
    model = net(bn=False)
    with torch.no_grad():
        model[2].weight[:, [1, 2]] = 0.0  # the consumer ignores channels 1 and 2
    batches = [(torch.randn(16, 2, 6, 6), torch.randint(0, 2, (16,)))]
    crit = make_criterion("snip")
    ctx = context(model, batches)
    s = crit.scores(ctx)
    assert s[1] == 0 and s[2] == 0 and s[0] > 0 and s[3] > 0
    assert crit.select(ctx, 2) == [0, 3]
    # |g * w| summed per channel, checked against autograd directly.
    model.zero_grad()
    nn.functional.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    w0, w2 = model[0].weight, model[2].weight
    expected = (w0.grad * w0).abs().flatten(1).sum(1) + \
        (w2.grad * w2).abs().transpose(0, 1).flatten(1).sum(1)
    assert torch.allclose(s.float(), expected.detach(), rtol=1e-4)


def test_random_is_seeded() -> None:
    model = net()
    a = make_criterion("random").select(context(model), 2)
    b = make_criterion("random").select(context(model), 2)
    assert a == b and len(a) == 2


def test_registry_and_custom_object() -> None:
    assert CRITERIA.names() == ["l1", "l2", "consumer-l1", "group-l1", "group-l2", "taylor",
                                "slimming", "snip",
                                "random", "thinet", "lasso"]

    class LastChannels(Criterion):
        name = "last"

        def scores(self, ctx: UnitContext) -> torch.Tensor:
            return torch.arange(ctx.unit.channels, dtype=torch.float64)

    crit = LastChannels()
    assert make_criterion(crit) is crit
    assert crit.select(context(net()), 3) == [1, 2, 3]
    with pytest.raises(UserError, match="unknown criterion"):
        make_criterion("obd")


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_prunes_a_resnet_unit(name: str) -> None:
    from tests.amc_env.helpers import make_env, run_episode

    info = run_episode(make_env("resnet20", criterion=name, budget=0.5, recalibrate=False), 0.5)
    assert 0.47 <= info["macs"] / info["original_macs"] <= 0.5
