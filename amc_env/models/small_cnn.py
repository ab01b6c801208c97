"""A small three-conv CNN: the demo's default model and the tests' fastest prunable network."""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """conv-BN-ReLU x3 (stride 1, 2, 2) -> global average pool -> linear.

    ``widths`` are the three convs' output channels; every one is a prunable unit.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: tuple[int, int, int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, 1 if i == 0 else 2, 1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))
