"""Search quality and throughput: one agent (or the uniform heuristic) on a trained checkpoint at
a MACs budget; best validation accuracy before fine-tuning, its MACs, wall time, episodes/min.

    python -m bench.bench_search --checkpoint runs/base_resnet20.pt --agent amc-ddpg --seed 0 \
        --episodes 300 --budget 0.5 --round-to 1

Writes ``bench/results/search_<agent>_s<seed>.json``; the search folder goes to ``--work``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from agents.search import Search, SearchConfig
from amc_env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_env.datasets import load_checkpoint_data
from amc_env.env import ChannelPruningEnv, EnvConfig
from bench.common import write_result
from policies.heuristics import uniform


def main() -> None:
    """Run one (agent, seed) and record it."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--agent", required=True, help="a registered agent, or 'uniform'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--criterion", default=EnvConfig.criterion)
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--eval-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("runs/bench_search"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    cfg = EnvConfig(budget=args.budget, criterion=args.criterion, round_to=args.round_to,
                    val_size=args.eval_size)
    common = {"checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
              "dataset": ckpt["dataset"], "budget": args.budget, "criterion": args.criterion,
              "round_to": args.round_to, "eval_size": args.eval_size, "threads": args.threads,
              "seed": args.seed, "agent": args.agent}
    t0 = time.perf_counter()
    if args.agent == "uniform":
        env = ChannelPruningEnv(model, data, cfg, fill_budget=False)
        info = env.play(uniform(env))
        result = {**common, "episodes": 1, "best_val_acc": info["accuracy"],
                  "best_macs_ratio": info["macs"] / info["original_macs"],
                  "keep_ratios": info["keep_ratios"], "seconds": time.perf_counter() - t0}
        print(write_result(f"search_uniform_{common['model']}", result))
        return
    env = ChannelPruningEnv(model, data, cfg)
    out = args.work / f"{args.agent}_s{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    scfg = SearchConfig(agent=args.agent, episodes=args.episodes, seed=args.seed,
                        wandb_mode="disabled", progress=False, checkpoint_every=10)
    res = Search(env, scfg, out, {"recipe": ckpt["recipe"], "criterion": args.criterion}).run()
    rows = res.episodes
    best_curve = [r["best_reward"] for r in rows]
    result = {
        **common, "episodes": len(rows), "seconds": res.seconds,
        "episodes_per_minute": 60 * len(rows) / res.seconds,
        "best_val_acc": res.best["accuracy"], "best_macs_ratio": res.best["macs_ratio"],
        "best_episode": res.best["episode"], "keep_ratios": res.best["keep_ratios"],
        "best_reward_at": {str(n): best_curve[n - 1] for n in (50, 100, 150, 200, 250, 300)
                           if n <= len(rows)},
        "mean_reward_last_50": sum(r["reward"] for r in rows[-50:]) / min(50, len(rows)),
        "search_folder": str(out),
    }
    print(write_result(f"search_{args.agent}_{common['model']}_s{args.seed}", result))


if __name__ == "__main__":
    main()
