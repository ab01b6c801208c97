"""Operations Torch-Pruning cannot map (a channel shuffle, an unknown-width concatenation) leave
only the channels they touch unpruned; everything else prunes with exact cost, the right channels
(checked against masking), and a bit-identical export. Channels tied at a fixed stride (a GhostNet
module's depthwise copies) are cut in balanced blocks; a conv subclass's own per-filter parameters
(NF-ResNet's gain) are cut with its filters."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.shufflenetv2 import InvertedResidual

from amc_agent.env.cost import count_macs
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.surgery import Surgeon
from amc_agent.env.units import discover_units
from amc_agent.policies.heuristics import HEURISTICS
from tests.amc_env.helpers import FAST, check_exact_cost_and_export, synthetic

EXAMPLE = torch.zeros(1, 3, 16, 16)


class ShuffleNet(nn.Module):
    """Stem, a downsampling and a basic ShuffleNetV2 block (torchvision's, channel shuffle
    included), a 1x1 conv and the head."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.stage = nn.Sequential(InvertedResidual(16, 32, 2), InvertedResidual(32, 32, 1))
        self.conv5 = nn.Sequential(nn.Conv2d(32, 48, 1, bias=False), nn.BatchNorm2d(48),
                                   nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv5(self.stage(self.stem(x))))


class GhostNet(nn.Module):
    """A GhostNet-style module inside a residual: a 1x1 "primary" conv and a depthwise "cheap"
    copy of it, concatenated into the 16-channel stream the stem writes."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32),
                                    nn.ReLU())
        self.primary = nn.Sequential(nn.Conv2d(32, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.cheap = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                                   nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        p = self.primary(self.expand(x))
        return self.head(torch.relu(x + torch.cat([p, self.cheap(p)], dim=1)))


class GainConv2d(nn.Conv2d):
    """NF-ResNet's scaled weight-standardised conv: the weight is standardised per filter
    through reshapes and ``F.batch_norm`` in ``forward`` and scaled by a learned per-filter gain
    (a parameter of shape (out, 1, 1, 1) that Torch-Pruning does not know about)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 3, padding=1)
        self.gain = nn.Parameter(torch.rand(cout, 1, 1, 1) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0.0, eps=1e-5).reshape_as(self.weight)
        return self._conv_forward(x, w * self.gain, self.bias)


class NFNet(nn.Module):
    """Two gain convs in a residual, without BatchNorm."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = GainConv2d(3, 16)
        self.conv1 = GainConv2d(16, 24)
        self.conv2 = GainConv2d(24, 16)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        return self.head(x + self.conv2(torch.relu(self.conv1(x))))


def _net(cls: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    net = cls().eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, so masking checks mean something
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net


def test_shuffle_leaves_only_the_shuffled_channels_unpruned() -> None:
    with pytest.warns(UserWarning, match=r"left unpruned: .*stage\.1\.branch2\.5 "
                                         r"\((coupled through|cannot map)"):
        units = {u.name for u in discover_units(_net(ShuffleNet), EXAMPLE)}
    # The stem feeds both branches of the downsampling block (not the shuffle); each branch's
    # inner width and the 1x1 conv after the stage are free; the stage's shuffled width is not.
    assert units == {"stem.0", "stage.0.branch2.0", "stage.1.branch2.0", "conv5.0"}


def test_pruning_next_to_a_shuffle_cuts_the_intended_channels() -> None:
    # Removing inner channels of a basic block's branch equals zeroing their columns in the
    # branch's last 1x1 conv on the unpruned network: the dependency mapping is right, not just
    # shape-compatible.
    net = _net(ShuffleNet)
    surgeon = Surgeon(net, EXAMPLE)
    keep = [0, 2, 3, 7, 9, 10, 14]
    surgeon.prune("stage.1.branch2.0", keep)
    masked = _net(ShuffleNet)
    drop = [i for i in range(16) if i not in keep]
    with torch.no_grad():
        masked.stage[1].branch2[5].weight[:, drop] = 0
        x = torch.randn(3, 3, 16, 16)
        torch.testing.assert_close(surgeon.model.eval()(x), masked(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", [ShuffleNet, GhostNet, NFNet])
@pytest.mark.parametrize("seed", [0, 1])
def test_prunes_with_exact_cost_and_identical_export(cls: type[nn.Module], seed: int) -> None:
    env = ChannelPruningEnv(_net(cls), synthetic(), **FAST, budget=0.5)
    info = env.play(HEURISTICS.get("random")(env, seed=seed))
    check_exact_cost_and_export(env, info, lambda: _net(cls), 0.5)


def test_channels_tied_by_a_depthwise_copy_are_cut_in_balanced_blocks() -> None:
    units = {u.name: u for u in discover_units(_net(GhostNet), EXAMPLE)}
    # Removing stream channel i removes the primary channel, hence its cheap copy at i + 8.
    assert units["stem.0"].channel_groups == 2
    env = ChannelPruningEnv(_net(GhostNet), synthetic(), **FAST, budget=0.6)
    env.play({"stem.0": 0.5, "expand.0": 1.0})
    kept = env._surgeon.kept["stem.0"]
    assert len(kept) == 8 and [i + 8 for i in kept if i < 8] == [i for i in kept if i >= 8]
    pruned = env.pruned_model()
    assert (pruned.primary[0].out_channels, pruned.cheap[0].out_channels) == (4, 4)


def test_a_conv_subclass_keeps_its_own_per_filter_parameters_in_step() -> None:
    env = ChannelPruningEnv(_net(NFNet), synthetic(), **FAST, budget=0.6)
    assert {u.name for u in env.units} == {"stem", "conv1"}
    env.play({"stem": 0.5, "conv1": 0.5})
    pruned = env.pruned_model()
    kept = env._surgeon.kept["conv1"]
    assert pruned.conv1.gain.shape == (12, 1, 1, 1) and pruned.stem.gain.shape == (8, 1, 1, 1)
    assert torch.equal(pruned.conv1.gain, _net(NFNet).conv1.gain[kept])


class LayerScaleNet(nn.Module):
    """A residual whose branch is scaled by a learned per-channel vector broadcast through a
    reshape, ``gamma.reshape(1, -1, 1, 1)`` (timm's ConvNeXt layer scale): a reshape that only
    adds size-1 axes must not hide the stream's channels."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.gamma = nn.Parameter(torch.rand(16))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(x + self.conv(torch.relu(x)) * self.gamma.reshape(1, -1, 1, 1))


def test_a_broadcast_reshape_of_a_scale_vector_keeps_the_stream_prunable() -> None:
    env = ChannelPruningEnv(_net(LayerScaleNet), synthetic(), **FAST, budget=0.6)
    assert [u.name for u in env.units] == ["stem"]
    env.play({"stem": 0.5})
    pruned = env.pruned_model().eval()
    kept = env._surgeon.kept["stem"]
    assert torch.equal(pruned.gamma, _net(LayerScaleNet).gamma[kept])
    assert env.cost.macs([8]) == count_macs(pruned, (3, 16, 16))
