"""Agents: AMC's DDPG specifics, every registered agent, exploration noise."""

from __future__ import annotations

import dataclasses
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from amc_agent.agents import AGENTS, AgentSpec, make_agent
from amc_agent.agents.amc_ddpg import BaselineReplayBuffer
from amc_agent.agents.noise import TruncatedNormalNoise
from amc_agent.agents.rng import global_rng_state, set_global_rng_state
from amc_agent.env.errors import UserError

SPEC = AgentSpec(gym.spaces.Box(0, 1, (12,), np.float32),
                 gym.spaces.Box(np.float32(0.2), np.float32(1.0), (1,), np.float32), 4, 20)


def play(agent, episodes: int, reward: float = 0.7) -> list[dict]:
    rng = np.random.default_rng(0)
    stats = []
    for ep in range(episodes):
        obs = rng.random(12).astype(np.float32)
        for t in range(SPEC.steps_per_episode):
            a = agent.act(obs, ep)
            assert SPEC.low <= a <= SPEC.high
            nxt = rng.random(12).astype(np.float32)
            last = t == SPEC.steps_per_episode - 1
            agent.observe(obs, a, reward if last else 0.0, nxt, last)
            obs = nxt
        stats.append(agent.end_episode(ep, reward))
    return stats


def test_truncated_normal_stays_in_bounds_and_decays() -> None:
    noise = TruncatedNormalNoise(0.5, 0.95, 0.2, 1.0, seed=0)
    for mu in (0.2, 0.21, 0.6, 0.99, 1.0):
        x = noise.sample(np.full(2000, mu))
        assert x.min() >= 0.2 and x.max() <= 1.0
    x = noise.sample(np.full(20000, 0.6))
    assert abs(np.median(x) - 0.6) < 0.02  # symmetric bounds around 0.6: median stays put
    for _ in range(10):
        noise.reset()
    assert noise.sigma == pytest.approx(0.5 * 0.95**10)
    state = noise.state_dict()
    a = noise.sample(np.full(5, 0.5))
    noise.load_state_dict(state)
    assert np.array_equal(a, noise.sample(np.full(5, 0.5)))


def test_amc_ddpg_sigma_schedule_and_learning_rates() -> None:
    agent = make_agent("amc-ddpg", SPEC, 0, {"warmup_episodes": 3, "batch_size": 8,
                                             "sigma_decay": 0.95})
    stats = play(agent, 7)
    # Warm-up episodes use sigma0; afterwards sigma0 * 0.95^(episode - warmup) (AMC's decay).
    assert [s["sigma"] for s in stats] == pytest.approx(
        [0.5, 0.5, 0.5, 0.5, 0.5 * 0.95, 0.5 * 0.95**2, 0.5 * 0.95**3])
    # By default the decay is sized to the search: sigma_final at the last episode.
    spec = dataclasses.replace(SPEC, episodes=13)
    sized = play(make_agent("amc-ddpg", spec, 0, {"warmup_episodes": 3, "batch_size": 8,
                                                  "sigma_final": 0.1}), 13)
    assert [s["sigma"] for s in sized[:4]] == [0.5] * 4
    assert sized[-1]["sigma"] == pytest.approx(0.1)
    assert all(a["sigma"] > b["sigma"] for a, b in itertools.pairwise(sized[3:]))
    algo = agent.algo
    assert algo._n_updates > 0
    assert [g["lr"] for g in algo.actor.optimizer.param_groups] == [1e-4]
    assert [g["lr"] for g in algo.critic.optimizer.param_groups] == [1e-3]
    assert algo.tau == 0.01 and algo.gamma == 1.0 and algo.batch_size == 8
    assert [m.out_features for m in algo.actor.mu if isinstance(m, torch.nn.Linear)] == \
        [300, 300, 1]


def test_episode_reward_is_copied_to_every_transition() -> None:
    ddpg = make_agent("amc-ddpg", SPEC, 0, {"warmup_episodes": 10})
    play(ddpg, 2, reward=0.42)
    buf = ddpg.algo.replay_buffer
    assert np.allclose(buf.rewards[: buf.pos].ravel(), 0.42)
    td3 = make_agent("td3", SPEC, 0, {"warmup_episodes": 10})
    play(td3, 1, reward=0.42)
    assert td3.algo.replay_buffer.rewards[:4].ravel().tolist() == pytest.approx([0, 0, 0, 0.42])


def test_moving_average_baseline_is_subtracted() -> None:
    buf = BaselineReplayBuffer(16, SPEC.observation_space, SPEC.action_space, device="cpu",
                               moving_alpha=0.5)
    for r in (1.0, 1.0, 1.0, 1.0):
        buf.add(np.zeros((1, 12)), np.zeros((1, 12)), np.zeros((1, 1)), np.array([r]),
                np.array([False]), [{}])
    first = buf.sample(4)
    assert buf.baseline == pytest.approx(1.0) and torch.allclose(first.rewards, torch.zeros(1))
    buf.rewards[:4] = 3.0
    buf.sample(4)
    assert buf.baseline == pytest.approx(2.0)  # 1 + 0.5 * (3 - 1)


@pytest.mark.parametrize("name", AGENTS.names())
def test_every_agent_learns_and_resumes_exactly(name: str) -> None:
    kw = {"random": {}, "ppo": {"episodes_per_rollout": 1}, "tpe": {"n_startup_trials": 1},
          "cmaes": {}}.get(
        name, {"warmup_episodes": 1, "batch_size": 4})
    agent = make_agent(name, SPEC, 3, kw)
    play(agent, 2)
    state = agent.state_dict()
    rng = global_rng_state()
    twin = make_agent(name, SPEC, 99, kw)
    twin.load_state_dict(state)
    obs = np.full(12, 0.5, np.float32)
    set_global_rng_state(rng)
    a = [agent.act(obs, 5) for _ in range(3)]
    set_global_rng_state(rng)
    b = [twin.act(obs, 5) for _ in range(3)]
    assert a == b


def test_unknown_agent_and_setting() -> None:
    with pytest.raises(UserError, match="unknown agent 'dqn'; valid names: .*amc-ddpg"):
        make_agent("dqn", SPEC, 0)
    with pytest.raises(UserError, match="unknown amc-ddpg setting"):
        make_agent("amc-ddpg", SPEC, 0, {"sigma": 0.3})
    with pytest.raises(UserError, match="bad TD3 setting"):
        make_agent("td3", SPEC, 0, {"not_a_kwarg": 1})


@pytest.mark.parametrize("name", ["amc-ddpg", "td3"])
def test_warmup_is_amcs_100_episodes_but_at_most_a_third_of_the_search(name) -> None:
    def warmup(episodes: int, **kw) -> int:
        return make_agent(name, dataclasses.replace(SPEC, episodes=episodes), 0, kw).warmup

    assert [warmup(e) for e in (30, 150, 300, 800)] == [10, 50, 100, 100]
    assert warmup(150, warmup_episodes=120) == 120
    if name == "amc-ddpg":
        # The exploration decay is sized to the episodes after the warm-up it gets.
        agent = make_agent(name, dataclasses.replace(SPEC, episodes=150), 0, {})
        assert agent.noise.decay ** (150 - 50 - 1) * 0.5 == pytest.approx(0.05)
