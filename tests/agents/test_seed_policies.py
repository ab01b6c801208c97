"""Searches seeded with heuristics' policies: the first episodes play them, every agent learns
from them, they count against the budget, and a crash-resume ends where an uninterrupted run
ends."""

from __future__ import annotations

import json

import pytest
import yaml

from amc_agent.agents.search import Search, SearchConfig
from amc_agent.cli import search
from amc_agent.policies.artifact import Policy
from amc_agent.policies.heuristics import heuristic_policy
from tests.agents.test_search import BASE, killed_and_resumed, rows
from tests.amc_env.helpers import make_env

SEEDS = ("uniform", "global")

SETTINGS = {"amc-ddpg": "{warmup_episodes: 3, batch_size: 4}", "random": "{}",
            "tpe": "{n_startup_trials: 2}", "cmaes": "{popsize: 4}"}


def seeded_search(tmp_path, agent: str, episodes: int) -> tuple[Search, list[dict]]:
    """A search of ``episodes`` on the tiny CNN seeded with uniform and global."""
    env = make_env("cnn", budget=0.5)
    kwargs = yaml.safe_load(SETTINGS[agent])
    cfg = SearchConfig(agent=agent, episodes=episodes, seed=0, agent_kwargs=kwargs,
                       wandb_mode="disabled", progress=False, seed_policies=SEEDS)
    s = Search(env, cfg, tmp_path / agent, {"recipe": {"name": "cnn"}})
    return s, s.run().episodes


@pytest.mark.parametrize("agent", list(SETTINGS))
def test_first_episodes_play_the_seed_policies(tmp_path, agent: str) -> None:
    s, episodes = seeded_search(tmp_path, agent, 5)
    assert [r.get("seed_policy") for r in episodes] == [*SEEDS, None, None, None]
    for row, name in zip(episodes[:2], SEEDS, strict=True):
        want = s.env.play(heuristic_policy(name, s.env))["keep_ratios"]
        assert row["keep_ratios"] == pytest.approx(want, abs=1e-9)
    assert episodes[0]["keep_ratios"] != episodes[1]["keep_ratios"]
    # Later episodes are the agent's own proposals, not replays of a seed (the wall and the
    # rounding may still land one on a seed's channel counts).
    assert all(r["actions"] not in [e["actions"] for e in episodes[:2]] for r in episodes[2:])
    assert Policy.load(s.out / "policy.json").agent["seed_policies"] == list(SEEDS)


def test_agents_learn_from_the_seeded_episodes(tmp_path) -> None:
    s, episodes = seeded_search(tmp_path, "tpe", 3)
    # The study was told each seeded trial's reward, as for its own trials.
    history = json.loads(s.agent.state_dict()["history"])
    for (params, reward, _), row in zip(history[:2], episodes[:2], strict=True):
        assert reward == row["reward"] and params == pytest.approx(row["actions"], abs=1e-6)
    s, episodes = seeded_search(tmp_path, "amc-ddpg", 2)
    # Both seeded episodes' transitions are in the replay buffer.
    assert s.agent.algo.replay_buffer.pos == 2 * s.env.n_units


@pytest.mark.parametrize("agent", ["amc-ddpg", "tpe"])
def test_seeded_search_resumes_exactly(tmp_path, monkeypatch, agent: str) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    argv = [*BASE, "--agent", agent, "--agent-kwargs", SETTINGS[agent], "--episodes", "6",
            "--seed-policies", "uniform,global"]
    assert search.main([*argv, "--out", str(full)]) == 0
    # Killed inside the seeded episodes.
    assert killed_and_resumed(argv, cut, 1, monkeypatch) == rows(full)


def test_bad_seed_policies_exit_2_before_writing(tmp_path) -> None:
    out = tmp_path / "s"
    for bad in ("uniform,nope", "uniform,uniform"):
        with pytest.raises(SystemExit) as e:
            search.main([*BASE, "--episodes", "3", "--seed-policies", bad, "--out", str(out)])
        assert e.value.code == 2
    assert not out.exists()
    with pytest.raises(Exception, match="do not fit"):
        search.main([*BASE, "--episodes", "1", "--seed-policies", "uniform,global",
                     "--out", str(out)])
    assert not out.exists()
