"""Equal budgets: every strategy of a comparison ends within one rounding step of the budget,
through the same wall (DESIGN.md section 4)."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

from amc_agent.agents import AGENTS
from amc_agent.agents.search import Search, SearchConfig
from amc_agent.env import env as env_module
from amc_agent.env import latency_table
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.training import TrainConfig
from amc_agent.policies import compare, finetune
from amc_agent.policies.heuristics import HEURISTICS, heuristic_policy
from tests.amc_env.helpers import FAST, make_env, model, synthetic
from tests.amc_env.test_latency_table import fake_latency

SETTINGS = [("resnet20", 1), ("resnet20", 8), ("mobilenetv2", 8), ("cnn10", 8)]


def _counts(env: ChannelPruningEnv, ratios: dict[str, float]) -> list[int]:
    return [round(ratios[u.name] * u.channels) for u in env.units]


def _gap(env: ChannelPruningEnv, counts: list[int]) -> float:
    """Unused budget as a fraction of the original cost."""
    return (env.budget_abs - env.cost.macs(counts)) / env.cost.original["flops"]


@pytest.mark.parametrize(("name", "round_to"), SETTINGS)
@pytest.mark.parametrize("strategy", HEURISTICS.names())
def test_heuristics_spend_the_budget(name: str, round_to: int, strategy: str) -> None:
    env = make_env(name, budget=0.5, fill_budget=False, recalibrate=False, round_to=round_to)
    # A coarse probe grid keeps the unit-by-unit analysis quick; the completion is the same.
    grid = (0.5,) if name == "mobilenetv2" else (0.3, 0.6)
    kwargs = {"ratios": grid} if strategy == "sensitivity" else {}
    ratios = heuristic_policy(strategy, env, seed=1, **kwargs)
    info = env.play(ratios)
    counts = [info["kept_channels"][u.name] for u in env.units]
    assert counts == _counts(env, ratios)  # replayed exactly as chosen
    assert info["macs"] <= env.budget_abs + 1e-6
    assert env.wall.within_one_step(counts), (strategy, _gap(env, counts))
    # One step of the widest unit is a few percent of the model at most.
    assert _gap(env, counts) < 0.05


@pytest.mark.parametrize(("name", "round_to"), SETTINGS)
@pytest.mark.parametrize("agent", AGENTS.names())
def test_agents_spend_the_budget(tmp_path, name: str, round_to: int, agent: str) -> None:
    env = make_env(name, budget=0.5, recalibrate=False, round_to=round_to)
    kwargs = {"warmup_episodes": 1, "batch_size": 4} if agent == "amc-ddpg" else {}
    cfg = SearchConfig(agent=agent, episodes=2, seed=0, agent_kwargs=kwargs,
                       wandb_mode="disabled", progress=False)
    result = Search(env, cfg, tmp_path, {"recipe": {"name": name, "kwargs": {}}}).run()
    for row in result.episodes:
        counts = _counts(env, row["keep_ratios"])
        assert env.wall.within_one_step(counts), (agent, row["episode"], _gap(env, counts))


def test_within_one_step_rejects_an_underspent_policy() -> None:
    env = make_env("resnet20", budget=0.5, fill_budget=False, recalibrate=False, round_to=1)
    smallest = [int(o[0]) for o in env.wall.options]
    assert not env.wall.within_one_step(smallest)
    assert not env.wall.within_one_step([u.channels for u in env.units])  # over budget
    completed = env.wall.complete(smallest, lambda t, c, _: -t)
    assert env.wall.within_one_step(completed)


def test_acc_log_flops_lets_the_agent_trade_macs() -> None:
    # Its log(MACs) term would be a constant if the wall forced every episode onto the budget.
    env = make_env("cnn", budget=0.8, reward="acc_log_flops", recalibrate=False)
    assert env.cfg.fill_budget is False and env.wall.fill is False
    env.reset(seed=0)
    for _ in env.units:
        _, _, done, _, info = env.step([env.cfg.lbound])
    assert done and info["macs"] < 0.5 * info["original_macs"]


def test_latency_comparison_completes_heuristics_to_the_searchs_calibrated_wall(
        tmp_path, monkeypatch) -> None:
    """Latency target, pruned models measuring 10% over the table: the search's wall learns to
    aim at budget / 1.1, and the heuristics are completed to that same aim (not the nominal
    budget, and not a wall that moved while they were replayed)."""
    net = model("cnn").eval()

    def slow(mod: nn.Module, *args, **kwargs):
        lat = fake_latency(mod, *args, **kwargs)
        return dataclasses.replace(lat, median_ms=(1.0 if mod is net else 1.1) * lat.median_ms)

    monkeypatch.setenv("AMC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(latency_table, "measure_latency", fake_latency)
    monkeypatch.setattr(env_module, "measure_latency", slow)
    monkeypatch.setattr(finetune, "measure_latency", fake_latency)
    cfg = EnvConfig(target="latency", budget=0.6, **FAST)
    results = compare.run_compare(
        net, {"name": "cnn", "kwargs": {}}, synthetic(), cfg,
        compare.CompareConfig(strategies=["uniform", "random", "global"], episodes=3,
                              finetune=TrainConfig(epochs=0), wandb_mode="disabled",
                              progress=False), tmp_path / "cmp", "cpu")
    for name in ("uniform", "global"):
        row = results["strategies"][name]
        assert row["cost_kept"] <= 0.6 / 1.1 + 1e-9 and row["budget_ok"], (name, row)
