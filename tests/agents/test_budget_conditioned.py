"""A budget-conditioned search (issue: search once, apply many): the budget and target kind in
the observation, each episode's budget drawn from ``--budget LOW:HIGH`` and met, the actor's
policy declared at the midpoint, exact resume, and ``amc-apply --budget`` inside the range on a
model of another depth."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from amc_agent.cli import apply, search
from amc_agent.env.checkpoint import load_checkpoint
from amc_agent.env.env import OBS_FEATURES
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy
from tests.agents.test_search import killed_and_resumed, rows
from tests.amc_env.helpers import make_env

BASE = ["--dataset", "synthetic", "--eval-size", "32", "--recalib-batches", "1",
        "--recalib-batch-size", "16", "--no-progress", "--wandb-mode", "disabled",
        "--agent", "amc-ddpg", "--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}"]
BUDGET = OBS_FEATURES.index("budget")


def test_budget_and_target_kind_are_in_the_observation() -> None:
    obs, _ = make_env("cnn", budget=0.4).reset(seed=0)
    assert obs[BUDGET] == pytest.approx(0.4) and obs[BUDGET + 1:].tolist() == [0.0, 0.0]
    obs, _ = make_env("cnn", budget=0.6, target="params").reset(seed=0)
    assert obs[BUDGET] == pytest.approx(0.6) and obs[BUDGET + 1:].tolist() == [1.0, 0.0]


def test_a_range_draws_each_episode_budget_from_its_seed_and_the_wall_meets_it() -> None:
    env = make_env("cnn", budget=0.45, budget_range=(0.3, 0.6))
    budgets = []
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        budgets.append(env.budget)
        assert obs[BUDGET] == pytest.approx(env.budget)
        done, info = False, {}
        while not done:  # the widest request: the wall alone keeps the episode in budget
            _, _, done, _, info = env.step(np.array([1.0], dtype=np.float32))
        assert info["budget"] == env.budget
        assert info["macs"] <= env.budget * info["original_macs"] + 1e-6
    assert all(0.3 <= b <= 0.6 for b in budgets) and len(set(budgets)) == 8
    env.reset(seed=3)
    assert env.budget == budgets[3]  # the draw is the seed's, whatever came before
    env.play({u.name: 1.0 for u in env.units}, seed=5)
    assert env.budget == budgets[3]  # a replay keeps the current budget
    env.reset(seed=1, options={"budget": 0.5})
    assert env.budget == 0.5
    with pytest.raises(UserError, match="0 < LOW < HIGH <= 1"):
        make_env("cnn", budget_range=(0.6, 0.3))
    with pytest.raises(UserError, match="infeasible"):
        make_env("cnn", budget=0.5, budget_range=(0.001, 0.9))


def test_search_over_a_range_resumes_exactly_and_declares_the_actor_at_the_midpoint(
        tmp_path, monkeypatch) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    argv = ["--model", "resnet20", *BASE, "--budget", "0.3:0.6", "--episodes", "6"]
    assert search.main([*argv, "--out", str(full)]) == 0
    episodes = rows(full)
    assert all(0.3 <= r["budget"] <= 0.6 and r["meets_budget"] for r in episodes)
    assert len({r["budget"] for r in episodes}) == 6
    policy = Policy.load(full / "policy.json")
    assert policy.budget == pytest.approx(0.45) and policy.budget_range == [0.3, 0.6]
    assert policy.actor == "actor.pt" and policy.agent["found_at_episode"] == 6
    greedy = json.loads((full / "greedy.json").read_text())
    assert greedy["budget"] == pytest.approx(0.45) and greedy["meets_budget"]
    assert policy.keep_ratios == greedy["keep_ratios"]
    assert "0.3:0.6" in (full / "config.yaml").read_text()
    assert killed_and_resumed(argv, cut, 4, monkeypatch) == episodes
    assert Policy.load(cut / "policy.json").keep_ratios == policy.keep_ratios


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    out = tmp_path_factory.mktemp("bc") / "s"
    assert search.main(["--model", "resnet20", *BASE, "--budget", "0.3:0.6", "--episodes", "4",
                        "--out", str(out)]) == 0
    return out


def _apply(*argv: str) -> int:
    return apply.main([*argv, "--dataset", "synthetic", "--eval-size", "32", "--no-progress",
                       "--latency-time", "0.02"])


@pytest.mark.parametrize("budget", [0.35, 0.55])
def test_apply_at_a_budget_inside_the_range_on_a_deeper_model(conditioned, tmp_path, capsys,
                                                                budget) -> None:
    assert _apply("--policy", str(conditioned / "policy.json"), "--model", "resnet32",
                  "--budget", str(budget), "--out", str(tmp_path / "p.pt")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mode"] == "actor"
    assert budget - 0.05 <= summary["macs_ratio"] <= budget + 1e-9


def _exit_2(monkeypatch, capsys, argv: list[str]) -> list[str]:
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        apply.entry()
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()


def test_apply_outside_the_range_or_with_an_older_actor_is_refused(conditioned, tmp_path,
                                                                  monkeypatch, capsys) -> None:
    common = ["amc-apply", "--model", "resnet32", "--dataset", "synthetic", "--no-progress"]
    err = _exit_2(monkeypatch, capsys, [*common, "--policy", str(conditioned / "policy.json"),
                                        "--budget", "0.7", "--out", str(tmp_path / "o.pt")])
    assert len(err) == 1 and "outside 0.3:0.6, the range the policy's actor" in err[0]
    # An actor whose first layer takes fewer features (a release before the budget features).
    old = tmp_path / "old"
    old.mkdir()
    (old / "policy.json").write_text((conditioned / "policy.json").read_text())
    actor = torch.load(conditioned / "actor.pt", weights_only=True)
    actor["policy"] = {k: v[:, :12] if v.dim() == 2 and v.shape[1] == len(OBS_FEATURES) else v
                       for k, v in actor["policy"].items()}
    torch.save(actor, old / "actor.pt")
    err = _exit_2(monkeypatch, capsys, [*common, "--policy", str(old / "policy.json"),
                                        "--budget", "0.4", "--out", str(tmp_path / "o.pt")])
    assert len(err) == 1 and "does not take this version's 15-feature observation" in err[0]
    assert not (tmp_path / "o.pt").exists()


def test_init_actor_starts_where_zero_shot_transfer_ends(conditioned, tmp_path, capsys,
                                                         monkeypatch) -> None:
    # Zero-shot: the resnet20 actor applied to resnet32 at 0.4.
    assert _apply("--policy", str(conditioned / "policy.json"), "--model", "resnet32",
                  "--budget", "0.4", "--out", str(tmp_path / "zero.pt")) == 0
    zero = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    applied = load_checkpoint(tmp_path / "zero.pt")["metrics"]["keep_ratios"]
    out = tmp_path / "warm"
    argv = ["--model", "resnet32", *BASE[:-4], "--agent", "amc-ddpg", "--budget", "0.4",
            "--episodes", "4", "--init-actor", str(conditioned), "--out", str(out)]
    assert search.main(argv) == 0
    first = rows(out)[0]
    assert first["seed_policy"] == "init-actor"
    assert first["keep_ratios"] == pytest.approx(applied)
    assert first["macs_ratio"] == pytest.approx(zero["macs_ratio"])
    policy = Policy.load(out / "policy.json")
    assert policy.agent["seed_policies"] == ["init-actor"]
    # A short warm-up (10 random episodes at most, a third of these 4): the second episode is
    # already the actor's, with exploration noise.
    assert rows(out)[1].get("sigma") is not None
    # A policy without an actor, or an actor of another agent kind: one line, exit 2.
    bare = tmp_path / "bare"
    assert search.main(["--model", "resnet20", *BASE[:-4], "--agent", "random", "--episodes",
                        "1", "--out", str(bare)]) == 0
    for extra, message in ((["--init-actor", str(bare)], "the policy carries no actor"),
                           (["--init-actor", str(conditioned), "--agent", "td3"],
                            "trained by 'amc-ddpg'; search with --agent amc-ddpg")):
        monkeypatch.setattr(sys, "argv", ["amc-search", "--model", "resnet32", *BASE[:-4],
                                          "--episodes", "3", *extra, "--out",
                                          str(tmp_path / "x")])
        with pytest.raises(SystemExit) as exc:
            search.entry()
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and message in err[0]
        assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    """Two tiny checkpoints of different depths (one short epoch on the synthetic split)."""
    from amc_agent.cli import train

    folder = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name in ("resnet20", "resnet32"):
        out[name] = str(folder / f"{name}.pt")
        assert train.main(["--model", name, "--dataset", "synthetic", "--epochs", "1",
                           "--no-progress", "--out", out[name]]) == 0
    return out


def test_one_agent_over_several_checkpoints_cycles_models_and_resumes_exactly(
        trained, tmp_path, monkeypatch) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    argv = ["--checkpoint", trained["resnet20"], "--checkpoint", trained["resnet32"],
            *BASE[:-2], "--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}",
            "--budget", "0.3:0.6", "--episodes", "6"]
    assert search.main([*argv, "--out", str(full)]) == 0
    episodes = rows(full)
    assert [r["model"] for r in episodes] == [0, 1, 0, 1, 0, 1]
    # Each model's episodes prune that model's units (resnet32 has more of them).
    units = [len(r["keep_ratios"]) for r in episodes]
    assert units[0] < units[1] and len(set(units[0::2])) == len(set(units[1::2])) == 1
    assert all(r["meets_budget"] for r in episodes)
    policy = Policy.load(full / "policy.json")
    assert len(policy.keep_ratios) == units[0]  # declared for the first checkpoint
    assert "resnet32.pt" in (full / "config.yaml").read_text()
    assert killed_and_resumed(argv, cut, 3, monkeypatch) == episodes
    # A rerun from config.yaml trains over the same two models.
    again = tmp_path / "again"
    assert search.main(["--config", str(full / "config.yaml"), "--out", str(again)]) == 0
    assert rows(again) == episodes


@pytest.mark.parametrize(("extra", "message"), [
    (["--agent", "ppo"], "needs an off-policy agent (amc-ddpg, ddpg, td3, sac), not 'ppo'"),
    (["--seed-policies", "uniform"], "--seed-policies are for one model"),
])
def test_several_checkpoints_refuse_what_cannot_span_models(trained, tmp_path, monkeypatch,
                                                           capsys, extra, message) -> None:
    monkeypatch.setattr(sys, "argv", [
        "amc-search", "--checkpoint", trained["resnet20"], "--checkpoint", trained["resnet32"],
        *BASE[:-4], "--episodes", "3", *extra, "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as exc:
        search.entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "x").exists()


def test_resuming_with_networks_of_another_shape_is_one_line(tmp_path, monkeypatch,
                                                             capsys) -> None:
    out = tmp_path / "s"
    argv = ["--model", "cnn", *BASE, "--episodes", "3"]
    assert search.main([*argv[:-2], "--episodes", "2", "--out", str(out)]) == 0
    monkeypatch.setattr(sys, "argv", ["amc-search", *argv[:-4], "--agent-kwargs",
                                      "{hidden: [8, 8], warmup_episodes: 2, batch_size: 4}",
                                      "--episodes", "3", "--out", str(out), "--resume"])
    with pytest.raises(SystemExit) as exc:
        search.entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "networks of another shape" in err[0]
    assert len(rows(out)) == 2


def test_compare_has_a_zero_shot_transfer_strategy(conditioned, tmp_path, capsys,
                                                   monkeypatch) -> None:
    from amc_agent.cli import compare

    assert _apply("--policy", str(conditioned / "policy.json"), "--model", "resnet32",
                  "--budget", "0.4", "--out", str(tmp_path / "zero.pt")) == 0
    applied = load_checkpoint(tmp_path / "zero.pt")["metrics"]["keep_ratios"]
    argv = ["--model", "resnet32", *BASE[:-4], "--finetune-epochs", "0", "--latency-time",
            "0.01", "--budget", "0.4"]
    out = tmp_path / "cmp"
    assert compare.main([*argv, "--strategies", "transfer,uniform", "--transfer",
                         str(conditioned), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows_ = results["strategies"]
    assert rows_["transfer"]["keep_ratios"] == pytest.approx(applied)
    # Where the actor was trained, for the report's zero-shot / unseen-budget split.
    assert results["config"]["transfer_budget_range"] == [0.3, 0.6]
    assert results["config"]["transfer_trained_on"] == []  # searched on --model, no checkpoint
    assert results["config"]["transfer"] == str(conditioned)
    assert results["config"]["transfer_observation"] == "amc"
    assert rows_["transfer"]["budget_ok"] and rows_["transfer"]["macs_kept"] <= 0.4
    assert "| transfer |" in (out / "report.md").read_text()
    for extra, message in (
            (["--strategies", "transfer,uniform"], "the transfer strategy and --transfer"),
            (["--strategies", "transfer", "--transfer", str(conditioned), "--budget", "0.7"],
             "budget 0.7 is outside 0.3:0.6")):
        monkeypatch.setattr(sys, "argv", ["amc-compare", *argv, *extra, "--out",
                                          str(tmp_path / "x")])
        with pytest.raises(SystemExit) as exc:
            compare.entry()
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and message in err[0]
        assert not (tmp_path / "x").exists()
