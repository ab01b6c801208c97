"""Policy selection and the correlation statistics of the search-vs-final benchmark."""

from __future__ import annotations

import math

import pytest

from bench.bench_correlation import correlations, select


def _row(ep: int, reward: float, ratio: float, meets: bool = True) -> dict:
    return {"episode": ep, "reward": reward, "meets_budget": meets,
            "keep_ratios": {"a": ratio, "b": 0.5}}


def test_select_takes_distinct_feasible_top_then_spread() -> None:
    rows = [_row(i, r, i / 100) for i, r in enumerate([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8])]
    rows += [_row(20, 0.95, 0.99, meets=False), _row(21, math.nan, 0.98),
             _row(22, 0.9, 0.01)]  # same ratios as episode 1: a duplicate policy
    picked = select(rows, top=2, spread=3)
    assert [(s, r["episode"]) for s, r in picked] == [("top", 1), ("top", 6),
                                                      ("spread", 3), ("spread", 4), ("spread", 0)]


def test_correlations_pearson_and_spearman() -> None:
    c = correlations([1, 2, 3, 4], [1, 4, 9, 16])
    assert c["spearman"] == pytest.approx(1.0) and 0.95 < c["pearson"] < 1.0 and c["n"] == 4
    assert correlations([1, 2, 3], [3, 2, 1])["pearson"] == pytest.approx(-1.0)
    assert correlations([1, 2], [1, 2])["pearson"] is None  # too few points
    assert correlations([1, 1, 1], [1, 2, 3])["spearman"] is None  # constant series


def test_tied_accuracies_share_their_mean_rank() -> None:
    import numpy as np

    from bench.bench_correlation import ranks

    assert ranks(np.array([0.5, 0.7, 0.5, 0.9])).tolist() == [0.5, 2.0, 0.5, 3.0]
    # Ties no longer get an arbitrary order: a signal tied everywhere but once ranks perfectly.
    c = correlations([0.8, 0.8, 0.8, 0.9], [0.1, 0.1, 0.1, 0.2])
    assert c["spearman"] == pytest.approx(1.0)
