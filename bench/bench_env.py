"""Environment throughput: one episode's wall time split into surgery, criterion, BN
recalibration and evaluation, and the ratio episode time / one evaluation pass on the same
validation subset, for each speed lever (``LEVERS``) on the same policies. Also the reward signal
with and without BN recalibration for uniform 0.5.

    python -m bench.bench_env --checkpoint runs/s5/resnet20_e3.pt --episodes 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.evaluation import accuracy
from bench.common import write_result


def run_env(env: ChannelPruningEnv, actions: list[list[float]]) -> list[dict]:
    """Play one episode per action list; returns infos with the episode wall time added."""
    infos = []
    for i, acts in enumerate(actions):
        t0 = time.perf_counter()
        env.reset(seed=i)
        for a in acts:
            _, _, done, _, info = env.step([a])
        info["episode_s"] = time.perf_counter() - t0
        assert done
        infos.append(info)
    return infos


LEVERS = {"plain": {"fast_scoring": False, "reuse_prefix": False},
          "fast-scoring": {"fast_scoring": True, "reuse_prefix": False},
          "fast-scoring + prefix reuse": {"fast_scoring": True, "reuse_prefix": True}}
"""Env variants timed on the same policies, interleaved episode by episode so that the shared
machine's drift hits every variant alike. Prefix reuse only acts on criteria that sample
consumer inputs (the last variant is left out for the others). The cache is measured by a whole
search (bench_search), since only repeated policies hit it."""


def summarize(infos: list[dict]) -> dict:
    """Median episode time and its parts (seconds)."""
    return {"median_episode_s": statistics.median(i["episode_s"] for i in infos),
            "median_parts_s": {k: statistics.median(i["timings"][k] for i in infos)
                               for k in infos[0]["timings"]}}


def main() -> None:
    """Measure and write bench/results/env_<model>.json."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--val-size", type=int, default=EnvConfig.val_size)
    p.add_argument("--criterion", default=EnvConfig.criterion)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    cfg = EnvConfig(budget=args.budget, criterion=args.criterion, val_size=args.val_size,
                    round_to=args.round_to, cache=False)  # every episode's cost, not a lookup
    envs = {name: ChannelPruningEnv(model, data, cfg, **kw) for name, kw in LEVERS.items()
            if not kw["reuse_prefix"]}
    if envs["plain"].calibrator is not None:  # a criterion that samples consumer inputs
        reuse = "fast-scoring + prefix reuse"
        envs[reuse] = ChannelPruningEnv(model, data, cfg, **LEVERS[reuse])
    env = envs["fast-scoring"]
    assert env.fast_scoring, "the inference copy disagreed with the model"
    rng = np.random.default_rng(0)
    actions = [rng.uniform(cfg.lbound, 1.0, env.n_units).tolist() for _ in range(args.episodes)]
    runs: dict[str, list[dict]] = {name: [] for name in envs}
    for acts in actions:
        for name, e in envs.items():
            runs[name].append(run_env(e, [acts])[0])
    # Same policies, same kept channels: the variants may differ only by float rounding (fast
    # scoring) or not at all (prefix reuse samples the same rows).
    acc_diff = max(abs(a["accuracy"] - b["accuracy"])
                   for a, b in zip(runs["plain"], runs["fast-scoring"], strict=True))
    if "fast-scoring + prefix reuse" in runs:
        assert all(a["accuracy"] == b["accuracy"] and a["kept_channels"] == b["kept_channels"]
                   for a, b in zip(runs["fast-scoring"], runs["fast-scoring + prefix reuse"],
                                   strict=True)), "prefix reuse changed an episode"
    evals = []
    for _ in range(5):
        t0 = time.perf_counter()
        accuracy(env.model, env.val_batches)
        evals.append(time.perf_counter() - t0)
    eval_pass = statistics.median(evals)
    levers = {name: summarize(infos) for name, infos in runs.items()}
    base = levers["plain"]["median_episode_s"]
    for row in levers.values():
        row["speedup_vs_plain"] = base / row["median_episode_s"]
        row["episodes_per_minute"] = 60 / row["median_episode_s"]
    fastest = list(levers)[-1]  # every lever that applies, as searches run by default
    parts, episode = levers[fastest]["median_parts_s"], levers[fastest]["median_episode_s"]
    uniform = {}
    for recal in (True, False):
        e = ChannelPruningEnv(model, data, cfg, recalibrate=recal)
        uniform["with" if recal else "without"] = run_env(e, [[0.5] * e.n_units])[0]["accuracy"]
    accs = [i["accuracy"] for i in runs[fastest]]
    result = {
        "checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
        "dataset": ckpt["dataset"], "episodes": args.episodes, "units": env.n_units,
        "val_size": args.val_size, "recalib_images": cfg.recalib_batches * cfg.recalib_batch_size,
        "criterion": args.criterion, "budget": args.budget, "round_to": args.round_to,
        "threads": args.threads, "levers": levers,
        "max_accuracy_diff_plain_vs_fast": acc_diff,
        "median_episode_s": episode, "median_parts_s": parts, "eval_pass_s": eval_pass,
        "ratio_episode_to_eval": episode / eval_pass,
        "ratio_overhead_to_eval": (parts["surgery"] + parts["criterion"]) / eval_pass,
        "random_policy_val_acc": {"min": min(accs), "max": max(accs),
                                  "median": statistics.median(accs)},
        "uniform_0.5_val_acc_recalibration": uniform,
    }
    name = f"env_{result['model']}_{result['dataset']}" + (
        "" if args.criterion == EnvConfig.criterion else f"_{args.criterion.replace('+', '-')}")
    print(f"wrote {write_result(name, result)}")
    print({k: v for k, v in result.items() if k not in ("checkpoint",)})


if __name__ == "__main__":
    main()
