"""VGG-16 with BatchNorm for small images (Simonyan & Zisserman 2015; the CIFAR variant used
by the L1-filter-pruning and Network Slimming papers):
13 conv-BN-ReLU layers, one linear classifier."""

from __future__ import annotations

from torch import Tensor, nn

VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


class CifarVGG(nn.Module):
    """VGG for 28-32 px inputs. Pooling uses ``ceil_mode`` so 28x28 inputs survive five pools."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        cfg: tuple[int | str, ...] = VGG16_CFG,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1, bias=False),
                           nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))
