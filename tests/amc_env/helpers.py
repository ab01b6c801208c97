"""Small builders shared by the environment tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from amc_agent.env.cost import count_macs, count_params
from amc_agent.env.datasets import DataSplits
from amc_agent.env.datasets import synthetic as synthetic_data
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.models import build_model
from amc_agent.env.surgery import apply_pruning_record

FAST = {"val_size": 32, "eval_batch": 32, "recalib_batches": 1, "recalib_batch_size": 16,
        "calib_images": 16, "calib_points": 4}


def synthetic(in_channels: int = 3, image_size: int = 16) -> DataSplits:
    """Tiny deterministic data."""
    return synthetic_data(in_channels=in_channels, image_size=image_size)


def model(name: str, classes: int = 4, **kw: Any) -> nn.Module:
    """A zoo/torchvision model for 3-channel inputs."""
    return build_model({"name": name, "kwargs": {"in_channels": 3, "num_classes": classes, **kw}})


def make_env(name: str = "cnn", **cfg: Any) -> ChannelPruningEnv:
    """An env on synthetic data with fast evaluation settings."""
    torch.manual_seed(0)
    return ChannelPruningEnv(model(name), synthetic(), **{**FAST, **cfg})


def run_episode(env: ChannelPruningEnv, actions: Any, seed: int = 0) -> dict[str, Any]:
    """Play one episode; ``actions`` is a constant or a list with one ratio per unit."""
    env.reset(seed=seed)
    seq = actions if isinstance(actions, list) else [actions] * env.n_units
    for a in seq:
        _, reward, done, truncated, info = env.step([a])
        assert not truncated
    assert done and reward == info["reward"]
    return info


def check_exact_cost_and_export(env: ChannelPruningEnv, info: dict[str, Any],
                                fresh: Callable[[], nn.Module], budget: float) -> nn.Module:
    """After an episode: predicted = recounted MACs, the budget held, the parameter count exact,
    and the pruning record replayed on ``fresh()`` with the weights gives bit-identical outputs.
    Returns the pruned model."""
    shape = tuple(env.data_spec.input_shape)
    pruned = env.pruned_model().eval()
    assert info["predicted_macs"] == info["macs"] == count_macs(pruned, shape)
    assert info["macs"] <= budget * env.cost.original["flops"]
    assert info["params"] == count_params(pruned)
    rebuilt = apply_pruning_record(fresh(), env._surgeon.record())
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned(x))
    return pruned
