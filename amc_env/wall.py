"""Keep ratios, channel rounding and AMC's action wall.

Conventions (DESIGN.md section 4): an action is a **keep ratio** in ``[lbound, 1]``; Torch-Pruning
speaks of ratios *removed*, converted only by :func:`removal_ratio`. Channel counts are multiples
of ``round_to`` where a unit is wide enough (a unit narrower than ``8 x round_to`` uses the
largest power-of-two step that still gives it eight choices), never below one step, never above
the unit's width. With ``strict`` rounding every unit steps by ``round_to`` however narrow (a
unit narrower than that keeps its width): hardware that runs channels in fixed groups (CPU SIMD
lanes, GPU tensor-core tiles; HALP prunes in such groups) runs an off-grid count at the cost of
the next multiple or worse, so a latency budget is only spent well on the strict grid. A unit
whose channels feed or leave a grouped convolution in ``groups`` groups keeps the same number
in every group: its counts are ``groups`` times a count rounded for one group's width.

The wall (AMC section 3.3, made two-sided): before unit ``t`` is cut, its channel count is
clipped to the counts that keep the budget reachable if every later unit drops to its minimum
(its cheapest count, for a cost that is not monotone in channels) and, with filling, still
*used* if every later unit keeps everything: for MACs and parameters the interval
``[low, high]``. After the last unit the model's cost is at most the budget and within one
rounding step of it.

Strategies that choose every unit at once (the heuristics) are completed through the same wall
with :meth:`ActionWall.complete`: units are raised one rounding step at a time, in the strategy's
own order of preference, until no further step fits. :meth:`ActionWall.within_one_step` is the
check every strategy of a comparison must pass (equal budgets).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def removal_ratio(keep_ratio: float) -> float:
    """Torch-Pruning's pruning ratio (fraction removed) for AMC's keep ratio."""
    return 1.0 - keep_ratio


def channel_step(channels: int, round_to: int, strict: bool = False) -> int:
    """The rounding step for a unit of ``channels``: ``round_to`` if the unit is wide enough
    (always, with ``strict``; at most the unit's width)."""
    step = max(1, round_to)
    if strict:
        return min(step, channels)
    while step > 1 and channels < 8 * step:
        step //= 2
    return step


def allowed_counts(channels: int, round_to: int, lbound: float, groups: int = 1,
                   strict: bool = False) -> np.ndarray:
    """Every channel count the unit may keep: multiples of its step in ``[lbound*c, c]``, plus
    ``c`` itself; the smallest is at least one step. With ``groups`` > 1 (which divides
    ``channels``) the step is ``groups`` times the step of one group's width."""
    step = groups * channel_step(channels // groups, round_to, strict)
    lo = max(step, math.ceil(lbound * channels / step - 1e-9) * step)
    counts = list(range(lo, channels + 1, step))
    if not counts or counts[-1] != channels:
        counts.append(channels)
    return np.array(sorted(set(counts)), dtype=np.int64)


DOMINANCE_CONTEXTS = (1.0, 0.75, 0.5, 0.25)
"""Uniform keep ratios of the other units under which :func:`undominated_counts` compares a
unit's counts: a count is dropped only if it is dominated in every one."""
DOMINANCE_TOL = 1e-3
"""Cost difference (fraction of the original's cost) below which two counts cost the same."""


def undominated_counts(options: list[np.ndarray], cost: Callable[[np.ndarray], np.ndarray],
                       original: float) -> list[np.ndarray]:
    """Each unit's counts without those a larger count of the same unit matches in cost: a count
    ``c`` is dropped where some ``c' > c`` costs at most ``DOMINANCE_TOL * original`` more, with
    the other units at each keep ratio of :data:`DOMINANCE_CONTEXTS` (a unit's cost depends on
    its neighbours' widths). For measured latency, whose kernels run channels in blocks: on 2
    CPU cores (onnxruntime, batch 64, ResNet-20) a 14x14 convolution cost the same with 20, 24,
    28 or 32 output channels and with 8, 12 or 16, so a unit cut to 20 or 24 paid for 32; uniform
    pruning to 8/16/32 channels measured 0.47 of the original where 10/20/40 measured 0.82.
    NetAdapt and HALP restrict widths to such steps by construction. Every unit keeps its
    largest count; a cost that grows with every channel (MACs, parameters) drops nothing."""
    tol = DOMINANCE_TOL * original
    out = []
    for t, opts in enumerate(options):
        rows = []
        for f in DOMINANCE_CONTEXTS:
            base = [int(o[np.argmin(np.abs(o - f * o[-1]))]) for o in options]
            for c in opts:
                rows.append([*base[:t], int(c), *base[t + 1:]])
        costs = cost(np.asarray(rows, dtype=np.float64)).reshape(len(DOMINANCE_CONTEXTS),
                                                                 len(opts))
        # Cheapest cost of any larger count, per context: a count is dominated where that is
        # within the tolerance of its own cost in every context.
        larger = np.minimum.accumulate(costs[:, ::-1], axis=1)[:, ::-1]
        larger = np.concatenate([larger[:, 1:], np.full((costs.shape[0], 1), np.inf)], axis=1)
        dominated = np.all(larger <= costs + tol, axis=0)
        out.append(opts[~dominated])
    return out


def round_channels(channels: int, keep_ratio: float, round_to: int, lbound: float,
                   groups: int = 1, strict: bool = False) -> int:
    """The allowed channel count (:func:`allowed_counts`) nearest to ``keep_ratio * channels``."""
    counts = allowed_counts(channels, round_to, lbound, groups, strict)
    return int(counts[np.argmin(np.abs(counts - keep_ratio * channels))])


class ActionWall:
    """Clips each unit's channel count so the final model meets ``budget`` (absolute cost units).

    ``cost(rows)`` maps an ``(n, units)`` array of kept channels to each row's cost. With
    ``fill=False`` only AMC's upper side is enforced (the agent may under-use the budget).
    ``monotone=False`` says the cost can *fall* as a unit keeps more channels (measured latency:
    a width can reach a faster kernel, HALP, Shen et al. NeurIPS 2022; seen on an H200 at batch
    256, ResNet-20's 64-channel layers cut to 40 ran 1.45x slower than cut to 32): the wall then
    assumes later units drop to their cheapest counts rather than their smallest, and picks only
    counts that fit rather than a range.
    """

    def __init__(
        self,
        cost: Callable[[np.ndarray], np.ndarray],
        options: list[np.ndarray],
        budget: float,
        fill: bool = True,
        monotone: bool = True,
    ) -> None:
        self.cost, self.options, self.budget, self.fill = cost, options, budget, fill
        self.min_kept = np.array([o[0] for o in options], dtype=np.float64)
        self.max_kept = np.array([o[-1] for o in options], dtype=np.float64)
        self.floor = self.min_kept if monotone else self._cheapest()
        """Each unit's count in the cheapest model the wall knows of."""

    def _cheapest(self) -> np.ndarray:
        # Two passes of coordinate descent from the smallest counts (exact for a cost additive
        # over units; argmin keeps the smallest count on ties, so a monotone cost stays there).
        floor = self.min_kept.copy()
        for _ in range(2):
            for t, opts in enumerate(self.options):
                rows = np.tile(floor, (len(opts), 1))
                rows[:, t] = opts
                floor[t] = opts[int(np.argmin(self.cost(rows)))]
        return floor

    def smallest_cost(self) -> float:
        """Cost of the cheapest model the wall knows of: budgets below it are infeasible."""
        return float(self.cost(self.floor[None])[0])

    def allowed(self, t: int, chosen: list[int]) -> np.ndarray:
        """The counts unit ``t`` may keep given the earlier units' counts: those that still let
        the budget be met (later units at their cheapest) and, with ``fill``, still let it be
        used (later units kept whole); the largest that fits when none does both, the cheapest
        when none fits."""
        opts = self.options[t]
        rows_min = np.tile(self.floor, (len(opts), 1))
        rows_min[:, :t] = chosen
        rows_min[:, t] = opts
        costs = self.cost(rows_min)
        fits = costs <= self.budget + 1e-6
        if not fits.any():
            return opts[[int(np.argmin(costs))]]
        if self.fill:
            rows_max = rows_min.copy()
            rows_max[:, t + 1:] = self.max_kept[t + 1:]
            both = fits & (self.cost(rows_max) >= self.budget - 1e-6)
            if both.any():
                return opts[both]
            return opts[fits][-1:]
        return opts[fits]

    def clip(self, t: int, chosen: list[int], wanted: int) -> int:
        """The allowed count for unit ``t`` (:meth:`allowed`) nearest to ``wanted``."""
        opts = self.allowed(t, chosen)
        return int(opts[np.argmin(np.abs(opts - wanted))])

    def next_counts(self, counts: Sequence[int]) -> list[int | None]:
        """Each unit's next allowed count above ``counts`` (``None`` at its maximum)."""
        out: list[int | None] = []
        for opts, k in zip(self.options, counts, strict=True):
            i = int(np.searchsorted(opts, k, side="right"))
            out.append(int(opts[i]) if i < len(opts) else None)
        return out

    def step_costs(self, counts: Sequence[int]) -> dict[int, float]:
        """Cost added by raising each unit one step from ``counts`` (units at their maximum
        are left out), in the cost's units."""
        nxt = self.next_counts(counts)
        raisable = [t for t, k in enumerate(nxt) if k is not None]
        if not raisable:
            return {}
        rows = np.tile(np.asarray(counts, dtype=np.float64), (len(raisable) + 1, 1))
        for i, t in enumerate(raisable):
            rows[i + 1, t] = nxt[t]
        costs = self.cost(rows)
        return {t: float(costs[i + 1] - costs[0]) for i, t in enumerate(raisable)}

    def fits(self, counts: Sequence[int]) -> bool:
        """Whether channel counts (one per unit) meet the budget."""
        return bool(self.cost(np.asarray([counts], dtype=np.float64))[0] <= self.budget + 1e-6)

    def within_one_step(self, counts: Sequence[int]) -> bool:
        """Whether ``counts`` meets the budget and leaves less of it unused than the largest
        single rounding step any unit could still take (what the filling wall guarantees)."""
        cost = float(self.cost(np.asarray([counts], dtype=np.float64))[0])
        if cost > self.budget + 1e-6:
            return False
        steps = self.step_costs(counts)
        return not steps or self.budget - cost < max(steps.values()) + 1e-6

    def complete(self, counts: Sequence[int],
                 priority: Callable[[int, list[int], float], float]) -> list[int]:
        """Raise units one step at a time while the budget allows, always the unit with the
        highest ``priority(unit, counts, step_cost)``; returns the completed counts. ``counts``
        must already meet the budget. Ends when no single step fits (so the result passes
        :meth:`within_one_step`)."""
        counts = [int(k) for k in counts]
        while True:
            nxt = self.next_counts(counts)
            steps = self.step_costs(counts)
            base = float(self.cost(np.asarray([counts], dtype=np.float64))[0])
            fits = [t for t, c in steps.items() if base + c <= self.budget + 1e-6]
            if not fits:
                return counts
            t = max(fits, key=lambda u: (priority(u, counts, steps[u]), -u))
            counts[t] = int(nxt[t])  # type: ignore[arg-type]
