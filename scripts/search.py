"""``amc-search``: train a search agent on a model + dataset + budget; writes a policy folder."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from amc_agent.agents import AGENTS
from amc_agent.agents.rescore import (
    DEFAULT_FINETUNE_IMAGES,
    DEFAULT_TOP,
    ShortFinetune,
    resolve_finetune,
    resolve_top,
)
from amc_agent.agents.search import STATE_FILE, Search, SearchConfig
from amc_agent.agents.tracking import MODES
from amc_agent.agents.workers import POOLS, EpisodePool, WorkerConfig
from amc_agent.cli import cli
from amc_agent.env import atomic
from amc_agent.env.criteria import CRITERIA, RECONSTRUCT, criterion_name
from amc_agent.env.datasets import DataSplits
from amc_agent.env.env import OBSERVATIONS, TARGETS, ChannelPruningEnv, EnvConfig
from amc_agent.env.errors import UserError
from amc_agent.env.latency import BACKENDS, check_backend
from amc_agent.env.rewards import REWARDS
from amc_agent.policies.artifact import Policy
from amc_agent.policies.heuristics import HEURISTICS

PROG = "amc-search"


def init_actor(path: Path | None, observation: str = "amc") -> dict[str, Any] | None:
    """The actor state of ``--init-actor`` (a policy.json, or the folder holding one), whose
    actor must have been trained on the search's ``observation`` set."""
    if path is None:
        return None
    policy_file = path / "policy.json" if path.is_dir() else path
    policy = Policy.load(policy_file)
    if policy.actor is None:
        raise UserError(f"--init-actor {path}: the policy carries no actor (searched by "
                        f"{policy.agent.get('name')!r}); give one from an RL agent's search")
    if policy.observation != observation:
        raise UserError(f"--init-actor {path}: its actor was trained on the "
                        f"{policy.observation!r} observation; search with --observation "
                        f"{policy.observation}")
    return atomic.read_torch(policy_file.parent / policy.actor, "the policy's actor file")


def budget_arg(text: str) -> float | tuple[float, float]:
    """argparse type of ``--budget``: a fraction, or ``LOW:HIGH`` for a range."""
    try:
        parts = tuple(float(x) for x in str(text).split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction or LOW:HIGH, got {text!r}") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected a fraction or LOW:HIGH, got {text!r}")
    return parts[0], parts[1]


def add_env_args(p: argparse.ArgumentParser) -> None:
    """Flags that configure the pruning environment (shared with amc-compare)."""
    d = EnvConfig()
    p.add_argument("--target", default=d.target, help=f"{', '.join(TARGETS)} (default flops)")
    p.add_argument("--budget", type=budget_arg, default=d.budget,
                   help="fraction of the original target cost to keep (default 0.5); amc-search "
                        "also takes LOW:HIGH, a budget-conditioned search drawing each "
                        "episode's budget from that range")
    p.add_argument("--criterion", default=d.criterion,
                   help=f"{', '.join(CRITERIA.names())} (default {d.criterion})")
    p.add_argument("--reconstruct", action="store_true",
                   help="refit each cut unit's consumer layers by least squares (AMC's step; "
                        "thinet and lasso always do)")
    p.add_argument("--calib-images", type=int, default=d.calib_images,
                   help="training images sampled for thinet/lasso/--reconstruct (default 256)")
    p.add_argument("--calib-points", type=int, default=d.calib_points,
                   help="output positions sampled per image and consumer layer (default 10)")
    p.add_argument("--reward", default="acc", help=f"{', '.join(REWARDS.names())}")
    p.add_argument("--lbound", type=float, default=d.lbound, help="smallest keep ratio")
    p.add_argument("--round-to", type=int, default=d.round_to, help="channel rounding step")
    p.add_argument("--strict-round", action="store_true",
                   help="every unit keeps a multiple of --round-to, narrow units too (by default "
                        "a unit narrower than 8 steps uses a finer step); for latency budgets, "
                        "where an off-grid count runs no faster than the next multiple")
    p.add_argument("--eval-size", type=int, default=d.val_size,
                   help="validation images scored per episode (default 1000)")
    p.add_argument("--eval-batch", type=int, default=d.eval_batch)
    p.add_argument("--recalib-batches", type=int, default=d.recalib_batches,
                   help="training batches for BN recalibration")
    p.add_argument("--recalib-batch-size", type=int, default=d.recalib_batch_size)
    p.add_argument("--no-recalibrate", action="store_true", help="skip BN recalibration")
    p.add_argument("--plain-scoring", action="store_true",
                   help="score episodes on the pruned model as is, not on its BN-folded "
                        "channels-last copy (same network up to float rounding, slower)")
    p.add_argument("--no-cache", action="store_true",
                   help="evaluate every episode, also a repeat of an earlier policy")
    p.add_argument("--no-fill", action="store_true",
                   help="one-sided action wall (AMC's): the agent may under-use the budget")
    p.add_argument("--include", action="append", default=[],
                   help="only prune units whose root module matches (shell pattern; repeatable)")
    p.add_argument("--exclude", action="append", default=[],
                   help="never prune units whose root module matches (repeatable)")
    p.add_argument("--latency-batch", type=int, default=d.latency_batch)
    p.add_argument("--latency-predictor", default=d.latency_predictor,
                   help="table (per-layer latency tables, cached; default) or line (a + b x "
                        "MACs) for the wall under --target latency")
    p.add_argument("--latency-margin", type=float, default=d.latency_margin,
                   help="under --target latency the wall aims below the budget by this quantile "
                        "of measured / predicted latency over recent episodes, so about 1 - "
                        "MARGIN of episodes measure over the budget (default %(default)s; 0: "
                        "trust the predictor)")
    p.add_argument("--observation", default="amc", choices=tuple(OBSERVATIONS),
                   help="what the agent sees per unit: amc (AMC's state, default) or amc+share "
                        "(plus the unit's raw share of the MACs, for an actor meant to be "
                        "applied to models of other depths)")
    p.add_argument("--no-latency-refit", action="store_true",
                   help="under --target latency keep the latency table as built instead of "
                        "refitting its calibration on the search's own timed episodes")
    p.add_argument("--drop-dominated-counts", action="store_true",
                   help="under --target latency a unit may keep only channel counts that no "
                        "larger count of it matches in predicted latency (no cut pays for "
                        "channels it does not keep)")
    p.add_argument("--latency-backend", default=None,
                   help=f"{', '.join(BACKENDS)}: how latency is measured (default: cudagraph "
                        "on CUDA, eager on CPU; onnxruntime: as a CPU deployment runs it)")
    p.add_argument("--rescore-top", type=int, default=None,
                   help="re-score the K best distinct policies of a search (and its "
                        "--seed-policies) on held-out validation images no episode saw, and "
                        "keep the best of those "
                        f"(default {DEFAULT_TOP} when the split has such images; 0: off)")
    p.add_argument("--rescore-images", type=int, default=None,
                   help="held-out images for --rescore-top (default: all of them)")
    p.add_argument("--rescore-finetune", type=int, default=None,
                   help="fine-tune each re-scored policy for one pass over this many training "
                        "images before its held-out score, and rank by the score after it "
                        "(NetAdapt's short-term fine-tune; default "
                        f"{DEFAULT_FINETUNE_IMAGES}, at most the training split, whenever "
                        "policies are re-scored; 0: off)")
    p.add_argument("--wandb-mode", default="offline", help="offline (default), online, disabled")
    p.add_argument("--wandb-project", default="amc")


def env_config(args: argparse.Namespace) -> EnvConfig:
    """The EnvConfig the flags describe."""
    budget_range = args.budget if isinstance(args.budget, tuple) else None
    budget = sum(budget_range) / 2 if budget_range else args.budget
    return EnvConfig(target=args.target, budget=budget, budget_range=budget_range,
                     observation=args.observation, lbound=args.lbound,
                     round_to=args.round_to, strict_round=args.strict_round,
                     criterion=criterion_spec(args), reward=args.reward,
                     val_size=args.eval_size, eval_batch=args.eval_batch,
                     recalibrate=not args.no_recalibrate, recalib_batches=args.recalib_batches,
                     recalib_batch_size=args.recalib_batch_size, fill_budget=not args.no_fill,
                     include=tuple(args.include), exclude=tuple(args.exclude),
                     device=args.device, latency_batch=args.latency_batch, data_seed=args.seed,
                     calib_images=args.calib_images, calib_points=args.calib_points,
                     fast_scoring=not args.plain_scoring, cache=not args.no_cache,
                     latency_backend=args.latency_backend,
                     latency_predictor=args.latency_predictor,
                     latency_margin=args.latency_margin,
                     latency_refit=not args.no_latency_refit,
                     latency_drop_dominated=args.drop_dominated_counts)


def criterion_spec(args: argparse.Namespace) -> str:
    """``--criterion`` with ``+reconstruct`` appended when ``--reconstruct`` is given."""
    name = criterion_name(args.criterion)
    return name + RECONSTRUCT if args.reconstruct or args.criterion.endswith(RECONSTRUCT) \
        else name


def check_common(args: argparse.Namespace) -> None:
    """Validate flags before anything heavy runs."""
    if (args.rescore_top is not None and args.rescore_top < 0) or \
            (args.rescore_images is not None and args.rescore_images < 1) or \
            (args.rescore_finetune is not None and args.rescore_finetune < 0):
        raise UserError("--rescore-top and --rescore-finetune must be non-negative and "
                        "--rescore-images positive")
    if args.latency_backend is not None:
        check_backend(args.latency_backend, args.device)
    if args.wandb_mode not in MODES:
        raise UserError(f"--wandb-mode must be one of {', '.join(MODES)}")
    if criterion_name(args.criterion) not in CRITERIA:
        CRITERIA.get(criterion_name(args.criterion))
    if args.reward not in REWARDS:
        REWARDS.get(args.reward)
    if args.out is None:
        raise UserError("--out is required (the output folder)")
    cli.check_output(args.out, folder=True)


def add_seed_policies_arg(p: argparse.ArgumentParser) -> None:
    """``--seed-policies`` (shared with amc-compare)."""
    p.add_argument("--seed-policies", type=seed_policies_arg, default=(),
                   help="comma-separated heuristics (e.g. uniform,tp-global) whose policies "
                        "are the search's first episodes, within --episodes; with "
                        "--rescore-top they are re-scored beside the top K, so the search "
                        "declares one that recovers better than every searched policy")


def seed_policies_arg(text: str) -> tuple[str, ...]:
    """Parse ``--seed-policies``: registered heuristic names, no repeats."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in HEURISTICS]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"unknown or repeated heuristic(s) {unknown or list(names)}; valid: "
            f"{', '.join(HEURISTICS.names())}")
    return names


def add_worker_args(p: argparse.ArgumentParser) -> None:
    """``--workers``, ``--backend``, ``--ray-address``, ``--worker-gpus``,
    ``--worker-threads`` (shared with amc-compare)."""
    d = WorkerConfig()
    p.add_argument("--workers", type=int, default=d.workers,
                   help="episodes scored at once on parallel workers, in synchronous batches "
                        "(default 1: one after another in this process)")
    p.add_argument("--backend", default=d.backend,
                   help=f"{', '.join(POOLS.names())}: workers as processes on this machine "
                        "(default) or Ray actors")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to join with --backend ray (auto or HOST:PORT; default: "
                        "start a local one)")
    p.add_argument("--worker-gpus", type=float, default=d.gpus,
                   help="GPUs each Ray worker reserves (e.g. 1, or 0.5 to share one)")
    p.add_argument("--worker-threads", type=int, default=None,
                   help="torch threads per worker (default: --threads, or torch's count, "
                        "divided among the workers, at least 1)")


def worker_config(args: argparse.Namespace) -> WorkerConfig:
    """The WorkerConfig the flags describe (checked: one line for a bad setting)."""
    threads = args.worker_threads or max(1, (args.threads or torch.get_num_threads())
                                         // max(1, args.workers))
    cfg = WorkerConfig(workers=args.workers, backend=args.backend, threads=threads,
                       ray_address=args.ray_address, gpus=args.worker_gpus)
    cfg.check()
    if cfg.workers > 1 and args.target == "latency":
        raise UserError("a latency target is measured on this machine episode by episode "
                        "(workers would time each other); use --workers 1")
    return cfg


@contextlib.contextmanager
def worker_pool(cfg: WorkerConfig, args: argparse.Namespace) -> Iterator[EpisodePool | None]:
    """The workers of ``cfg`` (None for one), each building its environments from ``args``
    like this process did; stopped on the way out."""
    if cfg.workers < 2:
        yield None
        return
    pool = cfg.pool(functools.partial(worker_envs, _absolute_paths(args)))
    try:
        yield pool
    finally:
        pool.close()


def _absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with its file paths absolute (a Ray worker may start in another folder)."""
    out = argparse.Namespace(**vars(args))
    for k, v in vars(args).items():
        if isinstance(v, Path):
            setattr(out, k, v.absolute())
        elif isinstance(v, list) and v and all(isinstance(x, Path) for x in v):
            setattr(out, k, [x.absolute() for x in v])
    return out


def build_envs(args: argparse.Namespace
               ) -> tuple[list[ChannelPruningEnv], dict[str, Any], DataSplits]:
    """One environment per ``--checkpoint`` (or the one ``--model``), the first model's
    recipe and data split."""
    envs, recipe, data = [], {}, None
    paths = args.checkpoint if isinstance(args.checkpoint, list) else [args.checkpoint]
    for path in [p for p in paths if p is not None] or [None]:
        one = argparse.Namespace(**{**vars(args), "checkpoint": path})
        source = cli.source_checkpoint(one)
        split = cli.load_data(one, source)
        model, model_recipe, _ = cli.resolve_model(one, split.spec.in_channels,
                                                   split.spec.num_classes, source,
                                                   input_shape=split.spec.input_shape)
        envs.append(ChannelPruningEnv(model, split, env_config(args)))
        if data is None:
            recipe, data = model_recipe, split
    assert data is not None
    return envs, recipe, data


def worker_envs(args: argparse.Namespace) -> list[ChannelPruningEnv]:
    """A worker's environments: built from the learner's flags, seeded as the learner was
    (a ``--model`` without weights is drawn from the seed)."""
    cli.seed_everything(args.seed)
    return build_envs(args)[0]


def build_parser() -> cli.Parser:
    """Flags of ``amc-search``."""
    p = cli.make_parser(PROG, "Search per-unit keep ratios with an RL agent under a budget.")
    cli.add_model_source(p, many=True)
    add_env_args(p)
    p.add_argument("--agent", default="amc-ddpg", help=", ".join(AGENTS.names()))
    p.add_argument("--agent-kwargs", type=cli.mapping_arg, default={},
                   help="agent hyper-parameters as a YAML/JSON mapping, "
                        "e.g. '{warmup_episodes: 20}'")
    p.add_argument("--init-actor", type=Path, default=None,
                   help="start from the actor of this policy (policy.json or its folder; e.g. "
                        "a search on another model): a 10-episode warm-up, and its noise-free "
                        "policy on this model is the first episode")
    p.add_argument("--episodes", type=int, default=300)
    add_seed_policies_arg(p)
    add_worker_args(p)
    p.add_argument("--checkpoint-every", type=int, default=1,
                   help="episodes between checkpoints (with --workers: at the end of the batch "
                        "that reaches it)")
    p.add_argument("--out", type=Path, help="output folder, e.g. runs/search")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--no-progress", action="store_true")
    return p


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as a plain mapping (written to config.yaml; ``--config`` reads it back)."""
    out = {}
    for k, v in vars(args).items():
        if k in ("config", "resume"):
            continue
        out[k.replace("_", "-")] = str(v) if isinstance(v, Path) else \
            [str(x) for x in v] if k == "checkpoint" and isinstance(v, list) else \
            ":".join(map(str, v)) if k == "budget" and isinstance(v, tuple) else \
            ",".join(v) if isinstance(v, tuple) else v
    return out


# What a search writes before its first checkpoint (amc_agent.agents.search): a folder holding only
# these has nothing to resume from, so --resume starts it again instead of refusing it.
PRE_CHECKPOINT = ("config.yaml", "episodes.jsonl", "policy.json", "actor.pt", "wandb",
                  STATE_FILE.parent.name)


def _pre_checkpoint_leftovers(out: Path) -> list[Path] | None:
    """The entries of search folder ``out`` when it holds only what a search writes before its
    first checkpoint (atomic writes' ``.*.tmp`` files included); ``None`` when it holds anything
    else, or nothing."""
    entries = list(out.iterdir()) if out.is_dir() else []
    if not entries or (out / STATE_FILE).exists():
        return None
    known = all(p.name in PRE_CHECKPOINT or (p.name.startswith(".") and p.name.endswith(".tmp"))
                for p in entries)
    return entries if known else None


def prepare_out(out: Path, resume: bool) -> bool:
    """Refuse to overwrite a finished or running search unless resuming; returns whether the
    search resumes from a checkpoint.

    ``resume`` on a folder a search left before its first checkpoint (killed early) removes what
    it left and starts again from episode 0, saying so on stderr.
    """
    if resume:
        if (out / STATE_FILE).exists():
            return True
        leftovers = _pre_checkpoint_leftovers(out)
        if leftovers is None:
            raise UserError(f"nothing to resume in {out} (no {STATE_FILE}); drop --resume")
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        print(f"{PROG}: {out} stopped before its first checkpoint; starting the search again",
              file=sys.stderr)
        return False
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; use --resume to continue it or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror}") from None
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = cli.parse(build_parser(), argv)
    check_common(args)
    if args.agent not in AGENTS:
        AGENTS.get(args.agent)
    if args.episodes < 1 or args.checkpoint_every < 1:
        raise UserError("--episodes and --checkpoint-every must be at least 1")
    workers = worker_config(args)
    cli.apply_runtime(args)
    paths = list(args.checkpoint or [])
    envs, recipe, data = build_envs(args)
    env = envs[0]
    top = resolve_top(args.rescore_top, env)
    finetune = args.rescore_finetune = resolve_finetune(args.rescore_finetune, top,
                                                        env.train_split)
    cfg = SearchConfig(agent=args.agent, episodes=args.episodes, seed=args.seed,
                       agent_kwargs=args.agent_kwargs, checkpoint_every=args.checkpoint_every,
                       wandb_mode=args.wandb_mode, wandb_project=args.wandb_project,
                       progress=not args.no_progress, rescore_top=top,
                       rescore_images=args.rescore_images, seed_policies=args.seed_policies,
                       init_actor=init_actor(args.init_actor, args.observation),
                       rescore_finetune=ShortFinetune(finetune, seed=args.seed)
                       if finetune else None)
    context = {"recipe": recipe, "criterion": criterion_spec(args), "dataset": data.spec.name,
               "checkpoint": str(paths[0]) if paths else None}
    with worker_pool(workers, args) as pool:
        # Built before anything is written: building the agent for this model's units is what
        # validates --agent-kwargs (and --rescore-top against the split).
        search = Search(env, cfg, args.out, context, also=envs[1:], pool=pool)
        resume = prepare_out(args.out, args.resume)
        if not resume:
            atomic.write_text(args.out / "config.yaml", yaml.safe_dump(resolved_config(args)))
        result = search.run(resume=resume)
    if result.best is None:
        print(json.dumps({"out": str(args.out), "best": None,
                          "note": "no episode met the budget"}))
        return 0
    b = result.best
    print(json.dumps({"out": str(args.out), "policy": str(args.out / "policy.json"),
                      "best_episode": b["episode"], "best_reward": b["reward"],
                      "val_accuracy": b["accuracy"], "macs_ratio": b["macs_ratio"],
                      "rescored_val_accuracy": result.rescored[0]["rescored_accuracy"]
                      if result.rescored else None,
                      **({"finetuned_val_accuracy": result.rescored[0]["finetuned_accuracy"]}
                         if result.rescored and "finetuned_accuracy" in result.rescored[0]
                         else {}),
                      **({"remeasured_latency_ratio": rm["latency_ratio"],
                          "latency_budget_met": rm["met"]}
                         if (rm := result.policy.metrics.get("remeasured_latency")) else {}),
                      "episodes": len(result.episodes), "seconds": round(result.seconds, 1),
                      "agent": cfg.agent}))
    if rm and not rm["met"]:
        print(f"warning: no candidate met the latency budget {env.cfg.budget} when measured "
              f"again (best {rm['latency_ratio']:.3f} of the original); {args.out / 'policy.json'}"
              f" is over budget, see latency_check.json", file=sys.stderr)
    return 0


def entry() -> None:
    """Console-script entry point."""
    cli.run(PROG, main)


if __name__ == "__main__":
    entry()
