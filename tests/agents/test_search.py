"""The search loop and ``amc-search``: artifacts, exact resume, wandb records, bad input."""

from __future__ import annotations

import json
import math
import sys

import pytest

from amc_agent.agents import AGENTS
from amc_agent.agents import search as search_module
from amc_agent.agents.tracking import offline_runs, read_offline_run
from amc_agent.cli import search
from amc_agent.policies.artifact import Policy

BASE = ["--model", "cnn", "--dataset", "synthetic", "--eval-size", "32", "--recalib-batches",
        "1", "--recalib-batch-size", "16", "--no-progress", "--wandb-mode", "disabled"]
DDPG = ["--agent", "amc-ddpg", "--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}"]


def rows(out) -> list[dict]:
    lines = (out / "episodes.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "seconds"} for ln in lines]


def killed_and_resumed(argv: list[str], out, episode: int, monkeypatch) -> list[dict]:
    """The rows of a search killed during ``episode`` and then resumed with ``--resume``; the
    kill leaves exactly the ``episode`` finished episodes' rows on disk."""
    real = search_module.Search._episode

    def crash(self, e):
        if e == episode:
            raise KeyboardInterrupt  # killed mid-episode
        return real(self, e)

    monkeypatch.setattr(search_module.Search, "_episode", crash)
    with pytest.raises(KeyboardInterrupt):
        search.main([*argv, "--out", str(out)])
    assert len(rows(out)) == episode
    monkeypatch.setattr(search_module.Search, "_episode", real)
    assert search.main([*argv, "--out", str(out), "--resume"]) == 0
    return rows(out)


def test_tiny_search_leaves_policy_and_episodes(tmp_path, capsys) -> None:
    out = tmp_path / "s"
    assert search.main([*BASE, *DDPG, "--episodes", "4", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    policy = Policy.load(out / "policy.json")
    episodes = rows(out)
    assert [r["episode"] for r in episodes] == [0, 1, 2, 3]
    top = max((r for r in episodes if r["meets_budget"]), key=lambda r: r["reward"])
    # The winner is the best of the top policies (default 5) re-scored on held-out images after
    # a short fine-tune (by default on up to 2000 training images: all 384 of this split).
    rescored = json.loads((out / "rescore.json").read_text())
    assert top["episode"] in [r["episode"] for r in rescored]
    assert rescored[0]["finetuned_accuracy"] == max(r["finetuned_accuracy"] for r in rescored)
    assert {r["finetune"]["images"] for r in rescored} == {384}
    best = episodes[rescored[0]["episode"]]
    assert policy.metrics["val_accuracy"] == best["accuracy"] == summary["val_accuracy"]
    assert policy.metrics["rescored_val_accuracy"] == rescored[0]["rescored_accuracy"] == \
        summary["rescored_val_accuracy"]
    assert policy.metrics["rescore_images"] == 128 - 32  # the synthetic split's rest
    assert policy.keep_ratios == best["keep_ratios"] and policy.agent["name"] == "amc-ddpg"
    assert policy.actor == "actor.pt" and (out / "actor.pt").is_file()
    assert all(r["macs_ratio"] <= 0.5 for r in episodes)
    assert (out / "config.yaml").is_file() and (out / "checkpoint" / "state.pt").is_file()


def test_config_yaml_reruns_the_same_search(tmp_path) -> None:
    first = tmp_path / "a"
    assert search.main([*BASE, *DDPG, "--episodes", "3", "--out", str(first)]) == 0
    second = tmp_path / "b"
    assert search.main(["--config", str(first / "config.yaml"), "--out", str(second)]) == 0
    assert rows(first) == rows(second)


def test_nan_accuracy_is_reported_never_best(tmp_path, monkeypatch, capsys) -> None:
    # Episode 1's pruned model "outputs NaN": its row says so, the policy comes from another
    # episode, and the agent keeps learning from finite rewards.
    from amc_agent.env import env as env_module

    real_accuracy, calls = env_module.accuracy, []

    def nan_on_second_episode(model, batches):
        calls.append(1)
        return math.nan if len(calls) == 2 else real_accuracy(model, batches)

    monkeypatch.setattr(env_module, "accuracy", nan_on_second_episode)
    out = tmp_path / "s"
    assert search.main([*BASE, *DDPG, "--episodes", "4", "--out", str(out)]) == 0
    episodes = rows(out)
    assert math.isnan(episodes[1]["accuracy"]) and episodes[1]["finite"] is False
    assert all(r["finite"] for i, r in enumerate(episodes) if i != 1)
    # The declared policy is a finite episode (the held-out re-scoring picks among the best).
    policy = Policy.load(out / "policy.json")
    chosen = episodes[policy.agent["found_at_episode"]]
    assert chosen["finite"] and chosen["episode"] != 1
    assert policy.metrics["val_accuracy"] == chosen["accuracy"]
    assert all(math.isfinite(a) for r in episodes[2:] for a in r["actions"])
    assert "episode 1: accuracy nan" in capsys.readouterr().err


def test_kill_and_resume_gives_the_same_episodes(tmp_path, monkeypatch) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    argv = [*BASE, *DDPG, "--episodes", "6"]
    assert search.main([*argv, "--out", str(full)]) == 0
    assert killed_and_resumed(argv, cut, 4, monkeypatch) == rows(full)
    assert json.loads((cut / "policy.json").read_text()) == \
        json.loads((full / "policy.json").read_text())


@pytest.mark.parametrize("agent", AGENTS.names())
def test_each_agent_runs_two_episodes(tmp_path, agent: str) -> None:
    kw = {"random": "{}", "ppo": "{episodes_per_rollout: 1}", "tpe": "{n_startup_trials: 1}",
          "cmaes": "{}"}.get(
        agent, "{warmup_episodes: 1, batch_size: 2}")
    out = tmp_path / agent
    assert search.main([*BASE, "--agent", agent, "--agent-kwargs", kw, "--episodes", "2",
                        "--out", str(out)]) == 0
    assert len(rows(out)) == 2 and Policy.load(out / "policy.json").agent["name"] == agent


def test_wandb_offline_run_holds_logged_keys(tmp_path) -> None:
    out = tmp_path / "w"
    argv = [a if a != "disabled" else "offline" for a in BASE]
    assert search.main([*argv, *DDPG, "--episodes", "3", "--out", str(out)]) == 0
    (run_dir,) = offline_runs(out)
    run = read_offline_run(run_dir)
    assert run["config"]["agent"] == "amc-ddpg" and run["config"]["budget"] == 0.5
    logged = [h for h in run["history"] if "reward" in h]
    assert [h["_step"] for h in logged] == [0, 1, 2]
    assert {"reward", "accuracy", "macs", "params", "macs_ratio", "sigma"} <= set(logged[0])
    expected = rows(out)
    assert [h["reward"] for h in logged] == [r["reward"] for r in expected]
    assert any("best_keep_ratios_table/nrows" in h for h in run["history"])
    assert run["summary"]["best_reward"] == max(r["reward"] for r in expected)


BAD = [
    (["--agent", "dqn"], "unknown agent 'dqn'; valid names"),
    (["--criterion", "obd"], "unknown criterion 'obd'; valid names: l1"),
    (["--reward", "top5"], "unknown reward 'top5'; valid names: acc"),
    (["--budget", "0.01"], "infeasible"),
    (["--budget", "-0.5"], "--budget must be a fraction in (0, 1]"),
    (["--budget", "abc"], "expected a fraction or LOW:HIGH, got 'abc'"),
    (["--target", "energy"], "unknown target 'energy'"),
    (["--wandb-mode", "cloud"], "--wandb-mode must be one of"),
    (["--agent-kwargs", "[1, 2]"], "not a YAML/JSON mapping"),
    (["--resume"], "nothing to resume"),
    (["--model", "tests.user_model:flat"], "no prunable unit"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_input_one_line_exit_2(tmp_path, monkeypatch, capsys, extra, message) -> None:
    out = tmp_path / "out"
    base = BASE[2:] if "--model" in extra else BASE
    monkeypatch.setattr(sys, "argv", ["amc-search", *base, "--episodes", "1", "--out", str(out),
                                      *extra])
    with pytest.raises(SystemExit) as exc:
        search.entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists() or not any(out.iterdir())


def test_refuses_to_overwrite_a_search(tmp_path, capsys) -> None:
    out = tmp_path / "s"
    assert search.main([*BASE, "--agent", "random", "--episodes", "1", "--out", str(out)]) == 0
    before = (out / "episodes.jsonl").read_text()
    with pytest.raises(Exception, match="not empty; use --resume"):
        search.main([*BASE, "--agent", "random", "--episodes", "1", "--out", str(out)])
    assert (out / "episodes.jsonl").read_text() == before


def test_dataset_defaults_to_the_checkpoints(tmp_path) -> None:
    from amc_agent.cli import train

    ckpt = tmp_path / "m.pt"
    assert train.main(["--model", "cnn", "--dataset", "synthetic", "--epochs", "1",
                       "--no-progress", "--out", str(ckpt)]) == 0
    out = tmp_path / "s"
    assert search.main(["--checkpoint", str(ckpt), "--eval-size", "32", "--recalib-batches",
                        "1", "--recalib-batch-size", "16", "--no-progress", "--wandb-mode",
                        "disabled", "--agent", "random", "--episodes", "1",
                        "--out", str(out)]) == 0
    assert Policy.load(out / "policy.json").dataset == "synthetic"
