"""Search quality and throughput: one agent (or the uniform heuristic) on a trained checkpoint at
a MACs budget; best validation accuracy before fine-tuning (as the search scored it, and its top
policies re-scored on held-out validation images), its MACs, wall time, episodes/min.

    python -m bench.bench_search --checkpoint runs/s5/resnet20_e3.pt --agent amc-ddpg --seed 0 \
        --episodes 300 --budget 0.5 --threads 2 [--seed-policies uniform,tp-global]

Writes ``bench/results/search_<agent>_s<seed>.json``; the search folder goes to ``--work``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
import yaml

from amc_agent.agents import AGENTS
from amc_agent.agents.search import Search, SearchConfig
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import DataSplits, load_checkpoint_data
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.evaluation import accuracy
from amc_agent.policies.finetune import measure
from amc_agent.policies.heuristics import heuristic_policy
from amc_agent.policies.peers import PEER_CRITERION, PEER_STRATEGIES
from bench.common import write_result


def test_accuracy(env: ChannelPruningEnv, data: DataSplits) -> float:
    """Test-split accuracy (fraction) of the policy ``env`` played last, before fine-tuning
    (measured as amc-compare measures a strategy): the figure no choice of the search or its
    re-scoring saw."""
    return float(measure(env.pruned_model(), data, env.cfg.device,
                         latency_batches=())["test_acc"])


def main() -> None:
    """Run one (agent, seed) and record it."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--agent", required=True, help="a registered agent or heuristic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--criterion", default=EnvConfig.criterion)
    p.add_argument("--round-to", type=int, default=EnvConfig.round_to)
    p.add_argument("--eval-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--plain-scoring", action="store_true",
                   help="score the pruned model as is (the speed lever off)")
    p.add_argument("--no-cache", action="store_true", help="evaluate repeated policies again")
    p.add_argument("--tag", default="", help="appended to the result's name")
    p.add_argument("--agent-kwargs", type=yaml.safe_load, default={},
                   help="agent settings as a YAML mapping")
    p.add_argument("--seed-policies", default="",
                   help="comma-separated heuristics played as the first episodes")
    p.add_argument("--rescore-top", type=int, default=5,
                   help="re-score the K best distinct policies on held-out validation images")
    p.add_argument("--work", type=Path, default=Path("runs/bench_search"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    cfg = EnvConfig(budget=args.budget, criterion=args.criterion, round_to=args.round_to,
                    val_size=args.eval_size, fast_scoring=not args.plain_scoring,
                    cache=not args.no_cache)
    seeds = tuple(n for n in args.seed_policies.split(",") if n)
    common = {"checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
              "dataset": ckpt["dataset"], "budget": args.budget, "criterion": args.criterion,
              "round_to": args.round_to, "eval_size": args.eval_size, "threads": args.threads,
              "seed": args.seed, "agent": args.agent, "fast_scoring": cfg.fast_scoring,
              "cache": cfg.cache, "agent_kwargs": args.agent_kwargs,
              "seed_policies": seeds, "rescore_top": args.rescore_top}
    t0 = time.perf_counter()
    if args.agent not in AGENTS:  # a heuristic: one policy, played as amc-compare plays it
        env = ChannelPruningEnv(model, data, cfg, fill_budget=False)
        if args.agent in PEER_STRATEGIES:  # Torch-Pruning's own channels, as amc-compare plays it
            env = env.with_criterion(PEER_CRITERION)
            common["channels_chosen_by"] = PEER_CRITERION
        info = env.play(heuristic_policy(args.agent, env, seed=args.seed))
        heldout = accuracy(env.pruned_model(), env.heldout_batches())
        result = {**common, "episodes": 1, "best_val_acc": info["accuracy"],
                  "max_search_val_acc": info["accuracy"], "rescored_val_acc": heldout,
                  "test_acc_before_finetune": test_accuracy(env, data),
                  "rescore_images": env.heldout_size,
                  "best_macs_ratio": info["macs"] / info["original_macs"],
                  "keep_ratios": info["keep_ratios"], "seconds": time.perf_counter() - t0}
        print(write_result(f"search_{args.agent}_{common['model']}{args.tag}", result))
        return
    env = ChannelPruningEnv(model, data, cfg)
    out = args.work / f"{args.agent}_s{args.seed}{args.tag}"
    shutil.rmtree(out, ignore_errors=True)
    scfg = SearchConfig(agent=args.agent, episodes=args.episodes, seed=args.seed,
                        agent_kwargs=args.agent_kwargs, wandb_mode="disabled", progress=False,
                        checkpoint_every=10, rescore_top=args.rescore_top, seed_policies=seeds)
    res = Search(env, scfg, out, {"recipe": ckpt["recipe"], "criterion": args.criterion}).run()
    rows = res.episodes
    env.play(res.best["keep_ratios"])  # the winner, replayed as amc-compare replays it
    best_curve = [r["best_reward"] for r in rows]
    result = {
        **common, "episodes": len(rows), "seconds": res.seconds,
        "episodes_per_minute": 60 * len(rows) / res.seconds,
        "best_val_acc": res.best["accuracy"], "best_macs_ratio": res.best["macs_ratio"],
        "max_search_val_acc": max(r["accuracy"] for r in rows
                                  if r["meets_budget"] and r["finite"]),
        "best_episode": res.best["episode"], "keep_ratios": res.best["keep_ratios"],
        "best_seed_policy": res.best.get("seed_policy"),
        "rescored_val_acc": res.rescored[0]["rescored_accuracy"] if res.rescored else None,
        "rescore_images": res.rescored[0]["images"] if res.rescored else None,
        "test_acc_before_finetune": test_accuracy(env, data),
        "best_reward_at": {str(n): best_curve[n - 1] for n in (50, 100, 150, 200, 250, 300)
                           if n <= len(rows)},
        "mean_reward_last_50": sum(r["reward"] for r in rows[-50:]) / min(50, len(rows)),
        "episodes_served_from_cache": len(rows) - len(env._cache) if env.cacheable else 0,
        "search_folder": str(out),
    }
    print(write_result(f"search_{args.agent}_{common['model']}_s{args.seed}{args.tag}", result))


if __name__ == "__main__":
    main()
