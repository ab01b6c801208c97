"""Episodes scored on the BN-folded channels-last copy agree with the plain model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from amc_agent.cli import search
from amc_agent.env.evaluation import accuracy, channels_last, fold_plan, inference_copy
from tests.amc_env.helpers import make_env, run_episode, synthetic
from tests.custom_layers import SameConv2d


@pytest.mark.parametrize("name", ["cnn", "resnet20", "mobilenetv2"])
def test_folded_copy_gives_the_pruned_models_logits(name: str) -> None:
    env = make_env(name, budget=0.5, round_to=1)
    rng = np.random.default_rng(0)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in env.model.modules())
    assert env.fast_scoring and 0 < len(env._fold_plan) <= bns
    for seed in range(3):
        run_episode(env, rng.uniform(0.2, 1.0, env.n_units).tolist(), seed=seed)
        model = env.pruned_model().eval()
        copy = inference_copy(model, env._fold_plan)
        # Every planned BN is gone from the copy and the episode's model is untouched.
        assert sum(isinstance(m, nn.BatchNorm2d) for m in copy.modules()) == bns - \
            len(env._fold_plan)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == bns
        x = env.val_batches[0][0]
        with torch.no_grad():
            ref, fast = model(x), copy(channels_last(x))
        assert torch.allclose(fast, ref, rtol=0.0, atol=1e-4 * max(1.0, ref.abs().max().item()))


def test_fast_and_plain_episodes_score_alike() -> None:
    fast = make_env("resnet20", budget=0.5, val_size=128, cache=False)
    plain = make_env("resnet20", budget=0.5, val_size=128, cache=False, fast_scoring=False)
    assert fast.fast_scoring and not plain.fast_scoring
    rng = np.random.default_rng(1)
    for seed in range(6):
        policy = rng.uniform(0.2, 1.0, fast.n_units).tolist()
        a, b = run_episode(fast, policy, seed), run_episode(plain, policy, seed)
        assert a["kept_channels"] == b["kept_channels"] and a["macs"] == b["macs"]
        # Float rounding may flip an image whose two top logits tie to 1e-6, not more.
        assert abs(a["accuracy"] - b["accuracy"]) <= 1 / 128


def test_fold_plan_skips_what_it_cannot_fold() -> None:
    class Shared(nn.Module):
        """A convolution whose output feeds both its BN and a skip: folding would change it."""

        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.same, self.bn2 = SameConv2d(4, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y + self.bn2(self.same(y))

    model = Shared().eval()
    assert fold_plan(model) == []  # shared output; a Conv2d subclass with its own forward

    class Untraceable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(x)) if x.sum() > 0 else self.conv(x)

    assert fold_plan(Untraceable().eval()) == []


def test_a_model_that_rejects_channels_last_input_is_scored_plainly() -> None:
    class Flat(nn.Module):
        """Reads its input with .view, which a channels-last tensor cannot serve."""

        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.head = nn.Linear(8 * 16 * 16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(self.conv(x))
            return self.head(y.view(len(y), -1))

    from amc_agent.env.env import ChannelPruningEnv
    from tests.amc_env.helpers import FAST
    with pytest.warns(UserWarning, match="fast scoring off"):
        env = ChannelPruningEnv(Flat(), synthetic(), **FAST)
    assert not env.fast_scoring
    info = run_episode(env, 0.5)
    assert info["accuracy"] == accuracy(env.pruned_model(), env.val_batches)


def test_same_seed_search_same_best_policy_with_and_without_speed_levers(tmp_path) -> None:
    base = ["--model", "resnet20", "--dataset", "synthetic", "--eval-size", "64",
            "--recalib-batches", "1", "--recalib-batch-size", "16", "--no-progress",
            "--wandb-mode", "disabled", "--agent", "amc-ddpg", "--agent-kwargs",
            "{warmup_episodes: 3, batch_size: 4}", "--episodes", "7", "--seed", "3"]
    runs = {}
    for name, flags in {"levers": [], "plain": ["--plain-scoring", "--no-cache"]}.items():
        assert search.main([*base, *flags, "--out", str(tmp_path / name)]) == 0
        runs[name] = [json.loads(ln) for ln in
                      (tmp_path / name / "episodes.jsonl").read_text().splitlines()]
    pol = {n: json.loads((tmp_path / n / "policy.json").read_text()) for n in runs}
    assert pol["levers"]["keep_ratios"] == pol["plain"]["keep_ratios"]
    for a, b in zip(runs["levers"], runs["plain"], strict=True):
        assert a["keep_ratios"] == b["keep_ratios"]
        assert abs(a["accuracy"] - b["accuracy"]) <= 1 / 64
