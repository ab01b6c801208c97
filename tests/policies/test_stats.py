"""The spread rule every comparison uses: a difference counts beyond two standard errors."""

from __future__ import annotations

import pytest

from amc_agent.policies.stats import difference, mean_std


def test_mean_and_sample_std() -> None:
    assert mean_std([0.9]) == (0.9, None)
    m, s = mean_std([0.90, 0.92, 0.94])
    assert m == pytest.approx(0.92) and s == pytest.approx(0.02)


def test_a_gap_inside_the_noise_is_not_a_win() -> None:
    noisy = difference([0.90, 0.94, 0.92], [0.91, 0.93, 0.89])
    assert noisy["delta"] == pytest.approx(0.01) and noisy["exceeds_spread"] is False
    clear = difference([0.95, 0.951, 0.949], [0.90, 0.901, 0.899])
    assert clear["exceeds_spread"] is True
    assert clear["two_se"] == pytest.approx(2 * (2 * 0.001**2 / 3) ** 0.5)


def test_one_seed_makes_no_claim() -> None:
    assert difference([0.95], [0.90, 0.91])["exceeds_spread"] is None
    with pytest.raises(ValueError):
        mean_std([])
