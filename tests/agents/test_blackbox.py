"""Optuna's TPE and CMA-ES as search strategies: the same space, wall, budget and artifacts as the
RL agents, a model that is actually used, and a resume after a crash that ends where an
uninterrupted run ends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amc_agent.agents.base import make_agent
from amc_agent.cli import search
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy
from tests.agents.test_agents import SPEC
from tests.agents.test_search import BASE, killed_and_resumed, rows


@pytest.mark.parametrize(("agent", "kwargs"), [("tpe", "{n_startup_trials: 2}"),
                                               ("cmaes", "{popsize: 4}")])
def test_crash_and_resume_gives_the_same_episodes_and_artifacts(tmp_path, monkeypatch,
                                                                 agent: str, kwargs: str) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    argv = [*BASE, "--agent", agent, "--agent-kwargs", kwargs, "--episodes", "7"]
    assert search.main([*argv, "--out", str(full)]) == 0
    for name in ("policy.json", "episodes.jsonl", "checkpoint/state.pt"):
        assert (full / name).is_file()
    policy = Policy.load(full / "policy.json")
    assert policy.agent["name"] == agent and policy.metrics["macs_ratio"] <= 0.5 + 1e-9
    assert killed_and_resumed(argv, cut, 5, monkeypatch) == rows(full)
    assert json.loads((cut / "policy.json").read_text()) == \
        json.loads((full / "policy.json").read_text())
    # Different requests every episode (a sampler, not a constant), inside the action bounds.
    actions = [tuple(r["actions"]) for r in rows(full)]
    assert len(set(actions)) == len(actions)


def play(agent, rewards) -> list[list[float]]:
    asked = []
    for ep, reward_of in enumerate(rewards):
        ratios = [agent.act(np.zeros(12, np.float32), ep) for _ in range(SPEC.steps_per_episode)]
        asked.append(ratios)
        agent.end_episode(ep, reward_of(ratios))
    return asked


@pytest.mark.parametrize("name", ["tpe", "cmaes"])
def test_sampler_moves_towards_higher_reward(name: str) -> None:
    """With a reward that grows with the first unit's ratio, the late trials ask for more of it
    than the early (random) ones: the sampler's model is in use."""
    agent = make_agent(name, SPEC, 0, {"n_startup_trials": 5} if name == "tpe" else
                       {"popsize": 6})
    asked = play(agent, [lambda r: r[0]] * 60)
    early = np.mean([a[0] for a in asked[:10]])
    late = np.mean([a[0] for a in asked[-10:]])
    assert late > early + 0.15, (early, late)


def test_bad_sampler_setting_is_a_user_error() -> None:
    with pytest.raises(UserError, match="agent 'tpe' rejects settings"):
        make_agent("tpe", SPEC, 0, {"warmup_episodes": 3})


def play_batches(agent, episodes: range, size: int) -> list[list[float]]:
    """Episodes in batches of ``size`` as parallel workers run them: every trial of a batch is
    asked (walked) before any is told its reward."""
    asked = []
    for first in range(episodes.start, episodes.stop, size):
        batch = range(first, min(first + size, episodes.stop))
        walks = [[agent.act(np.zeros(12, np.float32), e) for _ in range(SPEC.steps_per_episode)]
                 for e in batch]
        for e, ratios in zip(batch, walks, strict=True):
            agent.end_episode(e, -float(np.sum((np.asarray(ratios) - 0.6) ** 2)))
        asked += walks
    return asked


@pytest.mark.parametrize("name", ["tpe", "cmaes"])
def test_trials_open_in_batches_resume_exactly(name: str) -> None:
    """Trials asked in batches of 3 (several open at once) are replayed in that order on a
    resume: a restored agent proposes what the uninterrupted one does."""
    settings = {"n_startup_trials": 2} if name == "tpe" else {"popsize": 4}
    agent = make_agent(name, SPEC, 0, settings)
    play_batches(agent, range(0, 9), 3)
    state = agent.state_dict()
    restored = make_agent(name, SPEC, 0, settings)
    restored.load_state_dict(state)
    assert play_batches(restored, range(9, 15), 3) == play_batches(agent, range(9, 15), 3)
    # Batched asks are not the one-at-a-time ones: the replay had to follow the batch order.
    sequential = make_agent(name, SPEC, 0, settings)
    play_batches(sequential, range(0, 9), 1)
    assert play_batches(sequential, range(9, 15), 1) != play_batches(restored, range(15, 21), 3)


def test_cmaes_started_at_a_seed_policy_searches_around_it() -> None:
    """``{x0: seed}``: CMA-ES's trials centre on the first seed policy; without it they centre
    on the middle of the box (0.6 here) and the seed is only evaluated once. A restored agent
    proposes what the uninterrupted one does."""
    seed = [0.95, 0.25, 0.9, 0.3]
    settings = {"x0": "seed", "sigma0": 0.02, "popsize": 4}
    asked = {}
    for name, kw in (("warm", settings), ("cold", {"sigma0": 0.02, "popsize": 4})):
        agent = make_agent("cmaes", SPEC, 0, kw)
        agent.seed_with([seed])
        asked[name] = play(agent, [lambda r: -sum(r)] * 10)
        assert asked[name][0] == pytest.approx(seed)  # the seed is played first either way

    def distance(trials: list[list[float]]) -> float:
        return max(abs(a - s) for t in trials for a, s in zip(t, seed, strict=True))

    assert distance(asked["warm"][2:]) < 0.15 < 0.3 < distance(asked["cold"][2:])
    agent = make_agent("cmaes", SPEC, 0, settings)
    agent.seed_with([seed])
    play(agent, [lambda r: -sum(r)] * 6)
    restored = make_agent("cmaes", SPEC, 0, settings)
    restored.seed_with([seed])
    restored.load_state_dict(agent.state_dict())
    assert play_batches(restored, range(6, 10), 1) == play_batches(agent, range(6, 10), 1)
