"""Episode scoring on parallel workers (``amc-search --workers N``, amc_agent.agents.workers):
the same episodes as one process where the agent does not learn from rewards, an exact resume of
a batched search after a crash of the driver, and a worker killed mid-episode replaced with no
episode lost, on local processes and on a local Ray instance."""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from amc_agent.agents import search as search_module
from amc_agent.agents.workers import EpisodeTask, WorkerConfig, score
from amc_agent.cli import cli, compare, search
from amc_agent.env.env import ChannelPruningEnv

BASE = ["--model", "cnn", "--dataset", "synthetic", "--eval-size", "32", "--recalib-batches",
        "1", "--recalib-batch-size", "16", "--no-progress", "--wandb-mode", "disabled",
        "--threads", "1"]
EPISODES = 8
VOLATILE = {"seconds", "timings", "cached"}
"""Row fields that depend on timing or on which process scored the episode first."""


def rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "episodes.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in VOLATILE} for ln in lines]


def policy(out: Path) -> dict[str, Any]:
    return json.loads((out / "policy.json").read_text())


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with 2 CPUs for this module's Ray tests (the pools join it)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_worker_random(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w1") / "s"
    assert search.main([*BASE, "--agent", "random", "--episodes", str(EPISODES),
                        "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_two_workers_give_the_episodes_of_one(tmp_path, request, one_worker_random,
                                              backend) -> None:
    if backend == "ray":
        request.getfixturevalue("ray_instance")
    out = tmp_path / "s"
    assert search.main([*BASE, "--agent", "random", "--episodes", str(EPISODES), "--workers",
                        "2", "--backend", backend, "--out", str(out)]) == 0
    assert rows(out) == rows(one_worker_random)
    assert policy(out)["keep_ratios"] == policy(one_worker_random)["keep_ratios"]


def test_batched_search_resumes_exactly_after_a_crash(tmp_path, monkeypatch) -> None:
    """The learner crashes in the middle of a batch (episode 5 of the batch 4-5): the resume
    walks that batch again from the checkpoint after episode 3 and ends where an uninterrupted
    run ends (DDPG's generators, noise and networks stand at the batch boundary; the black-box
    samplers' batched replay: test_blackbox.test_trials_open_in_batches_resume_exactly)."""
    argv = [*BASE, "--agent", "amc-ddpg", "--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}",
            "--episodes", str(EPISODES), "--workers", "2", "--rescore-top", "0"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert search.main([*argv, "--out", str(full)]) == 0
    real = search_module.Search._learn

    def crash_at_episode_5(self, walk, info):
        if walk.task.episode == 5:
            raise KeyboardInterrupt
        return real(self, walk, info)

    monkeypatch.setattr(search_module.Search, "_learn", crash_at_episode_5)
    with pytest.raises(KeyboardInterrupt):
        search.main([*argv, "--out", str(cut)])
    assert len(rows(cut)) == 5  # episode 4's row was written, but no checkpoint after it
    monkeypatch.setattr(search_module.Search, "_learn", real)
    assert search.main([*argv, "--out", str(cut), "--resume"]) == 0
    assert rows(cut) == rows(full)
    assert policy(cut) == policy(full)


class DiesOnce:
    """An environment whose process kills itself (SIGKILL) the first time it scores the
    episode seeded ``kill_seed``, leaving ``marker`` behind so its replacement survives."""

    def __init__(self, env: ChannelPruningEnv, marker: Path, kill_seed: int) -> None:
        self.env, self.marker, self.kill_seed = env, marker, kill_seed

    def evaluate_counts(self, counts: tuple[int, ...], seed: int, budget: float
                        ) -> dict[str, Any]:
        if seed == self.kill_seed and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.env.evaluate_counts(counts, seed, budget)


def dying_envs(marker: Path, kill_seed: int) -> list[DiesOnce]:
    args = cli.parse(search.build_parser(), [*BASE, "--out", "unused"])
    return [DiesOnce(env, marker, kill_seed) for env in search.worker_envs(args)]


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_worker_killed_mid_episode_is_replaced_with_no_episode_lost(tmp_path, request,
                                                                      backend) -> None:
    if backend == "ray":
        request.getfixturevalue("ray_instance")
    args = cli.parse(search.build_parser(), [*BASE, "--out", "unused"])
    env = search.worker_envs(args)[0]
    tasks = []
    for e in range(4):  # four walks of a random policy
        env.reset(seed=e, options={"dry": True})
        done, info = False, {}
        while not done:
            _, _, done, _, info = env.step([0.3 + 0.15 * e])
        tasks.append(EpisodeTask(e, 0, e, info["budget"],
                                 tuple(info["kept_channels"][u.name] for u in env.units)))
    expected = [score([env], t) for t in tasks]
    marker = tmp_path / "died"
    pool = WorkerConfig(workers=2, backend=backend, threads=1).pool(
        functools.partial(dying_envs, marker, 2))
    try:
        got = pool.evaluate(tasks)
        restarts = pool.restarts
    finally:
        pool.close()
    assert marker.exists()  # a worker did die, holding episode 2
    assert restarts >= 1
    strip = ("timings", "cached")
    assert [{k: v for k, v in g.items() if k not in strip} for g in got] == \
        [{k: v for k, v in x.items() if k not in strip} for x in expected]


def test_compare_searches_on_the_workers(tmp_path, one_worker_random) -> None:
    """amc-compare hands its workers to every searched strategy: its random search plays the
    episodes a one-process amc-search plays, and results.json records the workers."""
    out = tmp_path / "cmp"
    assert compare.main([*BASE, "--strategies", "random,uniform", "--episodes", str(EPISODES),
                         "--finetune-epochs", "0", "--workers", "2", "--out", str(out)]) == 0
    assert rows(out / "search-random") == rows(one_worker_random)
    config = json.loads((out / "results.json").read_text())["config"]
    assert (config["workers"], config["worker_backend"]) == (2, "local")
