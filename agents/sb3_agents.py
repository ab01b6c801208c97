"""stable-baselines3 algorithms driven one episode at a time.

SB3's ``learn()`` owns its loop; a pruning search needs episode-level control (the final reward,
checkpoints at episode boundaries, exact resume), so these drivers use SB3's policies, buffers,
noise and ``train()`` and run the loop themselves. Off-policy algorithms (``ddpg``, ``td3``,
``sac`` and AMC's DDPG) store transitions in SB3's replay buffer and take gradient steps after each
episode once the warm-up of uniformly random episodes is over; ``ppo`` fills SB3's rollout buffer
and trains when it is full (every ``episodes_per_rollout`` episodes).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DDPG, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor

from amc_agent.agents.base import AGENTS, Agent, AgentSpec
from amc_agent.agents.noise import TruncatedNormalNoise
from amc_agent.agents.rng import generator_state, set_generator_state
from amc_agent.env.errors import UserError

DEFAULT_WARMUP_EPISODES = 100
"""AMC's warm-up (100 random episodes before learning, in 400-800-episode searches)."""


WARM_START_WARMUP_EPISODES = 10
"""Random episodes before a warm-started actor learns: enough to give its critic varied data."""


def default_warmup(episodes: int, warm_start: bool = False) -> int:
    """Warm-up episodes of a search of ``episodes``: AMC's 100 (10 when the actor starts from a
    trained one), but at most a third of the search, so a short search still spends two thirds
    of its episodes learning."""
    cap = WARM_START_WARMUP_EPISODES if warm_start else DEFAULT_WARMUP_EPISODES
    return min(cap, episodes // 3)


class SpacesEnv(gym.Env):
    """Carries the spaces SB3 needs to build a model; never stepped (the search loop steps the
    real environment)."""

    def __init__(self, spec: AgentSpec) -> None:
        self.observation_space, self.action_space = spec.observation_space, spec.action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action: np.ndarray) -> tuple:
        raise RuntimeError("SpacesEnv only describes spaces")


def _buffer_state(buf: Any) -> dict[str, Any]:
    """Arrays and scalar fields (position, fullness, reward baseline, ...) of an SB3 buffer."""
    state: dict[str, Any] = {}
    for k, v in vars(buf).items():
        if isinstance(v, np.ndarray):
            state[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif isinstance(v, bool | int | float) and not isinstance(v, np.generic):
            state[k] = v
    return state


def _load_buffer_state(buf: Any, state: dict[str, Any]) -> None:
    for k, v in state.items():
        setattr(buf, k, v.numpy().copy() if isinstance(v, torch.Tensor) else v)


class SB3Agent(Agent):
    """Shared plumbing: a silent SB3 logger, resumable parameters and buffers."""

    def __init__(self, name: str, algo: BaseAlgorithm, spec: AgentSpec, seed: int,
                 overrides: dict[str, Any]) -> None:
        self.name, self.algo, self.spec, self.overrides = name, algo, spec, overrides
        algo.set_logger(configure(None, [""]))
        self.rng = np.random.default_rng(seed)

    def _tensors(self) -> dict[str, torch.Tensor]:
        _, names = self.algo._get_torch_save_params()
        return {n: getattr(self.algo, n).detach().clone() for n in names}

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.algo.get_parameters(), "tensors": self._tensors(),
                "n_updates": self.algo._n_updates, "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.algo.set_parameters(state["params"], exact_match=True)
        with torch.no_grad():
            for n, t in state["tensors"].items():
                getattr(self.algo, n).copy_(t)
        self.algo._n_updates = state["n_updates"]
        set_generator_state(self.rng, state["rng"])

    def actor_state(self) -> dict[str, Any]:
        return {"agent": self.name, "overrides": self.overrides,
                "policy": self.algo.policy.state_dict()}

    def load_actor(self, state: dict[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise UserError(f"the actor to start from was trained by {state.get('agent')!r}; "
                            f"search with --agent {state.get('agent')}")
        try:
            self.algo.policy.load_state_dict(state["policy"])
        except RuntimeError:
            raise UserError(
                "the actor to start from does not fit this search's networks (another "
                f"observation size than this version's {self.spec.observation_space.shape[0]} "
                "features, or other hidden sizes in --agent-kwargs)") from None

    def deterministic_action(self, obs: np.ndarray) -> float:
        action, _ = self.algo.predict(obs, deterministic=True)
        return float(np.clip(action[0], self.spec.low, self.spec.high))


class OffPolicyAgent(SB3Agent):
    """DDPG/TD3/SAC (and AMC's DDPG): warm-up, exploration noise, replay, updates per episode.

    ``broadcast_reward`` stores every transition of an episode with the episode's final reward
    (AMC) instead of the env's per-step rewards (0 until the last step).
    """

    def __init__(
        self,
        name: str,
        algo: OffPolicyAlgorithm,
        spec: AgentSpec,
        seed: int,
        overrides: dict[str, Any],
        warmup_episodes: int,
        noise: ActionNoise | None,
        broadcast_reward: bool = False,
        updates_per_episode: int | None = None,
    ) -> None:
        super().__init__(name, algo, spec, seed, overrides)
        self.warmup, self.noise, self.broadcast = warmup_episodes, noise, broadcast_reward
        self.updates = updates_per_episode or spec.steps_per_episode
        self._episode: list[tuple] = []

    def act(self, obs: np.ndarray, episode: int) -> float:
        if episode < self.warmup:
            return float(self.rng.uniform(self.spec.low, self.spec.high))
        if isinstance(self.noise, TruncatedNormalNoise):
            return float(self.noise.sample(np.array([self.deterministic_action(obs)]))[0])
        action, _ = self.algo.predict(obs, deterministic=self.noise is not None)
        if self.noise is not None:
            scaled = np.clip(self.algo.policy.scale_action(action) + self.noise(), -1, 1)
            action = self.algo.policy.unscale_action(scaled)
        return float(np.clip(action[0], self.spec.low, self.spec.high))

    def observe(self, obs: np.ndarray, action: float, reward: float, next_obs: np.ndarray,
                done: bool) -> None:
        scaled = self.algo.policy.scale_action(np.array([action], dtype=np.float32))
        self._episode.append((obs, next_obs, scaled, reward, done))

    def end_episode(self, episode: int, reward: float) -> dict[str, float]:
        buf = self.algo.replay_buffer
        for obs, next_obs, act, r, done in self._episode:
            stored = reward if self.broadcast else r
            buf.add(obs[None], next_obs[None], act[None], np.array([stored]), np.array([done]),
                    [{}])
        self._episode = []
        if episode >= self.warmup - 1 and buf.size() >= self.algo.batch_size:
            self.algo.train(gradient_steps=self.updates, batch_size=self.algo.batch_size)
        stats: dict[str, float] = {}
        if isinstance(self.noise, TruncatedNormalNoise):
            stats["sigma"] = self.noise.sigma  # the sigma this episode explored with
        if episode >= self.warmup and self.noise is not None:
            self.noise.reset()
        if hasattr(buf, "baseline"):
            stats["reward_baseline"] = float(buf.baseline)
        return stats

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["buffer"] = _buffer_state(self.algo.replay_buffer)
        if isinstance(self.noise, TruncatedNormalNoise):
            state["noise"] = self.noise.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        _load_buffer_state(self.algo.replay_buffer, state["buffer"])
        if isinstance(self.noise, TruncatedNormalNoise):
            self.noise.load_state_dict(state["noise"])


class OnPolicyAgent(SB3Agent):
    """PPO: rollouts of whole episodes into SB3's rollout buffer, ``train()`` when it is full."""

    def __init__(self, name: str, algo: OnPolicyAlgorithm, spec: AgentSpec, seed: int,
                 overrides: dict[str, Any]) -> None:
        super().__init__(name, algo, spec, seed, overrides)
        self._pending: tuple | None = None
        self._start = True

    def act(self, obs: np.ndarray, episode: int) -> float:
        with torch.no_grad():
            actions, values, log_probs = self.algo.policy(obs_as_tensor(obs[None], "cpu"))
        self._pending = (actions.numpy(), values, log_probs)
        return float(np.clip(actions.numpy()[0, 0], self.spec.low, self.spec.high))

    def observe(self, obs: np.ndarray, action: float, reward: float, next_obs: np.ndarray,
                done: bool) -> None:
        assert self._pending is not None
        actions, values, log_probs = self._pending
        self.algo.rollout_buffer.add(obs[None], actions, np.array([reward]),
                                     np.array([self._start]), values, log_probs)
        self._start = done
        self._last = (next_obs, done)

    def end_episode(self, episode: int, reward: float) -> dict[str, float]:
        buf = self.algo.rollout_buffer
        if buf.full:
            next_obs, done = self._last
            with torch.no_grad():
                values = self.algo.policy.predict_values(obs_as_tensor(next_obs[None], "cpu"))
            buf.compute_returns_and_advantage(last_values=values, dones=np.array([done]))
            self.algo.train()
            buf.reset()
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": _buffer_state(self.algo.rollout_buffer)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        _load_buffer_state(self.algo.rollout_buffer, state["buffer"])


def _split(overrides: dict[str, Any], keys: tuple[str, ...]) -> tuple[dict, dict]:
    mine = {k: overrides.pop(k) for k in keys if k in overrides}
    return mine, overrides


def _build(cls: type[BaseAlgorithm], spec: AgentSpec, seed: int, kwargs: dict) -> BaseAlgorithm:
    try:
        return cls("MlpPolicy", SpacesEnv(spec), seed=seed, device="cpu", verbose=0, **kwargs)
    except TypeError as exc:
        raise UserError(f"bad {cls.__name__} setting: {exc}") from None


def _off_policy(cls: type[OffPolicyAlgorithm], name: str) -> None:
    def factory(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
        ours, algo_kw = _split(dict(overrides), ("warmup_episodes", "updates_per_episode",
                                                 "action_noise_sigma"))
        warmup = int(ours.get("warmup_episodes",
                              default_warmup(spec.episodes, spec.warm_start)))
        algo_kw.setdefault("buffer_size", max(1, spec.episodes) * spec.steps_per_episode)
        algo_kw.setdefault("learning_starts", 0)
        algo = _build(cls, spec, seed, algo_kw)
        noise = None
        if cls is not SAC:  # SAC explores through its stochastic policy
            sigma = float(ours.get("action_noise_sigma", 0.1))
            noise = NormalActionNoise(np.zeros(1), sigma * np.ones(1))
        return OffPolicyAgent(name, algo, spec, seed, overrides, warmup, noise,
                              updates_per_episode=ours.get("updates_per_episode"))

    factory.__doc__ = f"stable-baselines3 {cls.__name__} with its default hyper-parameters."
    AGENTS.register(name)(factory)


_off_policy(DDPG, "ddpg")
_off_policy(TD3, "td3")
_off_policy(SAC, "sac")


@AGENTS.register("ppo")
def make_ppo(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """stable-baselines3 PPO; a rollout is ``episodes_per_rollout`` whole episodes (default 4)."""
    ours, kw = _split(dict(overrides), ("episodes_per_rollout",))
    kw.setdefault("n_steps", int(ours.get("episodes_per_rollout", 4)) * spec.steps_per_episode)
    kw.setdefault("batch_size", min(64, kw["n_steps"]))
    return OnPolicyAgent("ppo", _build(PPO, spec, seed, kw), spec, seed, overrides)
