"""Small plain CNNs: the demo's model and the tests' fastest prunable networks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

# The demo model: ten conv layers, so ten prunable units and a search space (about 5e8 policies
# at round-to 8) that random sampling cannot exhaust, yet one Fashion-MNIST epoch takes about a
# minute on two CPU cores.
CNN10_WIDTHS = (16, 16, 32, 32, 32, 64, 64, 64, 96, 96)
CNN10_STRIDES = (1, 2, 1, 1, 2, 1, 1, 2, 1, 1)


class SmallCNN(nn.Module):
    """conv-BN-ReLU per entry of ``widths`` -> global average pool -> linear.

    ``widths`` are the convs' output channels (every conv is a prunable unit); ``strides`` their
    strides (default: 1 for the first conv, 2 for the others: the three-conv ``cnn``).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64, 128),
        strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        strides = strides or [1] + [2] * (len(widths) - 1)
        if len(strides) != len(widths):
            raise ValueError(f"{len(widths)} widths but {len(strides)} strides")
        layers: list[nn.Module] = []
        cin = in_channels
        for w, s in zip(widths, strides, strict=True):
            layers += [nn.Conv2d(cin, w, 3, s, 1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def cnn10(num_classes: int = 10, in_channels: int = 1) -> SmallCNN:
    """The ten-conv demo CNN (:data:`CNN10_WIDTHS`, :data:`CNN10_STRIDES`)."""
    return SmallCNN(num_classes, in_channels, CNN10_WIDTHS, CNN10_STRIDES)
