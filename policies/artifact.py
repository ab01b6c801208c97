"""The policy artifact, ``policy.json`` (``"format": "amc-policy/1"``).

A policy maps a model's prunable units (by root module name) to keep ratios, with everything
needed to judge and reuse it: the model recipe and a fingerprint of its unit structure, the
dataset and input shape, target, budget (and the budget range of a budget-conditioned search),
criterion, rounding and lower bound, metrics (validation
accuracy, MACs, params, latency with its device) and the agent that found it. ``actor`` names a
weights file beside the JSON holding the agent's trained actor, which is what lets a policy be
re-derived for a model the agent never saw.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amc_agent.env import atomic
from amc_agent.env.env import OBSERVATIONS
from amc_agent.env.errors import UserError
from amc_agent.env.units import Unit

FORMAT = "amc-policy/1"


def fingerprint(units: list[Unit]) -> str:
    """Hash of the unit structure (names and widths, in order): equal iff ratios apply as-is."""
    text = "\n".join(f"{u.name}:{u.channels}" for u in units)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Policy:
    """One pruning policy (see the module docstring for the fields)."""

    model: dict[str, Any]
    fingerprint: str
    input_shape: list[int]
    dataset: str
    target: str
    budget: float
    criterion: str
    round_to: int
    lbound: float
    keep_ratios: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None
    channels: dict[str, int] = field(default_factory=dict)
    """Original width of each unit (for naming mismatches when applying)."""
    budget_range: list[float] | None = None
    """``[low, high]`` of a budget-conditioned search: its actor was trained on every budget
    in that range (``budget`` is the midpoint, where ``keep_ratios`` were derived)."""
    strict_round: bool = False
    """Whether every unit stepped by ``round_to`` (``EnvConfig.strict_round``); policies from
    before the field have the adaptive steps."""
    observation: str = "amc"
    """The observation set the actor was trained on (``amc_agent.env.env.OBSERVATIONS``); an
    applied actor sees the same one."""
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the previous file intact)."""
        atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read and validate ``path``; :class:`UserError` names the first problem found."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"policy {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"policy {path} is not valid JSON (truncated or corrupt?)") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "policy") -> Policy:
        """Validate a decoded policy."""
        if not isinstance(data, dict):
            raise UserError(f"{where} is not a JSON object")
        if data.get("format") != FORMAT:
            raise UserError(f"{where} has format {data.get('format')!r}, expected {FORMAT!r}")
        types = {"model": dict, "fingerprint": str, "input_shape": list, "dataset": str,
                 "target": str, "budget": (int, float), "criterion": str, "round_to": int,
                 "lbound": (int, float), "keep_ratios": dict, "metrics": dict, "agent": dict}
        for key, typ in types.items():
            if not isinstance(data.get(key), typ):
                raise UserError(f"{where}: field {key!r} is missing or has the wrong type")
        if not isinstance(data["model"].get("name"), str):
            raise UserError(f"{where}: model recipe has no name")
        if not 0 < data["budget"] <= 1:
            raise UserError(f"{where}: budget {data['budget']} is not in (0, 1]")
        for name, r in data["keep_ratios"].items():
            if not isinstance(r, int | float) or not math.isfinite(r) or not 0 < r <= 1:
                raise UserError(f"{where}: keep ratio of unit {name!r} is {r!r}, not in (0, 1]")
        if not data["keep_ratios"]:
            raise UserError(f"{where}: no keep ratios")
        actor = data.get("actor")
        if actor is not None and not isinstance(actor, str):
            raise UserError(f"{where}: field 'actor' must be a file name or null")
        rng = data.get("budget_range")
        if rng is not None and not (isinstance(rng, list) and len(rng) == 2
                                    and all(isinstance(b, int | float) for b in rng)
                                    and 0 < rng[0] < rng[1] <= 1):
            raise UserError(f"{where}: budget_range must be [low, high] with 0 < low < high <= 1")
        if not isinstance(data.get("strict_round", False), bool):
            raise UserError(f"{where}: field 'strict_round' must be true or false")
        obs = data.get("observation", "amc")
        if obs not in OBSERVATIONS:
            raise UserError(f"{where}: unknown observation {obs!r}; valid: "
                            f"{', '.join(OBSERVATIONS)}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
