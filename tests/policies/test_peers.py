"""Torch-Pruning's own pruning as strategies: the counts read from its pruner are the widths its
pruner leaves, and the completed policies spend the same budget as ours."""

from __future__ import annotations

import copy

import pytest
import torch_pruning as tp

from amc_agent.env.units import PRUNABLE_ROOTS
from amc_agent.policies.heuristics import heuristic_policy
from amc_agent.policies.peers import pruner_counts
from tests.amc_env.helpers import make_env


@pytest.mark.parametrize("global_pruning", [False, True])
def test_counts_are_what_the_pruner_leaves(global_pruning: bool) -> None:
    env = make_env("resnet20", criterion="group-l2", budget=0.5, recalibrate=False)
    counts = pruner_counts(env, 0.45, global_pruning)
    assert counts != [u.channels for u in env.units]
    pruned = copy.deepcopy(env.model)
    ignored = [m for n, m in pruned.named_modules() if n == "fc"]
    tp.pruner.MetaPruner(pruned, env.example, importance=tp.importance.GroupMagnitudeImportance(),
                         global_pruning=global_pruning, pruning_ratio=0.45,
                         max_pruning_ratio=1 - env.cfg.lbound, ignored_layers=ignored).step()
    widths = [pruned.get_submodule(u.name).out_channels for u in env.units]
    assert counts == widths
    assert all(isinstance(env.model.get_submodule(u.name), PRUNABLE_ROOTS) for u in env.units)


def test_global_widths_differ_from_uniform_and_match_our_global_with_its_importance() -> None:
    """Two implementations of the same rule agree: our global threshold with the ``group-l2``
    criterion divides each unit's scores by their mean, which is Torch-Pruning's normaliser."""
    env = make_env("resnet20", criterion="group-l2", budget=0.5, fill_budget=False,
                   recalibrate=False)
    tp_g = heuristic_policy("tp-global", env)
    assert tp_g != heuristic_policy("tp-uniform", env)
    assert tp_g == heuristic_policy("global", env)


def test_an_excluded_unit_stays_whole() -> None:
    env = make_env("resnet20", criterion="group-l2", budget=0.6, fill_budget=False,
                   recalibrate=False, exclude=["layer1.*"])
    assert all(not u.name.startswith("layer1.") for u in env.units)
    for name in ("tp-uniform", "tp-global"):
        info = env.play(heuristic_policy(name, env))
        assert env.wall.within_one_step([info["kept_channels"][u.name] for u in env.units])
        assert env.cost.original["flops"] * 0.6 >= info["macs"]
