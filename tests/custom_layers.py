"""A user's model whose layers are subclasses with their own ``forward``, imported by tests as
``tests.custom_layers:make``; and one that only takes 28x28 images (``tests.custom_layers:fixed``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F


class SameConv2d(nn.Conv2d):
    """TensorFlow-style "same" padding, computed in ``forward`` from the input size (so it is not
    in ``padding``, which stays 0)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1],
                                 self.dilation[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return self._conv_forward(F.pad(x, pads), self.weight, self.bias)


class WSConv2d(nn.Conv2d):
    """3x3 conv with weight standardisation (Qiao et al., 2019): each filter is normalised to
    zero mean and unit variance in ``forward``. Its ``__init__`` takes other arguments than
    ``nn.Conv2d``'s."""

    def __init__(self, cin: int, cout: int, *, eps: float = 1e-5) -> None:
        super().__init__(cin, cout, 3, padding=1, bias=False)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + self.eps)
        return self._conv_forward(x, w, self.bias)


class ScaledLinear(nn.Linear):
    """A linear head whose logits are multiplied by a fixed ``scale`` in ``forward``."""

    def __init__(self, features: int, classes: int, scale: float = 4.0) -> None:
        super().__init__(features, classes)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.scale


def make(num_classes: int = 7, in_channels: int = 3) -> nn.Module:
    """SameConv2d stem (stride 2), a WSConv2d, a ScaledLinear head; 7 classes and RGB inputs
    unless asked otherwise."""
    return nn.Sequential(
        SameConv2d(in_channels, 8, 3, stride=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        WSConv2d(8, 16), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), ScaledLinear(16, num_classes),
    )


def fixed(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A conv and a linear layer sized for 28x28 images only."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.Flatten(),
                         nn.Linear(4 * 28 * 28, num_classes))

