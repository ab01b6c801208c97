"""A user's own model factory, imported by tests as ``tests.user_model:make``."""

from torch import nn


def make(num_classes: int = 10) -> nn.Module:
    """Two convs and a linear head; takes 3-channel input (the library adapts the stem)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    )


def flat(num_classes: int = 10) -> nn.Module:
    """No conv and one linear layer: nothing a channel-pruning search can cut."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
