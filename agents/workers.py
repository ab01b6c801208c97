"""Episode scoring on parallel workers: processes on this machine (``local``) or Ray actors
(``ray``, a laptop or a cluster), while one learner in the driver decides what to try next.

An episode's walk (observations, actions, the action wall) needs no evaluation; only the final
pruned model's BN recalibration and scoring are expensive. So the learner walks episodes dry
(``ChannelPruningEnv.reset(options={"dry": True})``) and hands each one's kept channel counts to
a worker that holds the model and data in memory
(:meth:`ChannelPruningEnv.evaluate_counts`); the worker returns the episode's final ``info``,
exactly what the learner's own step would have returned (the criterion and the reward are
deterministic given the counts and the episode's seed; NetAdapt's master and workers, Archai's
Ray evaluator follow the same split).

The pools are thin: Python's ``concurrent.futures`` process pool for ``local`` and Ray actors
for ``ray``; a worker that dies is replaced and the episodes it held are scored again, each
result kept once, by episode.
"""

from __future__ import annotations

import multiprocessing
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import torch

from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.errors import UserError
from amc_agent.env.registry import Registry

EnvFactory = Callable[[], list[ChannelPruningEnv]]
"""Builds a worker's environments (the search's models, in the search's order); must pickle
(a module-level function or a ``functools.partial`` of one), since it runs in the worker."""

MAX_RESTARTS = 3
"""Replacements of dead workers in a row, with no episode finished between them, before the
pool gives up (a worker that dies on every start, e.g. out of memory, would loop forever)."""


@dataclass(frozen=True)
class EpisodeTask:
    """One walked episode to score: the environment seed, budget and kept channel counts."""

    episode: int
    model: int
    """Index of the environment (the search's model) in the factory's list."""
    seed: int
    budget: float
    counts: tuple[int, ...]


def score(envs: list[ChannelPruningEnv], task: EpisodeTask) -> dict[str, Any]:
    """``task``'s final ``info`` on ``envs`` (without the pruning record, which the search does
    not keep and which would only travel)."""
    info = envs[task.model].evaluate_counts(task.counts, task.seed, task.budget)
    info.pop("pruning", None)
    return info


class EpisodePool(ABC):
    """Scores batches of walked episodes on ``workers`` workers."""

    backend: str = ""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.restarts = 0
        """Workers replaced after dying, over the pool's life."""

    @abstractmethod
    def evaluate(self, tasks: list[EpisodeTask]) -> list[dict[str, Any]]:
        """Each task's final ``info``, in the tasks' order."""

    @abstractmethod
    def close(self) -> None:
        """Stop the workers."""

    def _replaced(self, failures_in_a_row: int, why: str) -> None:
        """Count a replacement; give up after :data:`MAX_RESTARTS` in a row."""
        self.restarts += 1
        if failures_in_a_row > MAX_RESTARTS:
            raise RuntimeError(f"{self.backend} workers died {failures_in_a_row} times in a row "
                               f"without finishing an episode ({why}); giving up")
        print(f"warning: a {self.backend} worker died ({why}); replacing it and scoring its "
              "episodes again", file=sys.stderr)


# ------------------------------------------------------------------------------- local processes

_ENVS: list[ChannelPruningEnv] = []


def _init_local(factory: EnvFactory, threads: int) -> None:
    torch.set_num_threads(threads)
    _ENVS[:] = factory()


def _score_local(task: EpisodeTask) -> dict[str, Any]:
    return score(_ENVS, task)


class LocalPool(EpisodePool):
    """``workers`` processes on this machine (spawned: a forked child of a process that has run
    OpenMP can hang), each with ``threads`` torch threads and its own copy of the environments."""

    backend = "local"

    def __init__(self, factory: EnvFactory, workers: int, threads: int) -> None:
        super().__init__(workers)
        self._factory, self._threads = factory, threads
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_local, initargs=(self._factory,
                                                                      self._threads))

    def evaluate(self, tasks: list[EpisodeTask]) -> list[dict[str, Any]]:
        results: dict[int, dict[str, Any]] = {}
        pending, in_a_row = list(tasks), 0
        while pending:
            futures: dict[Future, EpisodeTask] = {self._executor.submit(_score_local, t): t
                                                  for t in pending}
            broken: list[EpisodeTask] = []
            waiting = set(futures)
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for f in done:
                    try:
                        results[futures[f].episode] = f.result()
                        in_a_row = 0
                    except BrokenProcessPool:
                        broken.append(futures[f])
            if broken:
                # One dead process breaks the whole executor: start a new one and score again
                # what had not come back.
                self._executor.shutdown(wait=False, cancel_futures=True)
                in_a_row += 1
                self._replaced(in_a_row, "process pool broken")
                self._executor = self._start()
            pending = broken
        return [results[t.episode] for t in tasks]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------- Ray actors

class _RayWorker:
    """A Ray actor holding the environments."""

    def __init__(self, factory: EnvFactory, threads: int) -> None:
        torch.set_num_threads(threads)
        self.envs = factory()

    def score(self, task: EpisodeTask) -> dict[str, Any]:
        return score(self.envs, task)


class RayPool(EpisodePool):
    """``workers`` Ray actors, each reserving ``threads`` CPUs (and ``gpus`` GPUs): on the cluster
    at ``address`` (``auto``: the one this machine belongs to), or on a local Ray instance
    started here with ``workers x threads`` CPUs."""

    backend = "ray"

    def __init__(self, factory: EnvFactory, workers: int, threads: int,
                 address: str | None = None, gpus: float = 0.0) -> None:
        super().__init__(workers)
        try:
            import ray
        except ImportError:
            raise UserError("--backend ray needs Ray: pip install 'amc-agent[ray]'") from None
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address, num_cpus=None if address else workers * threads,
                     include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self._cls = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=0)(_RayWorker)
        self._factory, self._threads = factory, threads
        self._actors = [self._spawn() for _ in range(workers)]

    def _spawn(self) -> Any:
        return self._cls.remote(self._factory, self._threads)

    def evaluate(self, tasks: list[EpisodeTask]) -> list[dict[str, Any]]:
        ray = self._ray
        results: dict[int, dict[str, Any]] = {}
        queue, idle = deque(tasks), list(range(len(self._actors)))
        running: dict[Any, tuple[int, EpisodeTask]] = {}
        in_a_row = 0
        while queue or running:
            while queue and idle:
                i, task = idle.pop(), queue.popleft()
                running[self._actors[i].score.remote(task)] = (i, task)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                i, task = running.pop(ref)
                try:
                    results[task.episode] = ray.get(ref)
                    in_a_row = 0
                except ray.exceptions.RayActorError as exc:
                    in_a_row += 1
                    self._replaced(in_a_row, type(exc).__name__)
                    self._actors[i] = self._spawn()
                    queue.appendleft(task)
                idle.append(i)
        return [results[t.episode] for t in tasks]

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._owns:
            self._ray.shutdown()


# ------------------------------------------------------------------------------- registry

PoolFactory = Callable[..., EpisodePool]
POOLS: Registry[PoolFactory] = Registry("worker backend")


@POOLS.register("local")
def make_local(factory: EnvFactory, workers: int, threads: int, address: str | None = None,
               gpus: float = 0.0) -> EpisodePool:
    """Processes on this machine (``address`` and ``gpus`` do not apply)."""
    if address is not None or gpus:
        raise UserError("--ray-address and --worker-gpus are for --backend ray")
    return LocalPool(factory, workers, threads)


@POOLS.register("ray")
def make_ray(factory: EnvFactory, workers: int, threads: int, address: str | None = None,
             gpus: float = 0.0) -> EpisodePool:
    """Ray actors (see :class:`RayPool`)."""
    return RayPool(factory, workers, threads, address, gpus)


@dataclass(frozen=True)
class WorkerConfig:
    """How a search scores its episodes: ``workers`` at once on ``backend``."""

    workers: int = 1
    """Episodes scored at once (1: in the learner's process, one after another)."""
    backend: str = "local"
    """``local`` (processes here) or ``ray``."""
    threads: int = 1
    """Torch threads (and, on Ray, CPUs reserved) per worker."""
    ray_address: str | None = None
    """Ray cluster to join (``auto`` or ``HOST:PORT``; None: start a local one)."""
    gpus: float = 0.0
    """GPUs reserved per Ray worker."""

    def check(self) -> None:
        """One clear error for a bad setting."""
        if self.workers < 1 or self.threads < 1:
            raise UserError("--workers and the threads per worker must be at least 1")
        if self.backend not in POOLS:
            POOLS.get(self.backend)
        if self.gpus < 0:
            raise UserError("--worker-gpus must be non-negative")

    def pool(self, factory: EnvFactory) -> EpisodePool:
        """Start the workers."""
        self.check()
        return POOLS.get(self.backend)(factory, self.workers, self.threads, self.ray_address,
                                       self.gpus)
