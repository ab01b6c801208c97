"""AMC's DDPG (He et al., ECCV 2018, section 3.4; mit-han-lab/amc ``lib/agent.py``) on
stable-baselines3.

SB3's TD3 with one critic, no target-policy smoothing and ``policy_delay=1`` *is* DDPG; AMC adds:

- actor and critic with two hidden layers of 300 units;
- two learning rates (actor 1e-4, critic 1e-3) where SB3 has one: :class:`AMCDDPG` overrides
  ``_update_learning_rate``;
- tau 0.01, gamma 1 (the episode is short and the reward comes at its end), batch 64;
- a replay buffer sized in episodes;
- warm-up episodes of uniform random actions, then truncated-normal exploration around the
  actor's output, sigma 0.5 decayed per episode (:mod:`amc_agent.agents.noise`). AMC decays x0.95,
  sized to its 400-800-episode searches: after a 100-episode warm-up sigma is below 0.003 from
  episode ~220 on, so the last third of a 300-episode search replays one policy. Here the decay is
  sized to the search instead (``sigma_final`` at the last episode; ``{sigma_decay: 0.95}`` restores
  AMC's);
- the episode's final reward given to every transition of the episode;
- a moving-average reward baseline subtracted from the rewards in the critic target
  (:class:`BaselineReplayBuffer`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from stable_baselines3 import TD3
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import update_learning_rate

from amc_agent.agents.base import AGENTS, Agent, AgentSpec
from amc_agent.agents.noise import TruncatedNormalNoise
from amc_agent.agents.sb3_agents import OffPolicyAgent, SpacesEnv, default_warmup
from amc_agent.env.errors import UserError


@dataclass
class AMCDDPGConfig:
    """AMC's DDPG hyper-parameters (defaults: the paper and its official code)."""

    hidden: tuple[int, ...] = (300, 300)
    """Hidden layer sizes of actor and critic."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic."""
    tau: float = 0.01
    """Soft target-update rate."""
    gamma: float = 1.0
    """Discount (1: the reward arrives at the end of a short episode)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    buffer_episodes: int = 100
    """Replay buffer size, in episodes (x units per episode transitions)."""
    warmup_episodes: int | None = None
    """Episodes of uniformly random keep ratios before learning starts (None: AMC's 100, at
    most a third of the search; amc_agent.agents.sb3_agents.default_warmup)."""
    sigma0: float = 0.5
    """Initial standard deviation of the truncated-normal exploration (keep-ratio units)."""
    sigma_decay: float | None = None
    """Sigma multiplier per episode after the warm-up (None: the one that reaches
    ``sigma_final`` at the search's last episode; AMC: 0.95)."""
    sigma_final: float = 0.05
    """Exploration sigma of the last episode when ``sigma_decay`` is None."""
    moving_alpha: float = 0.5
    """Update rate of the moving-average reward baseline."""
    updates_per_episode: int | None = None
    """Gradient steps after each episode (None: one per unit, as AMC)."""


class BaselineReplayBuffer(ReplayBuffer):
    """A replay buffer whose samples have a moving-average reward baseline subtracted (AMC).

    Each ``sample`` updates ``baseline += moving_alpha * (mean sampled reward - baseline)`` and
    returns rewards minus the baseline, so the critic learns the advantage over recent policies.
    """

    def __init__(self, *args: Any, moving_alpha: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moving_alpha = moving_alpha
        self.baseline = 0.0
        self._seen = False

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        data = super().sample(batch_size, env)
        mean = float(data.rewards.mean())
        # AMC starts the average at the first batch's mean rather than at 0.
        self.baseline = mean if not self._seen else \
            self.baseline + self.moving_alpha * (mean - self.baseline)
        self._seen = True
        return data._replace(rewards=data.rewards - self.baseline)


class AMCDDPG(TD3):
    """SB3 TD3 configured as AMC's DDPG, with separate actor and critic learning rates."""

    def __init__(self, env: SpacesEnv, cfg: AMCDDPGConfig, buffer_size: int, seed: int) -> None:
        self.actor_lr, self.critic_lr = cfg.actor_lr, cfg.critic_lr
        super().__init__(
            "MlpPolicy", env, learning_rate=cfg.critic_lr, buffer_size=buffer_size,
            learning_starts=0, batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
            policy_delay=1, target_policy_noise=0.0, target_noise_clip=0.0,
            replay_buffer_class=BaselineReplayBuffer,
            replay_buffer_kwargs={"moving_alpha": cfg.moving_alpha},
            policy_kwargs={"net_arch": list(cfg.hidden), "n_critics": 1},
            seed=seed, device="cpu", verbose=0,
        )
        # SB3 builds both optimisers with one rate; give the actor its own from the start.
        update_learning_rate(self.actor.optimizer, self.actor_lr)

    def _update_learning_rate(self, optimizers: Any) -> None:
        update_learning_rate(self.actor.optimizer, self.actor_lr)
        update_learning_rate(self.critic.optimizer, self.critic_lr)


def amc_config(overrides: dict[str, Any]) -> AMCDDPGConfig:
    """The config with ``overrides`` applied; unknown keys are a :class:`UserError`."""
    fields = {f.name for f in dataclasses.fields(AMCDDPGConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"unknown amc-ddpg setting(s) {unknown}; valid: {sorted(fields)}")
    cfg = dataclasses.replace(AMCDDPGConfig(), **overrides)
    cfg.hidden = tuple(int(h) for h in cfg.hidden)
    return cfg


def sigma_decay(cfg: AMCDDPGConfig, episodes: int) -> float:
    """The per-episode sigma multiplier: ``cfg.sigma_decay``, or the one that takes sigma from
    ``sigma0`` to ``sigma_final`` over the episodes after the warm-up."""
    if cfg.sigma_decay is not None:
        return cfg.sigma_decay
    if not 0 < cfg.sigma_final <= cfg.sigma0:
        raise UserError(f"sigma_final must be in (0, sigma0={cfg.sigma0}], got {cfg.sigma_final}")
    warmup = default_warmup(episodes) if cfg.warmup_episodes is None else cfg.warmup_episodes
    return (cfg.sigma_final / cfg.sigma0) ** (1 / max(1, episodes - warmup - 1))


@AGENTS.register("amc-ddpg")
def make_amc_ddpg(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """AMC's DDPG agent (see the module docstring)."""
    cfg = amc_config(overrides)
    if cfg.warmup_episodes is None:
        cfg.warmup_episodes = default_warmup(spec.episodes, spec.warm_start)
    torch.manual_seed(seed)
    algo = AMCDDPG(SpacesEnv(spec), cfg, cfg.buffer_episodes * spec.steps_per_episode, seed)
    noise = TruncatedNormalNoise(cfg.sigma0, sigma_decay(cfg, spec.episodes), spec.low, spec.high,
                                 seed + 1)
    return OffPolicyAgent("amc-ddpg", algo, spec, seed, overrides, cfg.warmup_episodes, noise,
                          broadcast_reward=True, updates_per_episode=cfg.updates_per_episode)
