"""Every checkpoint write proves the file rebuilds the model in memory: a model whose rebuild
from recipe + pruning record + weights differs is refused, naming the first differing module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from amc_agent.env.checkpoint import load_checkpoint, save_checkpoint
from amc_agent.env.errors import UserError
from amc_agent.env.models import build_model
from amc_agent.env.models.small_cnn import SmallCNN

RECIPE = {"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 3}}
SHAPE = (1, 16, 16)


def test_matching_model_is_written_and_global_rng_untouched(tmp_path) -> None:
    model = build_model(RECIPE).train()
    rng = torch.get_rng_state()
    save_checkpoint(tmp_path / "m.pt", model, RECIPE, "synthetic", input_shape=SHAPE)
    assert torch.equal(torch.get_rng_state(), rng)  # training draws the same numbers after it
    assert model.training  # the model in memory is left as it was
    assert load_checkpoint(tmp_path / "m.pt")["recipe"] == RECIPE


def _swap_activation(model: nn.Module) -> None:
    model.features[2] = nn.Tanh()  # a module whose forward the recipe does not rebuild


def _repad_conv(model: nn.Module) -> None:
    model.features[3].padding = (2, 2)  # a hyper-parameter the state_dict does not hold


@pytest.mark.parametrize(("change", "module"), [(_swap_activation, "features.2"),
                                                (_repad_conv, "features.3")])
def test_rebuild_that_differs_is_refused_naming_the_module(tmp_path, change, module) -> None:
    model = build_model(RECIPE)
    change(model)
    path = tmp_path / "m.pt"
    with pytest.raises(UserError, match=rf"refusing to write .*m\.pt: .*recipe 'cnn' differs "
                                        rf"from the model trained, first at module '{module}'"):
        save_checkpoint(path, model, RECIPE, "synthetic", input_shape=SHAPE)
    assert list(tmp_path.iterdir()) == []


class _Negated(SmallCNN):
    """SmallCNN whose own forward differs: every layer matches, the result does not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(x)


def test_top_level_forward_difference_is_named(tmp_path) -> None:
    model = build_model(RECIPE)
    model.__class__ = _Negated
    with pytest.raises(UserError, match="first at the model's own forward"):
        save_checkpoint(tmp_path / "m.pt", model, RECIPE, "synthetic", input_shape=SHAPE)
    assert list(tmp_path.iterdir()) == []
