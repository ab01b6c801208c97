"""AMC's exploration: a truncated normal around the actor's keep ratio, sigma decayed per episode.

Follows mit-han-lab/amc ``lib/agent.py``: after the warm-up, the action is drawn from
``N(mu, sigma^2)`` truncated to ``[lbound, 1]``, with ``sigma = sigma0 * decay^(episodes since
warm-up)``. SB3's ``ActionNoise`` is additive and state-free, so this is an ``ActionNoise`` whose
``__call__`` draws an *offset* for a given mean; the object keeps its own seeded generator so a
resumed search draws the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.noise import ActionNoise

from amc_agent.agents.rng import generator_state, set_generator_state


class TruncatedNormalNoise(ActionNoise):
    """Offsets ``x - mu`` with ``x ~ N(mu, sigma^2)`` truncated to ``[low, high]``.

    ``sigma`` starts at ``sigma0`` and is multiplied by ``decay`` at each :meth:`reset` (one per
    episode after the warm-up).
    """

    def __init__(self, sigma0: float, decay: float, low: float, high: float, seed: int) -> None:
        super().__init__()
        self.sigma0, self.decay, self.low, self.high = sigma0, decay, low, high
        self.sigma = sigma0
        self.mu = np.zeros(1)
        self.rng = np.random.default_rng(seed)

    def sample(self, mu: np.ndarray) -> np.ndarray:
        """A keep ratio near ``mu`` (array), inside ``[low, high]``."""
        mu = np.clip(np.asarray(mu, dtype=np.float64), self.low, self.high)
        if self.sigma <= 0:
            return mu
        # scipy.stats costs ~1 s at every process start; only DDPG's exploration needs it.
        from scipy.stats import truncnorm

        a, b = (self.low - mu) / self.sigma, (self.high - mu) / self.sigma
        return truncnorm.rvs(a, b, loc=mu, scale=self.sigma, size=mu.shape, random_state=self.rng)

    def __call__(self) -> np.ndarray:
        return self.sample(self.mu) - self.mu

    def reset(self) -> None:
        """End of an exploring episode: decay sigma."""
        self.sigma *= self.decay

    def state_dict(self) -> dict[str, Any]:
        """Plain-type state (sigma and the generator)."""
        return {"sigma": self.sigma, "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.sigma = float(state["sigma"])
        set_generator_state(self.rng, state["rng"])
