"""Keep ratios, channel rounding and AMC's action wall.

Conventions (DESIGN.md section 4): an action is a **keep ratio** in ``[lbound, 1]``; Torch-Pruning
speaks of ratios *removed*, converted only by :func:`removal_ratio`. Channel counts are multiples
of ``round_to`` where a unit is wide enough (a unit narrower than ``8 x round_to`` uses the
largest power-of-two step that still gives it eight choices), never below one step, never above
the unit's width.

The wall (AMC section 3.3, made two-sided): before unit ``t`` is cut, its channel count is
clipped to ``[low, high]`` where ``high`` is the most it may keep so the budget is still reachable
if every later unit drops to its minimum, and ``low`` the least it must keep so the budget is still
*used* if every later unit keeps everything. After the last unit the model's cost is at most the
budget and within one rounding step of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def removal_ratio(keep_ratio: float) -> float:
    """Torch-Pruning's pruning ratio (fraction removed) for AMC's keep ratio."""
    return 1.0 - keep_ratio


def channel_step(channels: int, round_to: int) -> int:
    """The rounding step for a unit of ``channels``: ``round_to`` if the unit is wide enough."""
    step = max(1, round_to)
    while step > 1 and channels < 8 * step:
        step //= 2
    return step


def allowed_counts(channels: int, round_to: int, lbound: float) -> np.ndarray:
    """Every channel count the unit may keep: multiples of its step in ``[lbound*c, c]``, plus
    ``c`` itself; the smallest is at least one step."""
    step = channel_step(channels, round_to)
    lo = max(step, math.ceil(lbound * channels / step - 1e-9) * step)
    counts = list(range(lo, channels + 1, step))
    if not counts or counts[-1] != channels:
        counts.append(channels)
    return np.array(sorted(set(counts)), dtype=np.int64)


def round_channels(channels: int, keep_ratio: float, round_to: int, lbound: float) -> int:
    """The allowed channel count nearest to ``keep_ratio * channels``."""
    counts = allowed_counts(channels, round_to, lbound)
    return int(counts[np.argmin(np.abs(counts - keep_ratio * channels))])


class ActionWall:
    """Clips each unit's channel count so the final model meets ``budget`` (absolute cost units).

    ``cost(rows)`` maps an ``(n, units)`` array of kept channels to each row's cost. With
    ``fill=False`` only AMC's upper side is enforced (the agent may under-use the budget).
    """

    def __init__(
        self,
        cost: Callable[[np.ndarray], np.ndarray],
        options: list[np.ndarray],
        budget: float,
        fill: bool = True,
    ) -> None:
        self.cost, self.options, self.budget, self.fill = cost, options, budget, fill
        self.min_kept = np.array([o[0] for o in options], dtype=np.float64)
        self.max_kept = np.array([o[-1] for o in options], dtype=np.float64)

    def smallest_cost(self) -> float:
        """Cost with every unit at its minimum: budgets below it are infeasible."""
        return float(self.cost(self.min_kept[None])[0])

    def bounds(self, t: int, chosen: list[int]) -> tuple[int, int]:
        """(low, high) channel counts allowed for unit ``t`` given the earlier units' counts."""
        opts = self.options[t]
        rows_min = np.tile(self.min_kept, (len(opts), 1))
        rows_min[:, :t] = chosen
        rows_min[:, t] = opts
        fits = self.cost(rows_min) <= self.budget + 1e-6
        high = int(opts[fits][-1]) if fits.any() else int(opts[0])
        if not self.fill:
            return int(opts[0]), high
        rows_max = rows_min.copy()
        rows_max[:, t + 1:] = self.max_kept[t + 1:]
        reaches = self.cost(rows_max) >= self.budget - 1e-6
        low = int(opts[reaches][0]) if reaches.any() else int(opts[-1])
        return min(low, high), high

    def clip(self, t: int, chosen: list[int], wanted: int) -> int:
        """The allowed count for unit ``t`` nearest to ``wanted`` within the wall's bounds."""
        low, high = self.bounds(t, chosen)
        opts = self.options[t]
        opts = opts[(opts >= low) & (opts <= high)]
        return int(opts[np.argmin(np.abs(opts - wanted))])
