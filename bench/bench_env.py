"""Environment throughput: one episode's wall time split into surgery, criterion, BN
recalibration and evaluation, and the ratio episode time / one evaluation pass on the same
validation subset. Also the reward signal with and without BN recalibration for uniform 0.5.

    python -m bench.bench_env --checkpoint runs/base_resnet20.pt --episodes 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amc_env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_env.datasets import load_checkpoint_data
from amc_env.env import ChannelPruningEnv, EnvConfig
from amc_env.evaluation import accuracy
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


def main() -> None:
    """Measure and write bench/results/env_<model>.json."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--val-size", type=int, default=EnvConfig.val_size)
    p.add_argument("--criterion", default=EnvConfig.criterion)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    cfg = EnvConfig(budget=args.budget, criterion=args.criterion, val_size=args.val_size,
                    cache=False)  # the cost of every episode, not of a lookup
    env = ChannelPruningEnv(model, data, cfg)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(cfg.lbound, 1.0, env.n_units).tolist() for _ in range(args.episodes)]
    infos = run_env(env, actions)
    evals = []
    for _ in range(5):
        t0 = time.perf_counter()
        accuracy(env.model, env.val_batches)
        evals.append(time.perf_counter() - t0)
    eval_pass = statistics.median(evals)
    parts = {k: statistics.median(i["timings"][k] for i in infos) for k in infos[0]["timings"]}
    episode = statistics.median(i["episode_s"] for i in infos)
    uniform = {}
    for recal in (True, False):
        e = ChannelPruningEnv(model, data, cfg, recalibrate=recal)
        uniform["with" if recal else "without"] = run_env(e, [[0.5] * e.n_units])[0]["accuracy"]
    accs = [i["accuracy"] for i in infos]
    result = {
        "checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
        "dataset": ckpt["dataset"], "episodes": args.episodes, "units": env.n_units,
        "val_size": args.val_size, "recalib_images": cfg.recalib_batches * cfg.recalib_batch_size,
        "criterion": args.criterion, "budget": args.budget,
        "median_episode_s": episode, "median_parts_s": parts, "eval_pass_s": eval_pass,
        "ratio_episode_to_eval": episode / eval_pass,
        "ratio_overhead_to_eval": (parts["surgery"] + parts["criterion"]) / eval_pass,
        "random_policy_val_acc": {"min": min(accs), "max": max(accs),
                                  "median": statistics.median(accs)},
        "uniform_0.5_val_acc_recalibration": uniform,
    }
    name = f"env_{result['model']}_{result['dataset']}"
    print(f"wrote {write_result(name, result)}")
    print({k: v for k, v in result.items() if k not in ("checkpoint",)})


if __name__ == "__main__":
    main()
