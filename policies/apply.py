"""Applying a policy to a model: by unit name on the same architecture, or through the policy's
saved actor on a new one (policy transfer, which AMC described but never shipped).

- **ratios mode**: the model's unit structure has the policy's fingerprint (same names, same
  widths) and the budget is the policy's: the keep ratios are applied as they are.
- **actor mode**: the structure differs (deeper/wider network, another torchvision model) or a
  different budget is asked for, and the policy carries an actor: the actor is run over the new
  model's unit states, deterministically, with the action wall at the requested budget. The
  actor sees that budget in its observation: an actor from a budget-conditioned search
  (``amc-search --budget LOW:HIGH``) was trained on every budget in its range and is only run
  inside it; one searched at a single budget is run at another as transfer.
- otherwise the policy is refused with the list of mismatched units.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from amc_agent.agents import AgentSpec, make_agent
from amc_agent.env import atomic
from amc_agent.env.datasets import DataSplits
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy, fingerprint

MODES = {"ratios": "applied the policy's keep ratios by unit name (same architecture)",
         "actor": "derived keep ratios by running the policy's actor on this model (transfer)"}


@dataclass
class Applied:
    """A policy applied: the pruned model, its record and the episode's ``info``."""

    model: nn.Module
    record: dict[str, Any]
    keep_ratios: dict[str, float]
    mode: str
    info: dict[str, Any]


def mismatches(policy: Policy, env: ChannelPruningEnv) -> list[str]:
    """Human-readable differences between the policy's units and the model's."""
    have = {u.name: u.channels for u in env.units}
    out = [f"{n} (not in the model)" for n in policy.keep_ratios if n not in have]
    out += [f"{n} (not in the policy)" for n in have if n not in policy.keep_ratios]
    out += [f"{n} ({policy.channels[n]} channels in the policy, {have[n]} in the model)"
            for n in policy.keep_ratios if n in have and n in policy.channels
            and policy.channels[n] != have[n]]
    return out


def env_for(policy: Policy, model: nn.Module, data: DataSplits, budget: float | None,
            device: str, **overrides: Any) -> ChannelPruningEnv:
    """An environment with the policy's target, criterion, rounding and lower bound."""
    cfg = EnvConfig(target=policy.target, budget=policy.budget if budget is None else budget,
                    lbound=policy.lbound, round_to=policy.round_to,
                    strict_round=policy.strict_round, criterion=policy.criterion,
                    observation=policy.observation, device=device)
    return ChannelPruningEnv(model, data, dataclasses.replace(cfg, **overrides))


def check_in_range(policy: Policy, budget: float) -> None:
    """:class:`UserError` if ``policy`` is budget-conditioned and ``budget`` is outside the
    range its actor was trained on."""
    if policy.budget_range is not None and \
            not policy.budget_range[0] - 1e-12 <= budget <= policy.budget_range[1] + 1e-12:
        low, high = policy.budget_range
        raise UserError(f"budget {budget} is outside {low}:{high}, the range the policy's actor "
                        "was trained on; search with a range that covers it")


def run_actor(policy: Policy, policy_dir: Path, env: ChannelPruningEnv) -> dict[str, Any]:
    """One deterministic episode of the policy's actor on ``env``, which sees the observation
    set the actor was trained on for that episode; returns the final info."""
    previous = env.cfg.observation
    env.use_observation(policy.observation)
    try:
        return _actor_episode(policy, policy_dir, env)
    finally:
        env.use_observation(previous)


def _actor_episode(policy: Policy, policy_dir: Path, env: ChannelPruningEnv) -> dict[str, Any]:
    path = Path(policy_dir) / str(policy.actor)
    actor = atomic.read_torch(path, "the policy's actor file")
    spec = AgentSpec(env.observation_space, env.action_space, env.n_units, 1)
    agent = make_agent(actor["agent"], spec, int(policy.agent.get("seed", 0)),
                       actor.get("overrides", {}))
    try:
        agent.algo.policy.load_state_dict(actor["policy"])
    except RuntimeError:
        raise UserError(f"the policy's actor {path} does not take this version's "
                        f"{spec.observation_space.shape[0]}-feature observation (an actor from "
                        "an older release); search again to re-derive ratios") from None
    obs, _ = env.reset(seed=0)
    info: dict[str, Any] = {}
    for _ in range(env.n_units):
        action = agent.deterministic_action(obs)
        obs, _, _, _, info = env.step(np.array([action], dtype=np.float32))
    return info


def apply_policy(policy: Policy, policy_dir: Path, model: nn.Module, data: DataSplits,
                 budget: float | None = None, device: str = "cpu",
                 **env_overrides: Any) -> Applied:
    """Prune ``model`` with ``policy`` (see the module docstring for the two modes)."""
    if budget is not None and policy.target == "latency":
        raise UserError("changing the budget of a latency policy is not supported; "
                        "search again on the target device")
    if budget is not None:
        check_in_range(policy, budget)
    same_budget = budget is None or abs(budget - policy.budget) < 1e-12
    env = env_for(policy, model, data, budget, device, fill_budget=False, **env_overrides)
    if fingerprint(env.units) == policy.fingerprint and same_budget:
        info = env.play(policy.keep_ratios)
        return Applied(env.pruned_model(), info["pruning"], info["keep_ratios"], "ratios", info)
    if policy.actor is None:
        if fingerprint(env.units) == policy.fingerprint:
            raise UserError(f"the policy was searched at budget {policy.budget} and carries no "
                            "actor to re-derive ratios for another budget; drop --budget")
        diff = mismatches(policy, env)
        shown = "; ".join(diff[:8]) + (f"; ... {len(diff) - 8} more" if len(diff) > 8 else "")
        raise UserError(f"the policy (ratios only, no actor) does not fit this model: {shown}")
    env = env_for(policy, model, data, budget, device, **env_overrides)
    info = run_actor(policy, policy_dir, env)
    return Applied(env.pruned_model(), info["pruning"], info["keep_ratios"], "actor", info)
