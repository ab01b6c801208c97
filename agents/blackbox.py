"""Black-box search over the per-unit keep ratios with Optuna's samplers: ``tpe`` (Tree-structured
Parzen Estimator; Bergstra et al., NeurIPS 2011) and ``cmaes`` (CMA-ES; Hansen 2016, via the
``cmaes`` package).

Each episode is one trial: at its first unit the agent asks the study for one keep ratio per unit
(``u000``, ``u001``, ... uniform in ``[lbound, 1]``) and plays them in order; the environment's
wall clips them exactly as it clips an RL agent's actions, and the episode's reward is told back.
So these strategies search the same space, under the same budget and episode count, and write
the same artifacts as the RL agents: the question "is RL better than Bayesian optimisation or an
evolution strategy here?" is answered by ``amc-compare``.

Resuming: the state is the seed and the finished trials (requested ratios, reward). A fresh study
with the same sampler seed replays them (ask, check the sampler proposed the recorded ratios,
tell), which leaves the sampler exactly where the interrupted run left it, so a resumed search
proposes what an uninterrupted one would have.

Settings (``--agent-kwargs``) go to the sampler: e.g. ``{n_startup_trials: 20}`` for TPE (random
trials before the model is used; default 10), ``{sigma0: 0.2, popsize: 8}`` for CMA-ES.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import optuna

from amc_agent.agents.base import AGENTS, Agent, AgentSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise


class OptunaAgent(Agent):
    """One Optuna trial per episode over every unit's keep ratio."""

    def __init__(self, spec: AgentSpec, seed: int, sampler: str,
                 settings: dict[str, Any]) -> None:
        self.spec, self.seed, self.sampler_name = spec, seed, sampler
        self.name = sampler
        self.settings = dict(settings)
        self.dists = {self._key(t): optuna.distributions.FloatDistribution(spec.low, spec.high)
                      for t in range(spec.steps_per_episode)}
        self.study = self._new_study()
        self.warmup: int = self.settings.get("n_startup_trials",
                                             10 if sampler == "tpe" else 1)
        """Trials drawn before the sampler's model is used (the compare report's warm-up)."""
        self.history: list[tuple[list[float], float]] = []
        self._trial: optuna.Trial | None = None
        self._step = 0

    @staticmethod
    def _key(t: int) -> str:
        return f"u{t:03d}"

    def _new_study(self) -> optuna.Study:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.sampler_name == "tpe":
                sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                    seed=self.seed, **self.settings)
            else:
                sampler = optuna.samplers.CmaEsSampler(seed=self.seed, **self.settings)
        return optuna.create_study(direction="maximize", sampler=sampler)

    def seed_with(self, policies: list[list[float]]) -> None:
        """Enqueue ``policies`` as the study's first trials: the sampler proposes them, is told
        their rewards and builds its model on them like on its own trials."""
        super().seed_with(policies)
        self._enqueue()

    def _enqueue(self) -> None:
        for seed in self.seeds:
            self.study.enqueue_trial({self._key(t): r for t, r in enumerate(seed)})

    def _ask(self) -> optuna.Trial:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self.study.ask(self.dists)

    def act(self, obs: np.ndarray, episode: int) -> float:
        if self._trial is None:
            self._trial, self._step = self._ask(), 0
        ratio = float(self._trial.params[self._key(self._step)])
        self._step += 1
        return ratio

    def end_episode(self, episode: int, reward: float) -> dict[str, float]:
        assert self._trial is not None, "end_episode before any act"
        params = [float(self._trial.params[self._key(t)]) for t in range(len(self.dists))]
        self.study.tell(self._trial, reward)
        self.history.append((params, float(reward)))
        self._trial = None
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.study, self.history, self._trial = self._new_study(), [], None
        self._enqueue()
        for params, reward in json.loads(state["history"]):
            trial = self._ask()
            proposed = [float(trial.params[self._key(t)]) for t in range(len(self.dists))]
            if not np.allclose(proposed, params, rtol=0, atol=1e-12):
                raise RuntimeError(f"{self.name}: replaying trial {len(self.history)} proposed "
                                   "other ratios than were recorded; the sampler is not "
                                   "deterministic for this seed")
            self.study.tell(trial, reward)
            self.history.append((params, reward))


@AGENTS.register("tpe")
def make_tpe(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """Factory: Optuna's TPE sampler (settings: ``TPESampler`` arguments)."""
    return OptunaAgent(spec, seed, "tpe", overrides)


@AGENTS.register("cmaes")
def make_cmaes(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """Factory: Optuna's CMA-ES sampler (settings: ``CmaEsSampler`` arguments)."""
    return OptunaAgent(spec, seed, "cmaes", overrides)
