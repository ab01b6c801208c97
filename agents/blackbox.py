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
``{x0: seed}`` starts CMA-ES's search distribution at the first ``--seed-policies`` policy instead
of the middle of the box (a local search around a strong heuristic, e.g. ``uniform``, which
with reconstruction is hard to beat from a cold start); seed policies on their own are only
evaluated, CMA-ES does not move towards them.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import optuna

from amc_agent.agents.base import AGENTS, Agent, AgentSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise

SEED_START = "seed"
"""CMA-ES ``x0`` value meaning: the first seed policy."""


class OptunaAgent(Agent):
    """One Optuna trial per episode over every unit's keep ratio."""

    def __init__(self, spec: AgentSpec, seed: int, sampler: str,
                 settings: dict[str, Any]) -> None:
        self.spec, self.seed, self.sampler_name = spec, seed, sampler
        self.name = sampler
        self.settings = dict(settings)
        self.needs_seed = sampler == "cmaes" and self.settings.get("x0") == SEED_START
        self.dists = {self._key(t): optuna.distributions.FloatDistribution(spec.low, spec.high)
                      for t in range(spec.steps_per_episode)}
        # Started at a seed policy: the study waits for seed_with.
        self.study: optuna.Study | None = None if self.needs_seed else self._new_study()
        self.warmup: int = self.settings.get("n_startup_trials",
                                             10 if sampler == "tpe" else 1)
        """Trials drawn before the sampler's model is used (the compare report's warm-up)."""
        self.history: list[tuple[list[float], float, int]] = []
        """Finished trials in episode order: requested ratios, reward, and how many trials had
        been told when this one was asked (its episode's index, one episode at a time; fewer
        when parallel workers score a batch of trials at once)."""
        self._open: dict[int, tuple[optuna.Trial, int]] = {}
        self._steps: dict[int, int] = {}

    @staticmethod
    def _key(t: int) -> str:
        return f"u{t:03d}"

    def _new_study(self) -> optuna.Study:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Optuna 4.9 deprecated CmaEsSampler's x0 and sigma0 for removal in 6.0; the pinned
            # 5.x has them, and they are what a start at a seed policy needs.
            warnings.filterwarnings("ignore", "`(x0|sigma0)` has been deprecated",
                                    FutureWarning)
            if self.sampler_name == "tpe":
                sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                    seed=self.seed, **self.settings)
            else:
                settings = dict(self.settings)
                if self.needs_seed:
                    settings["x0"] = {self._key(t): r for t, r in enumerate(self.seeds[0])}
                sampler = optuna.samplers.CmaEsSampler(seed=self.seed, **settings)
        return optuna.create_study(direction="maximize", sampler=sampler)

    def seed_with(self, policies: list[list[float]]) -> None:
        """Enqueue ``policies`` as the study's first trials: the sampler proposes them, is told
        their rewards and builds its model on them like on its own trials."""
        super().seed_with(policies)
        if self.needs_seed:
            self.study = self._new_study()
        self._enqueue()

    def _enqueue(self) -> None:
        assert self.study is not None, "x0: seed without seed policies (Search checks)"
        for seed in self.seeds:
            self.study.enqueue_trial({self._key(t): r for t, r in enumerate(seed)})

    def _ask(self) -> optuna.Trial:
        assert self.study is not None, "x0: seed without seed policies (Search checks)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self.study.ask(self.dists)

    def act(self, obs: np.ndarray, episode: int) -> float:
        # Several episodes may be open at once (a batch walked before any is scored): each
        # has its own trial, asked when its walk starts.
        if episode not in self._open:
            self._open[episode] = (self._ask(), len(self.history))
            self._steps[episode] = 0
        trial, _ = self._open[episode]
        ratio = float(trial.params[self._key(self._steps[episode])])
        self._steps[episode] += 1
        return ratio

    def end_episode(self, episode: int, reward: float) -> dict[str, float]:
        assert episode in self._open, "end_episode before any act"
        trial, told_before = self._open.pop(episode)
        del self._steps[episode]
        params = [float(trial.params[self._key(t)]) for t in range(len(self.dists))]
        self.study.tell(trial, reward)
        self.history.append((params, float(reward), told_before))
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.study, self.history, self._open, self._steps = self._new_study(), [], {}, {}
        self._enqueue()
        # Asks and tells again in the order they happened (a checkpoint falls between
        # batches, so every asked trial has been told), which puts the sampler where it was.
        # (Records from before batches have no third field: one episode at a time.)
        records = [(rec[0], rec[1], rec[2] if len(rec) > 2 else i)
                   for i, rec in enumerate(json.loads(state["history"]))]
        trials: list[optuna.Trial] = []
        for i, (params, _, told_before) in enumerate(records):
            while len(self.history) < told_before:
                self._tell_replayed(trials, records)
            trial = self._ask()
            proposed = [float(trial.params[self._key(t)]) for t in range(len(self.dists))]
            if not np.allclose(proposed, params, rtol=0, atol=1e-12):
                raise RuntimeError(f"{self.name}: replaying trial {i} proposed other ratios "
                                   "than were recorded; the sampler is not deterministic for "
                                   "this seed")
            trials.append(trial)
        while len(self.history) < len(records):
            self._tell_replayed(trials, records)

    def _tell_replayed(self, trials: list[optuna.Trial],
                       records: list[tuple[list[float], float, int]]) -> None:
        """Tell the next recorded reward to its replayed trial."""
        i = len(self.history)
        self.study.tell(trials[i], records[i][1])
        self.history.append(records[i])


@AGENTS.register("tpe")
def make_tpe(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """Factory: Optuna's TPE sampler (settings: ``TPESampler`` arguments)."""
    return OptunaAgent(spec, seed, "tpe", overrides)


@AGENTS.register("cmaes")
def make_cmaes(spec: AgentSpec, seed: int, overrides: dict[str, Any]) -> Agent:
    """Factory: Optuna's CMA-ES sampler (settings: ``CmaEsSampler`` arguments)."""
    return OptunaAgent(spec, seed, "cmaes", overrides)
