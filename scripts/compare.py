"""``amc-compare``: the learned policy against heuristic ratios at the same budget, fine-tuned and
measured the same way; wandb runs in one group, ``results.json`` and ``report.md``."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amc_agent.agents.workers import WorkerConfig
from amc_agent.cli import cli
from amc_agent.cli.search import (
    add_env_args,
    add_seed_policies_arg,
    add_worker_args,
    check_common,
    env_config,
    worker_config,
    worker_pool,
)
from amc_agent.env import atomic, distributed
from amc_agent.env.errors import UserError
from amc_agent.env.training import TrainConfig
from amc_agent.policies.compare import (
    CompareConfig,
    check_strategies,
    run_compare,
    strategy_names,
    transfer_origin,
)
from amc_agent.policies.report import write_report

PROG = "amc-compare"


def build_parser() -> cli.Parser:
    """Flags of ``amc-compare``."""
    p = cli.make_parser(PROG, "Compare pruning strategies at one budget.")
    cli.add_model_source(p)
    add_env_args(p)
    p.add_argument("--strategies",
                   default="amc-ddpg,random,sensitivity,tp-uniform,tp-global",
                   help=f"comma-separated; from {', '.join(strategy_names())}")
    p.add_argument("--episodes", type=int, default=300, help="episodes per searched strategy")
    p.add_argument("--agent-kwargs", type=cli.mapping_arg, default={})
    add_seed_policies_arg(p)
    p.add_argument("--search", type=Path, default=None,
                   help="reuse this finished search folder instead of searching again")
    p.add_argument("--transfer", type=Path, default=None,
                   help="policy (policy.json or its folder) whose actor the 'transfer' strategy "
                        "runs on this model at this budget: zero-shot transfer from a search on "
                        "other models or budgets")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-seeds", type=int, default=1,
                   help="fine-tune every strategy with this many seeds (--seed, --seed+1, ...) "
                        "and report mean and standard deviation (default 1)")
    p.add_argument("--finetune-images", type=int, default=0,
                   help="fine-tune on this many training images (one seeded subset shared by "
                        "every strategy; 0 = the whole split, the default)")
    p.add_argument("--finetune-lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--scratch-epochs", type=int, default=None,
                   help="epochs for 'scratch' (default: the checkpoint's training epochs)")
    p.add_argument("--latency-time", type=float, default=0.5)
    p.add_argument("--out", type=Path, help="output folder, e.g. runs/cmp")
    p.add_argument("--resume", action="store_true",
                   help="continue the searches an earlier run left in --out (same model, "
                        "budget, criterion, seed) and redo the selection, fine-tunes and report "
                        "with this run's flags")
    add_worker_args(p)
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = cli.parse(build_parser(), argv)
    if isinstance(args.budget, tuple):
        raise UserError("amc-compare compares strategies at one budget; give --budget a single "
                        "fraction (a LOW:HIGH range is for amc-search)")
    check_common(args)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    check_strategies(strategies)
    if args.finetune_seeds < 1:
        raise UserError(f"--finetune-seeds must be at least 1, got {args.finetune_seeds}")
    for flag in ("finetune_epochs", "scratch_epochs"):
        if (getattr(args, flag) or 0) < 0:
            raise UserError(f"--{flag.replace('_', '-')} must be non-negative, "
                            f"got {getattr(args, flag)}")
    if args.search is not None and not (args.search / "policy.json").is_file():
        raise UserError(f"--search {args.search} holds no policy.json")
    if args.resume and not args.out.is_dir():
        raise UserError(f"--resume: {args.out} does not exist; drop --resume")
    if not args.resume and args.out.exists() and any(args.out.iterdir()):
        raise UserError(f"{args.out} is not empty; use --resume to continue it or choose "
                        "another --out")
    workers = worker_config(args)
    if distributed.active() and args.target == "latency":
        raise UserError("--target latency under torchrun: the processes would time each other "
                        "on one machine; run the latency search in one process")
    cli.apply_runtime(args)
    # Under torchrun rank 0 searches and writes, every process fine-tunes (policies.compare);
    # the barrier keeps rank 0 from writing before the others checked --out.
    args.device = distributed.setup(args.device)
    try:
        distributed.barrier()
        return _run(args, strategies, workers, argv)
    finally:
        distributed.teardown()


def _run(args: Any, strategies: list[str], workers: WorkerConfig,
         argv: Sequence[str] | None) -> int:
    """Everything after the checks: build, compare, write (rank 0)."""
    source = cli.source_checkpoint(args)
    data = cli.load_data(args, source)
    model, recipe, ckpt = cli.resolve_model(args, data.spec.in_channels, data.spec.num_classes,
                                            source, input_shape=data.spec.input_shape)
    scratch_epochs = args.scratch_epochs or int((ckpt or {}).get("metrics", {}).get("epochs", 1))
    cfg = CompareConfig(
        strategies=strategies, episodes=args.episodes, agent_kwargs=args.agent_kwargs,
        finetune=TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr,
                             batch_size=args.batch_size, seed=args.seed),
        scratch_epochs=scratch_epochs, seed=args.seed, search_dir=args.search,
        transfer=args.transfer,
        finetune_seeds=args.finetune_seeds, finetune_images=args.finetune_images,
        rescore_top=args.rescore_top,
        rescore_images=args.rescore_images, rescore_finetune=args.rescore_finetune,
        seed_policies=args.seed_policies, resume=args.resume,
        wandb_mode=args.wandb_mode, wandb_project=args.wandb_project,
        latency_backend=args.latency_backend,
        group=f"compare-{args.out.name}", latency_time_s=args.latency_time,
        progress=not args.no_progress)
    env_cfg = env_config(args)
    with worker_pool(workers if distributed.is_main() else WorkerConfig(), args) as pool:
        results = run_compare(model.to(args.device), recipe, data, env_cfg, cfg, args.out,
                              args.device, pool)
    if results is None:  # not rank 0
        return 0
    results["config"] = {"target": args.target, "budget": args.budget,
                         "criterion": env_cfg.criterion, "seed": args.seed,
                         "finetune_epochs": args.finetune_epochs,
                         "finetune_seeds": args.finetune_seeds,
                         "finetune_images": args.finetune_images or len(data.train),
                         "strategies": strategies, "image_size": data.spec.image_size,
                         "augment": data.split.get("augment"),
                         "episodes": args.episodes, "scratch_epochs": scratch_epochs,
                         "seed_policies": list(args.seed_policies),
                         "workers": workers.workers, "worker_backend": workers.backend,
                         **(transfer_origin(args.transfer) if args.transfer else {}),
                         **results.pop("selection")}
    command = " ".join(shlex.quote(a) for a in [PROG, *(sys.argv[1:] if argv is None
                                                         else argv)])
    results["command"] = command
    atomic.write_json(args.out / "results.json", results)
    report = write_report(results, args.out, command)
    print(json.dumps({"report": str(report), "results": str(args.out / "results.json"),
                      "wandb": str(args.out / "wandb"),
                      "test_acc": {k: "diverged" if v["test_acc"] is None
                                   else round(v["test_acc"], 4)
                                   for k, v in results["strategies"].items()},
                      "test_acc_std": {k: v.get("test_acc_std")
                                       for k, v in results["strategies"].items()}}))
    return 0


def entry() -> None:
    """Console-script entry point."""
    cli.run(PROG, main)


if __name__ == "__main__":
    entry()
