"""Heuristic policies meet their budgets and behave as their papers define them."""

from __future__ import annotations

import torch
from torch import nn

from amc_agent.env.datasets import make_loader
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.training import TrainConfig, fit
from amc_agent.policies.heuristics import HEURISTICS, heuristic_policy
from tests.amc_env.helpers import FAST, make_env, synthetic


def test_uniform_is_one_ratio_up_to_rounding() -> None:
    env = make_env("resnet20", budget=0.5, fill_budget=False, recalibrate=False, round_to=1)
    ratios = list(heuristic_policy("uniform", env).values())
    assert max(ratios) - min(ratios) < 1 / 16 + 1e-9  # one channel of the narrowest unit


def test_strict_rounding_reaches_every_strategy() -> None:
    """uniform, random and the wall's completion keep only multiples of --round-to with
    --strict-round (ResNet-20's 16-channel units step by 2 by default)."""
    for strict in (False, True):
        env = make_env("resnet20", budget=0.5, recalibrate=False, strict_round=strict)
        counts = [round(r * u.channels) for name in ("uniform", "random")
                  for r, u in zip(heuristic_policy(name, env).values(), env.units, strict=True)]
        off_grid = [k for k in counts if k % 8]
        assert bool(off_grid) != strict, (strict, counts)


class TwoBranch(nn.Module):
    """Two parallel 8-channel units; ``loud`` feeds the classifier strongly, ``quiet`` weakly,
    so pruning ``quiet`` costs far less accuracy."""

    def __init__(self) -> None:
        super().__init__()
        self.loud = nn.Conv2d(3, 8, 3, padding=1)
        self.quiet = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.relu(self.loud(x)), torch.relu(self.quiet(x))
        return self.fc(self.pool(torch.cat([a, b], 1)).flatten(1))


def test_sensitivity_prunes_the_insensitive_unit_more() -> None:
    data = synthetic()
    torch.manual_seed(0)
    model = TwoBranch()
    # The head never reads quiet's channels (weights held at zero while training on loud's).
    mask = torch.ones_like(model.fc.weight)
    mask[:, 8:] = 0
    with torch.no_grad():
        model.fc.weight.mul_(mask)
    model.fc.weight.register_hook(lambda g: g * mask)
    fit(model, make_loader(data.train, 32, shuffle=True),
        TrainConfig(epochs=4, lr=0.05, weight_decay=0.0), "cpu", progress=False)
    env = ChannelPruningEnv(model.eval(), data, **{**FAST, "val_size": 128}, budget=0.6,
                            fill_budget=False, recalibrate=False, round_to=1)
    ratios = heuristic_policy("sensitivity", env, ratios=(0.25, 0.5, 0.75))
    assert ratios["quiet"] < ratios["loud"]
    drops = env.sensitivity_table["drops"]
    assert max(d for _, d in drops["quiet"]) == 0 < max(d for _, d in drops["loud"])


def test_global_slimming_prunes_exactly_the_globally_smallest_gammas() -> None:
    # plain20: one BN per unit, so a unit's slimming score is exactly its BN's |gamma|.
    env = make_env("plain20", budget=0.6, fill_budget=False, recalibrate=False, round_to=1,
                   criterion="slimming", lbound=0.05)
    gen = torch.Generator().manual_seed(0)
    for m in env.model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.01)
    info = env.play(heuristic_policy("global", env))
    counts = [info["kept_channels"][u.name] for u in env.units]
    steps = env.wall.step_costs(counts)
    slack = env.budget_abs - env.cost.macs(counts)
    kept_vals, best_cut = [], {}
    for t, u in enumerate(env.units):
        bn = next(env.model.get_submodule(n) for n in u.members
                  if isinstance(env.model.get_submodule(n), nn.BatchNorm2d))
        keep = set(info["pruning"]["kept"][u.name])
        gammas = bn.weight.abs().tolist()
        kept_vals += [g for i, g in enumerate(gammas) if i in keep]
        cut = [g for i, g in enumerate(gammas) if i not in keep]
        if cut:
            best_cut[t] = max(cut)
    assert best_cut
    # Globally ranked: a unit may hold a cut gamma above some kept gamma only if the budget had
    # no room left for one more of its channels (the completion took the best that fitted).
    for t, g in best_cut.items():
        if g > min(kept_vals):
            assert steps[t] > slack, env.units[t].name
    # And the threshold itself is global: most units' cut gammas are below every kept one.
    assert sum(g <= min(kept_vals) for g in best_cut.values()) >= len(best_cut) // 2


def test_registry_names() -> None:
    assert HEURISTICS.names() == ["uniform", "random", "sensitivity", "global", "tp-uniform",
                                  "tp-global"]


def test_sensitivity_probes_prune_one_unit_alone() -> None:
    # At a tight budget the probes must still measure single-unit pruning, not walled models:
    # keeping everything must reproduce the unpruned model's accuracy exactly.
    env = make_env("resnet20", budget=0.3, recalibrate=False, round_to=1)
    full = env.play({u.name: 1.0 for u in env.units})
    assert full["macs"] == full["original_macs"]
    heuristic_policy("sensitivity", env, ratios=(0.5,))
    drops = env.sensitivity_table["drops"]
    assert all(len(rows) == 1 for rows in drops.values())


def test_global_scores_the_unpruned_model_after_other_episodes() -> None:
    env = make_env("resnet20", budget=0.5, recalibrate=False, round_to=1)
    first = heuristic_policy("global", env)
    env.play({u.name: 0.3 for u in env.units})  # leaves a heavily pruned episode behind
    assert heuristic_policy("global", env) == first
