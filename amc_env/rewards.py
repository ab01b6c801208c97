"""Episode rewards (given at the last step; intermediate steps get 0).

Each reward maps the finished episode's ``info`` (``accuracy`` as a fraction, ``macs``, ``params``,
``latency_ms`` when measured, ``budget_latency_ms`` for latency targets) to a float:

- ``acc``: validation accuracy; the action wall guarantees the budget (AMC's
  resource-constrained reward);
- ``acc_log_flops``: ``-error * log(MACs)`` (AMC's accuracy-guaranteed reward);
- ``acc_latency``: accuracy minus ``penalty x`` the relative excess of measured latency over the
  latency budget (0 when within budget).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from amc_agent.env.registry import Registry

Reward = Callable[[dict[str, Any]], float]
REWARDS: Registry[Reward] = Registry("reward")
LATENCY_PENALTY = 2.0


@REWARDS.register("acc")
def acc(info: dict[str, Any]) -> float:
    """Validation accuracy in [0, 1]."""
    return float(info["accuracy"])


@REWARDS.register("acc_log_flops")
def acc_log_flops(info: dict[str, Any]) -> float:
    """-(1 - accuracy) * ln(MACs), AMC's accuracy-guaranteed reward."""
    return -(1.0 - float(info["accuracy"])) * math.log(max(1, int(info["macs"])))


@REWARDS.register("acc_latency")
def acc_latency(info: dict[str, Any]) -> float:
    """Accuracy minus ``LATENCY_PENALTY`` x relative excess of measured latency over budget."""
    lat, budget = info.get("latency_ms"), info.get("budget_latency_ms")
    if lat is None or not budget:
        raise ValueError("reward 'acc_latency' needs --target latency (a measured latency)")
    return float(info["accuracy"]) - LATENCY_PENALTY * max(0.0, lat / budget - 1.0)


def make_reward(spec: str | Reward) -> Reward:
    """A reward function from a registered name, or ``spec`` itself if callable."""
    return spec if callable(spec) else REWARDS.get(spec)
