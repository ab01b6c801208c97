"""Stem/head adaptation keeps a user's layer subclasses (and their ``forward``), and the input
probe turns a model that cannot take the dataset's images into one clear error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amc_agent.env.errors import UserError
from amc_agent.env.models import adapt_io, check_input_shape
from tests.custom_layers import SameConv2d, ScaledLinear, WSConv2d, fixed, make


def test_adaptation_keeps_subclasses_and_equals_the_native_build() -> None:
    src = make(num_classes=7, in_channels=3)
    stem_before = src[0].weight.detach().clone()
    adapted = adapt_io(src, in_channels=1, num_classes=10).eval()
    assert [type(adapted[i]) for i in (0, 3, 8)] == [SameConv2d, WSConv2d, ScaledLinear]
    assert (adapted[0].in_channels, adapted[8].out_features) == (1, 10)
    assert torch.equal(adapted[0].weight[:, 0], stem_before.mean(1))
    # The model the recipe builds for 1 channel and 10 classes, given the same weights, computes
    # exactly what the adapted one does: same padding and weight standardisation survive.
    native = make(num_classes=10, in_channels=1).eval()
    native.load_state_dict(adapted.state_dict())
    x = torch.randn(2, 1, 15, 15)  # odd size: "same" padding is asymmetric
    with torch.no_grad():
        assert torch.equal(adapted(x), native(x))
        assert adapted[0](x).shape[-2:] == (8, 8)


def test_adapted_head_is_freshly_initialised_and_trainable() -> None:
    adapted = adapt_io(make(num_classes=7, in_channels=1), in_channels=1, num_classes=10)
    head = adapted[8]
    assert head.weight.shape == (10, 16) and head.bias.shape == (10,)
    assert head.weight.requires_grad and head.weight.abs().sum() > 0
    assert {id(p) for p in adapted.parameters()} >= {id(head.weight), id(head.bias)}


def test_lazy_head_is_resized_before_it_materialises() -> None:
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(5))
    adapt_io(model, in_channels=1, num_classes=3)
    assert model(torch.randn(2, 1, 4, 4)).shape == (2, 3)


def test_input_probe_names_the_shape_and_the_models_error() -> None:
    model = fixed(num_classes=10, in_channels=1).train()
    check_input_shape(model, (1, 28, 28))
    with pytest.raises(UserError, match=r"cannot take the dataset's 1x16x16 inputs "
                                        r"\(RuntimeError: mat1 and mat2") as exc:
        check_input_shape(model, (1, 16, 16))
    assert "\n" not in str(exc.value)
    assert model.training  # left in the mode it had
