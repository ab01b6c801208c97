"""Spread over seeds, and when a difference between two strategies exceeds it.

A comparison's claim "A beats B" counts only when the gap between their mean accuracies over
seeds is larger than the noise those seeds show. The rule used everywhere (reports, benchmark
tables): the difference of means must exceed two standard errors of that difference,
``2 * sqrt(sa^2 / na + sb^2 / nb)`` with sample standard deviations (about a 95% two-sided
interval for normal noise; lenient for 2-3 seeds, where Student's t would ask for more). With a
single seed on either side there is no spread to compare against and no claim is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for fewer than two values)."""
    if not values:
        raise ValueError("no values")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float | bool | None]:
    """``mean(a) - mean(b)``, two standard errors of it (``None`` without two seeds on each
    side) and whether the difference exceeds them."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if sa is None or sb is None:
        return {"delta": ma - mb, "two_se": None, "exceeds_spread": None}
    two_se = 2 * math.sqrt(sa**2 / len(a) + sb**2 / len(b))
    return {"delta": ma - mb, "two_se": two_se, "exceeds_spread": abs(ma - mb) > two_se}
