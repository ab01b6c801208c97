"""The search loop: N episodes of an agent on the pruning environment, with best-policy tracking,
per-episode records, resumable checkpoints and wandb logging.

Output folder::

    policy.json        best policy so far (written atomically whenever it improves)
    actor.pt           the agent's actor at the time of the best policy (if it has one)
    episodes.jsonl     one JSON line per finished episode
    rescore.json       with ``rescore_top`` K > 0: the K best distinct policies, and the seed
                       policies, re-scored on held-out validation images
                       (amc_agent.agents.rescore), after a short fine-tune with
                       ``rescore_finetune``; the best of them is policy.json
    latency_check.json target ``latency``: the best candidates measured again against the original
                       until one meets the budget (amc_agent.agents.latency_check); that one is
                       policy.json
    checkpoint/state.pt  agent (networks, optimisers, replay buffer, noise), RNG states, episode
                         count, best so far: ``--resume`` continues with nothing lost and the same
                         result as an uninterrupted run with the same seed
    wandb/             the wandb run (offline by default)

Episode ``e`` resets the environment with seed ``seed * 1_000_003 + e``, so an episode's outcome
depends only on the agent's actions and the episode index.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from amc_agent.agents.base import Agent, AgentSpec, make_agent
from amc_agent.agents.latency_check import CHECK_TOP, confirm_latency
from amc_agent.agents.rescore import ShortFinetune, rescore, rescore_candidates, top_distinct
from amc_agent.agents.rng import global_rng_state, set_global_rng_state
from amc_agent.agents.sb3_agents import OffPolicyAgent, OnPolicyAgent
from amc_agent.agents.tracking import Tracker
from amc_agent.agents.workers import EpisodePool, EpisodeTask
from amc_agent.env import atomic
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy, fingerprint
from amc_agent.policies.heuristics import heuristic_policy

STATE_FILE = Path("checkpoint") / "state.pt"
INIT_ACTOR = "init-actor"
"""The seed-policy name of a warm-started search's first episode (its actor's greedy policy)."""


@dataclass
class SearchConfig:
    """What a search runs and how it records."""

    agent: str = "amc-ddpg"
    """Registered agent name (agents.AGENTS)."""
    episodes: int = 300
    """Episodes in total, warm-up included."""
    seed: int = 0
    """Seeds the agent and the per-episode environment seeds."""
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    """Agent hyper-parameter overrides."""
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many episodes."""
    wandb_mode: str = "offline"
    """offline, online or disabled."""
    wandb_project: str = "amc"
    """wandb project name."""
    wandb_group: str | None = None
    """wandb group (the compare command puts all strategies in one)."""
    progress: bool = True
    """Show a progress bar."""
    rescore_top: int = 0
    """After the last episode, re-score this many best distinct policies on held-out validation
    images and declare the best of those (0: the best episode as scored during the search)."""
    rescore_images: int | None = None
    """Held-out images for re-scoring (default: every validation image the episodes never saw)."""
    rescore_finetune: ShortFinetune | None = None
    """Fine-tune each re-scored policy briefly before its held-out score and rank by the score
    after it (amc_agent.agents.rescore; NetAdapt's short-term fine-tune)."""
    seed_policies: tuple[str, ...] = ()
    """Heuristics (amc_agent.policies.heuristics names, e.g. ``uniform``, ``tp-global``) whose
    policies are the search's first episodes (:meth:`amc_agent.agents.base.Agent.seed_with`); they
    count against the episode budget."""
    init_actor: dict[str, Any] | None = None
    """A trained actor (:meth:`Agent.actor_state`, e.g. another model's search) to start from:
    the search warms up briefly and plays the actor's noise-free policy on this model as its
    first episode (:data:`INIT_ACTOR`), so it starts where zero-shot transfer ends."""


@dataclass(frozen=True)
class _Walk:
    """An episode walked dry: what a worker scores, and what the agent learns from after."""

    task: EpisodeTask
    steps: list[tuple[np.ndarray, float, np.ndarray, bool]]
    """(observation, applied keep ratio, next observation, done) per unit."""
    actions: list[float]
    """The keep ratios the agent asked for, before the wall."""
    seeded: bool


@dataclass
class SearchResult:
    """What a finished search found."""

    best: dict[str, Any] | None
    policy: Policy | None
    episodes: list[dict[str, Any]]
    seconds: float
    rescored: list[dict[str, Any]] | None = None
    """The re-scored top policies, best first (``rescore_top`` > 0)."""


def meets_budget(info: dict[str, Any]) -> bool:
    """Whether an episode's final model is within its budget (latency: as measured)."""
    if info["target"] == "latency":
        return info["latency_ms"] <= info["budget_latency_ms"]
    key, orig = ("macs", "original_macs") if info["target"] == "flops" else \
        ("params", "original_params")
    return info[key] <= info["budget"] * info[orig] + 1e-9


def episode_row(episode: int, info: dict[str, Any], stats: dict[str, Any],
                seconds: float) -> dict[str, Any]:
    """The ``episodes.jsonl`` line for one finished episode (plain JSON types)."""
    row = {
        "episode": episode, "reward": info["reward"], "accuracy": info["accuracy"],
        "macs": info["macs"], "params": info["params"],
        "macs_ratio": info["macs"] / info["original_macs"],
        "params_ratio": info["params"] / info["original_params"],
        "meets_budget": meets_budget(info), "budget": info["budget"],
        "keep_ratios": info["keep_ratios"],
        "actions": info["actions"], "seconds": seconds, **stats,
        "finite": math.isfinite(info["reward"]) and math.isfinite(info["accuracy"]),
    }
    if "latency_ms" in info:
        row.update(latency_ms=info["latency_ms"],
                   predicted_latency_ms=info["predicted_latency_ms"],
                   budget_latency_ms=info["budget_latency_ms"],
                   original_latency_ms=info["original_latency_ms"])
    return row


def _read_rows(path: Path, keep: int) -> list[dict[str, Any]]:
    """The first ``keep`` rows of ``episodes.jsonl``; the file is cut back to them."""
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()][:keep]
    rows = []
    for ln in lines:
        try:
            rows.append(json.loads(ln))
        except json.JSONDecodeError:
            break  # a torn last line from a crash; it is recomputed
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


class Search:
    """Runs :class:`SearchConfig` on an environment, writing into ``out``."""

    def __init__(self, env: ChannelPruningEnv, cfg: SearchConfig, out: Path,
                 policy_context: dict[str, Any],
                 also: Sequence[ChannelPruningEnv] = (),
                 pool: EpisodePool | None = None) -> None:
        """``also``: further models' environments one agent trains on beside ``env`` (episode
        ``e`` plays model ``e mod (1 + len(also))``); the policy is declared for ``env``.
        ``pool``: workers that score episodes in batches (amc_agent.agents.workers; their
        environments must be built like ``env`` and ``also``, in that order)."""
        self.env, self.cfg, self.out = env, cfg, Path(out)
        self.envs = [env, *also]
        self.pool = pool if pool is not None and pool.workers > 1 else None
        self._scored: dict[tuple, dict[str, Any]] = {}
        self.context = policy_context
        spec = AgentSpec(env.observation_space, env.action_space,
                         max(e.n_units for e in self.envs), cfg.episodes,
                         warm_start=cfg.init_actor is not None)
        self.agent: Agent = make_agent(cfg.agent, spec, cfg.seed, cfg.agent_kwargs)
        if also and not isinstance(self.agent, OffPolicyAgent):
            raise UserError(f"one agent over several models needs an off-policy agent "
                            f"(amc-ddpg, ddpg, td3, sac), not {cfg.agent!r}")
        if self.pool is not None:
            if env.cfg.target == "latency":
                raise UserError("a latency target is measured on this machine episode by "
                                "episode (workers would time each other); use --workers 1")
            if isinstance(self.agent, OnPolicyAgent):
                raise UserError(f"agent {cfg.agent!r} learns from its own rollout as it acts; "
                                "use --workers 1 with it")
        if also and cfg.seed_policies:
            raise UserError("--seed-policies are for one model; drop them with several "
                            "--checkpoint")
        self.seed_names = ([INIT_ACTOR] if cfg.init_actor is not None else []) + \
            list(cfg.seed_policies)
        if len(self.seed_names) > cfg.episodes:
            raise UserError(f"{len(self.seed_names)} seed policies do not fit in "
                            f"{cfg.episodes} episodes")
        seeds = [heuristic_policy(n, env) for n in cfg.seed_policies]
        if cfg.init_actor is not None:
            self.agent.load_actor(cfg.init_actor)
            seeds.insert(0, self._greedy_ratios(0))
        if self.agent.needs_seed and not seeds:
            raise UserError(f"agent {cfg.agent!r} starts from a seed policy "
                            "({x0: seed}); give one with --seed-policies, e.g. uniform")
        if seeds:
            self.agent.seed_with([[pol[u.name] for u in env.units] for pol in seeds])
        self.conditioned = env.cfg.budget_range is not None
        """A budget-conditioned search: the product is the actor, declared at the midpoint."""
        if self.conditioned and self.agent.actor_state() is None:
            raise UserError(f"a budget range trains a budget-conditioned actor; agent "
                            f"{cfg.agent!r} has none (use amc-ddpg or another RL agent)")
        if cfg.rescore_top > 0 and env.heldout_size < 1:
            raise UserError("--rescore-top needs validation images beyond --eval-size; lower "
                            "--eval-size or pass --rescore-top 0")
        if cfg.rescore_finetune is not None:
            if cfg.rescore_top < 1:
                raise UserError("--rescore-finetune fine-tunes the re-scored policies; it needs "
                                "--rescore-top K > 0 and held-out validation images")
            cfg.rescore_finetune.check(env.train_split)

    # -------------------------------------------------------------------- artifacts

    def make_policy(self, row: dict[str, Any], actor: str | None,
                    rescored: dict[str, Any] | None = None,
                    remeasured: dict[str, Any] | None = None) -> Policy:
        """The policy artifact for an episode row (with its re-scored figures and its latency
        measured again, if any)."""
        env, c = self.env, self.context
        metrics = {"val_accuracy": row["accuracy"], "reward": row["reward"],
                   "macs": row["macs"], "params": row["params"],
                   "macs_ratio": row["macs_ratio"], "params_ratio": row["params_ratio"],
                   "original_macs": env.cost.original["flops"],
                   "original_params": env.cost.original["params"],
                   "val_images": env.cfg.val_size, "bn_recalibration": env.cfg.recalibrate}
        if rescored is not None:
            metrics.update(rescored_val_accuracy=rescored["rescored_accuracy"],
                           rescored_reward=rescored["rescored_reward"],
                           rescore_images=rescored["images"])
            if "finetuned_accuracy" in rescored:
                metrics.update(finetuned_val_accuracy=rescored["finetuned_accuracy"],
                               rescore_finetune=rescored["finetune"])
        if "latency_ms" in row:
            metrics["latency"] = {"median_ms": row["latency_ms"], "device": env.cfg.device,
                                  "batch_size": env.cfg.latency_batch,
                                  "threads": torch.get_num_threads()}
        if remeasured is not None:
            metrics["remeasured_latency"] = remeasured
        return Policy(
            model=c["recipe"], fingerprint=fingerprint(env.units),
            input_shape=list(env.data_spec.input_shape), dataset=env.data_spec.name,
            target=env.cfg.target, budget=env.cfg.budget,
            criterion=c.get("criterion", env.criterion.spec), round_to=env.cfg.round_to,
            strict_round=env.cfg.strict_round, lbound=env.cfg.lbound,
            keep_ratios=dict(row["keep_ratios"]), metrics=metrics,
            agent={"name": self.cfg.agent, "seed": self.cfg.seed, "episodes": self.cfg.episodes,
                   "found_at_episode": row["episode"], "settings": self.cfg.agent_kwargs,
                   "seed_policies": self.seed_names,
                   **({"declared_seed_policy": row["seed_policy"]} if "seed_policy" in row
                      else {})},
            actor=actor, channels={u.name: u.channels for u in env.units},
            budget_range=list(env.cfg.budget_range) if env.cfg.budget_range else None,
            observation=env.cfg.observation,
        )

    def _save_best(self, row: dict[str, Any]) -> Policy:
        actor_state = self.agent.actor_state()
        actor = None
        if actor_state is not None:
            actor = "actor.pt"
            atomic.torch_save(self.out / actor, actor_state)
        policy = self.make_policy(row, actor)
        policy.save(self.out / "policy.json")
        return policy

    def _checkpoint(self, episode: int, best: dict[str, Any] | None, run_id: str | None) -> None:
        atomic.torch_save(self.out / STATE_FILE, {
            "episode": episode, "agent": self.agent.state_dict(), "rng": global_rng_state(),
            "best": json.dumps(best), "wandb_run_id": run_id, "agent_name": self.cfg.agent,
            "seed": self.cfg.seed,
        })

    def _load_checkpoint(self) -> tuple[int, dict[str, Any] | None, str | None]:
        path = self.out / STATE_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return 0, None, None
        except Exception as exc:
            raise UserError(f"search checkpoint {path} is corrupt ({type(exc).__name__}); "
                            "start a new search with another --out") from None
        if state.get("agent_name") != self.cfg.agent or state.get("seed") != self.cfg.seed:
            raise UserError(f"{path} belongs to agent {state.get('agent_name')!r} seed "
                            f"{state.get('seed')}; resume with the same --agent and --seed")
        try:
            self.agent.load_state_dict(state["agent"])
        except RuntimeError:
            raise UserError(f"search checkpoint {path} holds networks of another shape (an "
                            "older release's observation, or other --agent-kwargs); start a new "
                            "search with another --out") from None
        set_global_rng_state(state["rng"])
        return int(state["episode"]), json.loads(state["best"]), state.get("wandb_run_id")

    # -------------------------------------------------------------------- loop

    def run(self, resume: bool = False) -> SearchResult:
        """Run (or resume) the search; returns the best row and all rows."""
        self.out.mkdir(parents=True, exist_ok=True)
        rows_path = self.out / "episodes.jsonl"
        start, best, run_id = self._load_checkpoint() if resume else (0, None, None)
        rows = _read_rows(rows_path, start) if resume else []
        if not resume:
            rows_path.write_text("")
        for r in rows:  # a latency wall learns again what the episodes before the stop measured
            if r.get("latency_ms"):
                self.env.record_latency([round(r["keep_ratios"][u.name] * u.channels)
                                         for u in self.env.units], r["latency_ms"])
        policy = Policy.load(self.out / "policy.json") if best is not None else None
        tracker = Tracker(self.cfg.wandb_mode, self.out, self.cfg.wandb_project,
                          name=f"search-{self.cfg.agent}-s{self.cfg.seed}",
                          group=self.cfg.wandb_group, run_id=run_id, job_type="search",
                          config={"agent": self.cfg.agent, "seed": self.cfg.seed,
                                  "episodes": self.cfg.episodes, **self.context,
                                  "target": self.env.cfg.target, "budget": self.env.cfg.budget})
        t_start = time.perf_counter()
        bar = tqdm(total=self.cfg.episodes, initial=start, desc=f"search {self.cfg.agent}",
                   disable=not self.cfg.progress, dynamic_ncols=True)
        since_checkpoint = 0
        try:
            with open(rows_path, "a") as log:
                for episode, info, stats, seconds, boundary in self._episodes(start):
                    bar.update(1)
                    row = episode_row(episode, info, stats, seconds)
                    improved = not self.conditioned and self._is_better(row, best)
                    if improved:
                        best = row
                        policy = self._save_best(row)
                    row["best_reward"] = best["reward"] if best else None
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
                    rows.append(row)
                    self._track(tracker, row, improved)
                    since_checkpoint += 1
                    # Only between batches: mid-batch, the agent has already walked the
                    # batch's later episodes, so a resume from there would walk them again
                    # from another state.
                    if boundary and (since_checkpoint >= self.cfg.checkpoint_every or
                                     episode + 1 == self.cfg.episodes):
                        self._checkpoint(episode + 1, best, tracker.run_id)
                        since_checkpoint = 0
                    if best:
                        bar.set_postfix(best_reward=f"{best['reward']:.4f}",
                                        best_acc=f"{best['accuracy']:.4f}",
                                        macs=f"{best['macs_ratio']:.3f}")
            if self.conditioned:
                best, policy = self._declare_greedy()
            candidates = [best] if self.conditioned and best is not None else \
                [r for r in rows if r.get("model", 0) == 0]
            timed = self._time_candidates(candidates) if best is not None else None
            rescored = self._rescore(candidates) if best is not None else None
            if rescored:
                best = next(r for r in candidates if r["episode"] == rescored[0]["episode"])
                policy = self.make_policy(best, policy.actor if policy else None, rescored[0])
                policy.save(self.out / "policy.json")
                tracker.summary({"rescored_accuracy": rescored[0]["rescored_accuracy"],
                                 "rescore_images": rescored[0]["images"],
                                 **({"finetuned_accuracy": rescored[0]["finetuned_accuracy"]}
                                    if "finetuned_accuracy" in rescored[0] else {})})
            if best is not None and self.env.cfg.target == "latency":
                best, policy = self._confirm_latency(
                    [r for r in rows if r.get("model", 0) == 0], rescored, policy, timed)
        finally:
            bar.close()
            if best is not None:
                tracker.summary({"best_reward": best["reward"], "best_accuracy": best["accuracy"],
                                 "best_macs": best["macs"], "best_episode": best["episode"]})
            tracker.finish()
        return SearchResult(best, policy, rows, time.perf_counter() - t_start, rescored)

    def _greedy_ratios(self, episode: int) -> dict[str, float]:
        """The keep ratios the actor's noise-free episode applies (through the wall) under
        episode ``episode``'s seed and budget. The walk's score is discarded, and a latency
        wall's calibration is put back as it was, so a resumed search sees the same wall."""
        env = self.env
        latency = env.latency_state()
        obs, _ = env.reset(seed=self.episode_seed(episode))
        info: dict[str, Any] = {}
        for _ in env.units:
            action = self.agent.deterministic_action(obs)
            obs, _, _, _, info = env.step(np.array([action], dtype=np.float32))
        env.restore_latency_state(latency)
        return dict(info["keep_ratios"])

    def _declare_greedy(self) -> tuple[dict[str, Any], Policy]:
        """A budget-conditioned search's policy: its actor's noise-free episode at the range's
        midpoint (``env.cfg.budget``), saved with the actor."""
        env = self.env
        obs, _ = env.reset(seed=self.episode_seed(self.cfg.episodes),
                           options={"budget": env.cfg.budget})
        t0, done, info = time.perf_counter(), False, {}
        while not done:
            action = self.agent.deterministic_action(obs)
            obs, _, done, _, info = env.step(np.array([action], dtype=np.float32))
        row = episode_row(self.cfg.episodes, info, {"greedy": True}, time.perf_counter() - t0)
        if not (row["finite"] and row["meets_budget"]):
            raise UserError(f"the trained actor's episode at budget {env.cfg.budget} did not "
                            "meet it with a finite score; search longer")
        atomic.write_json(self.out / "greedy.json", row)
        return row, self._save_best(row)

    def episode_seed(self, episode: int) -> int:
        """The environment seed of episode ``episode``."""
        return self.cfg.seed * 1_000_003 + episode

    def _time_candidates(self, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
        """A latency search whose re-scoring fine-tunes: its candidates measured again *before*
        the fine-tunes (every one of them, the declared winner is picked after re-scoring).
        Timings taken in this process after torch trained are off: on MobileNetV2 (onnxruntime,
        batch 64, 2 CPU cores) one pair measured 0.44-0.46 of the original before a
        2,000-image fine-tune and 0.61-0.65 after it. (Not reproduced on ResNet-20: 0.47 before
        and after; and MobileNetV2's original alone measured 40-58 ms within one check on that
        host, so the shift may be noise of that size. Timing first costs nothing either way.)
        None when nothing is fine-tuned."""
        if self.env.cfg.target != "latency" or self.conditioned or \
                self.cfg.rescore_finetune is None or self.cfg.rescore_top < 1:
            return None
        top = rescore_candidates(candidates, max(self.cfg.rescore_top, CHECK_TOP))
        return confirm_latency(self.env, top, self.episode_seed, candidates, stop=False)

    def _confirm_latency(self, rows: list[dict[str, Any]],
                         rescored: list[dict[str, Any]] | None,
                         policy: Policy | None, timed: dict[str, Any] | None = None
                         ) -> tuple[dict[str, Any], Policy]:
        """Measure the best candidates again against the original (amc_agent.agents.latency_check;
        ``timed``: measured already, before the re-scoring fine-tunes), declare the first that
        meets the budget in re-scored order and write ``latency_check.json``."""
        by_episode = {r["episode"]: r for r in rows}
        order = [by_episode[r["episode"]] for r in rescored] if rescored else \
            top_distinct(rows, CHECK_TOP)
        if timed is not None:
            records = {c["episode"]: c for c in timed["candidates"]}
            checked = [records[r["episode"]] for r in order[:CHECK_TOP]
                       if r["episode"] in records]
            met = next((c for c in checked if c["meets_budget"]), None)
            check = {**timed, "declared": (met or checked[0])["episode"], "met": met is not None,
                     "candidates": checked, "timed_before_finetune": True}
        else:
            check = confirm_latency(self.env, order[:CHECK_TOP], self.episode_seed, rows)
        atomic.write_json(self.out / "latency_check.json", check)
        best = by_episode[check["declared"]]
        record = next(c for c in check["candidates"] if c["episode"] == best["episode"])
        rec = next((r for r in rescored or [] if r["episode"] == best["episode"]), None)
        policy = self.make_policy(best, policy.actor if policy else None, rec,
                                  {**record, "met": check["met"]})
        policy.save(self.out / "policy.json")
        return best, policy

    def _rescore(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Re-score the top policies and the seed policies (amc_agent.agents.rescore's
        ``rescore_candidates``) and write ``rescore.json``."""
        if self.cfg.rescore_top < 1:
            return None
        records = rescore(self.env, rescore_candidates(rows, self.cfg.rescore_top),
                          self.cfg.rescore_images, self.episode_seed, self.cfg.rescore_finetune)
        atomic.write_json(self.out / "rescore.json", records)
        return records

    def _episodes(self, start: int
                  ) -> Iterator[tuple[int, dict[str, Any], dict[str, Any], float, bool]]:
        """Episodes ``start``.. in order, as (episode, final info, agent stats, seconds,
        whether the agent's state is at a batch boundary): one at a time in this process, or in
        batches of ``pool.workers`` walked here and scored on the workers (synchronous: every
        episode of a batch is walked with the actor and noise left by the previous batch, and
        the agent learns from them in episode order once all are scored)."""
        if self.pool is None:
            for episode in range(start, self.cfg.episodes):
                t0 = time.perf_counter()
                info, stats = self._episode(episode)
                yield episode, info, stats, time.perf_counter() - t0, True
            return
        n = self.pool.workers
        for first in range(start, self.cfg.episodes, n):
            t0 = time.perf_counter()
            batch = range(first, min(first + n, self.cfg.episodes))
            walks = [self._walk(e) for e in batch]
            infos = self._score(walks)
            seconds = (time.perf_counter() - t0) / len(walks)  # amortised wall time
            for k, (walk, info) in enumerate(zip(walks, infos, strict=True)):
                info, stats = self._learn(walk, info)
                yield walk.task.episode, info, stats, seconds, k == len(walks) - 1

    def _walk(self, episode: int) -> _Walk:
        """Episode ``episode``'s actions through the wall, without cutting or scoring."""
        model = episode % len(self.envs)
        env, agent = self.envs[model], self.agent
        seed = self.episode_seed(episode)
        obs, _ = env.reset(seed=seed, options={"dry": True})
        seeded = agent.seeds[episode] if episode < len(agent.seeds) else None
        steps: list[tuple[np.ndarray, float, np.ndarray, bool]] = []
        done, info = False, {}
        while not done:
            action = agent.act(obs, episode)
            if seeded is not None:  # the agent still acts, so its generators stay in step
                action = seeded[len(steps)]
            next_obs, _, done, _, info = env.step(np.array([action], dtype=np.float32))
            steps.append((obs, info["applied"], next_obs, done))
            obs = next_obs
        task = EpisodeTask(episode, model, seed, info["budget"],
                           tuple(info["kept_channels"][u.name] for u in env.units))
        return _Walk(task, steps, info["actions"], seeded is not None)

    def _score(self, walks: list[_Walk]) -> list[dict[str, Any]]:
        """The walks' final infos from the workers; with a deterministic criterion
        (``env.cacheable``) a policy already scored in this search, or earlier in the batch, is
        served from memory instead, as the environment's own cache does one episode at a time."""
        assert self.pool is not None
        todo: list[EpisodeTask] = []
        plan: list[tuple[str, Any]] = []
        in_batch: dict[tuple, int] = {}
        for w in walks:
            key = (w.task.model, w.task.counts)
            if not self.envs[w.task.model].cacheable:
                plan.append(("fresh", len(todo)))
                todo.append(w.task)
            elif key in self._scored:
                plan.append(("memory", key))
            elif key in in_batch:
                plan.append(("batch", in_batch[key]))
            else:
                in_batch[key] = len(todo)
                plan.append(("fresh", len(todo)))
                todo.append(w.task)
        results = self.pool.evaluate(todo) if todo else []
        infos = []
        for w, (kind, ref) in zip(walks, plan, strict=True):
            if kind == "fresh":
                info = results[ref]
                if self.envs[w.task.model].cacheable and math.isfinite(info["accuracy"]):
                    self._scored[(w.task.model, w.task.counts)] = info
            else:
                info = self._repeat(w.task, results[ref] if kind == "batch" else
                                    self._scored[ref])
            infos.append(info)
        return infos

    def _repeat(self, task: EpisodeTask, info: dict[str, Any]) -> dict[str, Any]:
        """A scored policy's info for another episode with the same counts (its budget, and
        the reward under that budget)."""
        env = self.envs[task.model]
        info = {**info, "budget": task.budget, "cached": True,
                "timings": dict.fromkeys(info["timings"], 0.0)}
        info["reward"] = float(env.reward_fn(info))
        return info

    def _learn(self, walk: _Walk, info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Give the agent a scored walk's transitions (the final reward on the last one) and
        end its episode, as :meth:`_episode` does step by step."""
        episode = walk.task.episode
        info = {**info, "actions": walk.actions}
        reward = float(info["reward"])
        if not math.isfinite(reward):
            reward = self._stand_in_reward(episode, info)
        for obs, applied, next_obs, done in walk.steps:
            self.agent.observe(obs, applied, reward if done else 0.0, next_obs, done)
        stats: dict[str, Any] = dict(self.agent.end_episode(episode, reward))
        if len(self.envs) > 1:
            stats["model"] = walk.task.model
        if walk.seeded:
            stats["seed_policy"] = self.seed_names[episode]
        return info, stats

    def _episode(self, episode: int) -> tuple[dict[str, Any], dict[str, Any]]:
        env, agent = self.envs[episode % len(self.envs)], self.agent
        obs, _ = env.reset(seed=self.episode_seed(episode))
        done, info = False, {}
        seeded = agent.seeds[episode] if episode < len(agent.seeds) else None
        t = 0
        while not done:
            action = agent.act(obs, episode)
            if seeded is not None:  # the agent still acts, so its generators stay in step
                action = seeded[t]
            t += 1
            next_obs, reward, done, _, info = env.step(np.array([action], dtype=np.float32))
            if done and not math.isfinite(reward):
                reward = self._stand_in_reward(episode, info)
            agent.observe(obs, info["applied"], reward, next_obs, done)
            obs = next_obs
        stats: dict[str, Any] = dict(agent.end_episode(episode, float(reward)))
        if len(self.envs) > 1:
            stats["model"] = episode % len(self.envs)
        if seeded is not None:
            stats["seed_policy"] = self.seed_names[episode]
        return info, stats

    def _stand_in_reward(self, episode: int, info: dict[str, Any]) -> float:
        """What the agent learns from an episode whose accuracy or reward came out NaN/inf (a
        pruned model that outputs non-finite values): the reward of zero accuracy, so one broken
        evaluation cannot poison the critic. The episode's row keeps the real value and is never
        eligible as best."""
        stand_in = float(self.env.reward_fn({**info, "accuracy": 0.0}))
        stand_in = stand_in if math.isfinite(stand_in) else 0.0
        tqdm.write(f"warning: episode {episode}: accuracy {info['accuracy']}, reward "
                   f"{info['reward']}; not eligible as best, the agent learns reward "
                   f"{stand_in:.4g}", file=sys.stderr)
        return stand_in

    @staticmethod
    def _is_better(row: dict[str, Any], best: dict[str, Any] | None) -> bool:
        better = best is None or row["reward"] > best["reward"]
        return row["finite"] and row["meets_budget"] and better and row.get("model", 0) == 0

    def _track(self, tracker: Tracker, row: dict[str, Any], improved: bool) -> None:
        if not tracker.active:
            return
        keys = ("reward", "accuracy", "macs", "params", "macs_ratio", "params_ratio",
                "latency_ms", "sigma", "best_reward")
        tracker.log({k: row[k] for k in keys if row.get(k) is not None}, step=row["episode"])
        if improved:
            names = list(row["keep_ratios"])
            tracker.bar("best_keep_ratios", names, [row["keep_ratios"][n] for n in names],
                        "unit", "keep_ratio", "best policy: keep ratio per unit",
                        step=row["episode"])
