"""The Gymnasium environment: API citizenship, budgets, surgery, determinism, bad input."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from torch import nn

from amc_agent.env import ENV_ID, latency_model
from amc_agent.env import env as env_module
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from amc_agent.env.cost import count_macs
from amc_agent.env.env import OBS_FEATURES, ChannelPruningEnv
from amc_agent.env.errors import UserError
from amc_agent.env.latency import Latency
from tests.amc_env.helpers import make_env, model, run_episode, synthetic


def test_gymnasium_and_sb3_checkers_pass() -> None:
    env = make_env("cnn")
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(make_env("cnn"), warn=False)


def test_registered_with_gymnasium_make() -> None:
    env = gymnasium.make(ENV_ID, model=model("cnn"), data=synthetic(), val_size=16,
                         recalib_batches=1)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (len(OBS_FEATURES),) and env.observation_space.contains(obs)


@pytest.mark.parametrize("name", ["resnet20", "plain20", "mobilenetv2", "resnet18"])
def test_constant_half_meets_half_macs(name: str) -> None:
    env = make_env(name, budget=0.5, recalibrate=False)
    info = run_episode(env, 0.5)
    ratio = info["macs"] / info["original_macs"]
    assert 0.47 <= ratio <= 0.5, ratio
    # The wall's prediction is what the physically pruned model recounts to.
    assert info["macs"] == info["predicted_macs"] and info["params"] == info["predicted_params"]
    pruned = env.pruned_model()
    with torch.no_grad():
        out = pruned(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 4)
    assert sum(p.numel() for p in pruned.parameters()) < info["original_params"]


def test_params_target_meets_budget() -> None:
    env = make_env("resnet20", target="params", budget=0.4, recalibrate=False)
    info = run_episode(env, [1.0, 0.3, 0.9, 0.5] * 3)
    assert 0.37 <= info["params"] / info["original_params"] <= 0.4


def test_keep_everything_is_identity() -> None:
    env = make_env("resnet20", budget=1.0, recalibrate=False)
    run_episode(env, 1.0)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(env.pruned_model()(x), env.model(x), atol=1e-5)


def test_residual_unit_prunes_coupled_convs_together() -> None:
    env = make_env("resnet20", budget=1.0, recalibrate=False, fill_budget=False)
    stage1 = next(u for u in env.units if u.name == "conv1")
    assert {"layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2", "bn1"} <= set(stage1.members)
    assert {"layer1.0.conv1", "layer2.0.conv1", "layer2.0.shortcut.0"} <= set(stage1.consumers)
    env.reset(seed=0)
    env.step([0.5])  # the stem's unit comes first; nothing forces it up
    m = env.pruned_model()
    assert m.conv1.out_channels == 8
    for block in m.layer1:
        assert block.conv2.out_channels == 8 and block.bn2.num_features == 8
        assert block.conv1.in_channels == 8
    assert m.layer2[0].conv1.in_channels == 8 and m.layer2[0].shortcut[0].in_channels == 8
    assert m.layer1[0].conv1.out_channels == 16  # a different unit, not touched yet


def test_same_seed_and_actions_same_reward() -> None:
    acts = [0.9, 0.4, 0.7]
    a = run_episode(make_env("cnn", criterion="random"), acts, seed=5)
    b = run_episode(make_env("cnn", criterion="random"), acts, seed=5)
    assert a["reward"] == b["reward"] and a["pruning"] == b["pruning"]
    env = make_env("cnn")
    first = run_episode(env, acts)
    second = run_episode(env, acts)
    assert first["reward"] == second["reward"] and first["macs"] == second["macs"]


def test_info_at_episode_end_and_record_round_trip(tmp_path) -> None:
    env = make_env("resnet20", budget=0.6)
    info = run_episode(env, 0.6)
    assert set(info["keep_ratios"]) == {u.name for u in env.units}
    assert all(0.2 <= r <= 1 for r in info["keep_ratios"].values())
    assert info["kept_channels"]["conv1"] == len(info["pruning"]["kept"]["conv1"])
    assert 0 <= info["accuracy"] <= 1 and info["timings"]["evaluation"] > 0
    # The record rebuilds the pruned model from the original architecture.
    recipe = {"name": "resnet20", "kwargs": {"in_channels": 3, "num_classes": 4}}
    path = tmp_path / "pruned.pt"
    save_checkpoint(path, env.pruned_model(), recipe, "synthetic", pruning=info["pruning"],
                    input_shape=(3, 16, 16))
    rebuilt = model_from_checkpoint(load_checkpoint(path)).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), env.pruned_model().eval()(x))


def test_include_exclude_units() -> None:
    names = [u.name for u in make_env("resnet20", exclude=["layer3.*"], budget=0.8).units]
    assert names and not any(n.startswith("layer3") for n in names)
    only = make_env("resnet20", include=["layer1.*"], budget=0.9).units
    assert [u.name for u in only] == ["layer1.0.conv1", "layer1.1.conv1", "layer1.2.conv1"]


def _fake_latency(model: nn.Module, input_shape, batch_size=1, device="cpu", **_) -> Latency:
    """Deterministic stand-in for timing: 0.1 ms overhead + 1 ms per million MACs."""
    ms = 0.1 + count_macs(model, input_shape) * batch_size / 1e6
    return Latency(ms, 0.0, 1, batch_size, 1, device)


def test_latency_target_measures_and_predicts(monkeypatch) -> None:
    monkeypatch.setattr(latency_model, "measure_latency", _fake_latency)
    monkeypatch.setattr(env_module, "measure_latency", _fake_latency)
    env = make_env("cnn", target="latency", budget=0.7, latency_predictor="line")
    lm = env.latency_model
    assert lm.intercept_ms == pytest.approx(0.1, abs=1e-6)
    assert lm.slope_ms_per_mac == pytest.approx(1e-6)
    info = run_episode(env, 0.5)
    assert info["latency_ms"] == pytest.approx(info["predicted_latency_ms"])
    assert info["latency_ms"] > 0 and info["predicted_latency_ms"] > 0
    assert info["budget_latency_ms"] == pytest.approx(0.7 * info["original_latency_ms"])
    assert info["predicted_latency_ms"] <= info["budget_latency_ms"] + 1e-9


@pytest.mark.parametrize("recalibrate", [True, False])
def test_bn_recalibration_switch(recalibrate: bool) -> None:
    env = make_env("resnet20", budget=0.5, recalibrate=recalibrate)
    info = run_episode(env, 0.5)
    kept = info["pruning"]["kept"]["conv1"]
    old = env.model.bn1.running_mean[kept]
    new = env.pruned_model().bn1.running_mean
    # Without recalibration the kept channels carry their old statistics over unchanged.
    assert torch.equal(new, old) != recalibrate


def test_bad_input() -> None:
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    with pytest.raises(UserError, match="no prunable unit"):
        ChannelPruningEnv(flat, synthetic())
    with pytest.raises(UserError, match=r"infeasible.*use --budget 0\.0"):
        make_env("cnn", budget=0.01, lbound=0.2)
    with pytest.raises(UserError, match="unknown criterion 'l3'; valid names: l1, l2"):
        make_env("cnn", criterion="l3")
    with pytest.raises(UserError, match="unknown reward 'accuracy'; valid names: acc"):
        make_env("cnn", reward="accuracy")
    with pytest.raises(UserError, match="budget must be a fraction"):
        make_env("cnn", budget=1.5)
    with pytest.raises(UserError, match="unknown target"):
        make_env("cnn", target="energy")
    env = make_env("cnn")
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0.5])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step([np.nan])


@pytest.mark.parametrize("reward", ["acc", "acc_log_flops"])
def test_reward_only_at_last_step(reward: str) -> None:
    env = make_env("cnn", reward=reward)
    env.reset(seed=0)
    rewards = [env.step([0.6])[1] for _ in range(env.n_units)]
    assert rewards[:-1] == [0.0] * (env.n_units - 1)
    assert rewards[-1] != 0.0


def test_a_cached_episode_returns_exactly_what_a_fresh_one_would() -> None:
    from tests.amc_env.helpers import make_env, run_episode

    cached = make_env("resnet20", budget=0.5)
    fresh = make_env("resnet20", budget=0.5, cache=False)
    assert cached.cacheable and not fresh.cacheable
    policy = [0.9, 0.5, 0.3, 0.7, 0.5, 0.5, 0.6, 0.4, 0.5, 0.5, 0.5, 0.5]
    first = run_episode(cached, policy)
    other = run_episode(cached, [0.5] * cached.n_units)  # evaluates (and recalibrates) another
    again = run_episode(cached, policy, seed=5)
    ref = run_episode(fresh, policy, seed=5)
    assert not first["cached"] and not other["cached"] and again["cached"]
    assert again["timings"]["evaluation"] == 0 and again["timings"]["recalibration"] == 0
    for key in ("accuracy", "reward", "macs", "params", "kept_channels", "pruning"):
        assert again[key] == ref[key] == first[key], key
    # The model handed out after a cache hit is recalibrated like a freshly scored one.
    x = torch.randn(4, 3, 16, 16)
    a, b = cached.pruned_model().eval(), fresh.pruned_model().eval()
    for (name, ba), (_, bb) in zip(a.named_buffers(), b.named_buffers(), strict=True):
        assert torch.equal(ba, bb), name
    assert torch.equal(a(x), b(x))
    # Criteria whose channels depend on more than the counts are never served from the cache.
    assert not make_env("resnet20", criterion="random").cacheable
    assert not make_env("resnet20", criterion="l1+reconstruct").cacheable
    assert cached.with_criterion("group-l2")._cache == {}


def test_state_carries_the_applied_previous_ratio_not_the_request() -> None:
    from tests.amc_env.helpers import make_env

    env = make_env("resnet20", budget=0.3, recalibrate=False)
    env.reset(seed=0)
    applied = []
    for _ in range(env.n_units - 1):
        obs, _, _, _, info = env.step([1.0])  # the wall cuts full requests down at 30% MACs
        applied.append(info["applied"])
        assert obs[OBS_FEATURES.index("prev_action")] == pytest.approx(info["applied"])
    assert min(applied) < 1.0
