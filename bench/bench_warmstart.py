"""Warm start against a search from scratch: ``amc-search --init-actor`` (an actor trained on other
models, e.g. a budget-conditioned agent) and a plain amc-ddpg search on the same target model,
budget, seed and episode count. Both score episodes on the same validation images, so their
per-episode accuracies compare directly: the figure is how many episodes the warm-started search
needs to reach the from-scratch search's best, against the one third of the episodes the
"search once, apply many" target allows (issue: budget-conditioned agent across models).

    python -m bench.bench_warmstart --checkpoint runs/conditioned/resnet56.pt \
        --actor runs/conditioned/agent --budget 0.5 --episodes 300 \
        --work runs/conditioned/warm_resnet56_b0.5 [-- extra amc-search flags, e.g. --device cuda]

Writes ``bench/results/warmstart_<model>_<target><budget>[_s<seed>].json``: both searches'
best-so-far curves (search validation accuracy by episode), where each found its best, the
episodes the warm start needed to reach the scratch search's best (``None``: never), and each
winner's accuracy re-scored on held-out validation images. A search folder under ``--work`` that
already holds all its episodes is read, not re-run; an interrupted one is resumed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from amc_agent.cli import search
from amc_agent.env.checkpoint import load_checkpoint
from amc_agent.policies.artifact import Policy
from bench.common import write_result

RUNS = ("scratch", "warm")


def episodes(folder: Path) -> list[dict[str, Any]]:
    """The finished episodes of a search folder, in order (empty if none)."""
    path = folder / "episodes.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def best_so_far(rows: list[dict[str, Any]]) -> list[float | None]:
    """Per episode, the best search accuracy of the episodes so far that met the budget."""
    out: list[float | None] = []
    best: float | None = None
    for r in rows:
        if r["meets_budget"] and (best is None or r["accuracy"] > best):
            best = r["accuracy"]
        out.append(best)
    return out


def episodes_to_reach(curve: list[float | None], target: float) -> int | None:
    """How many episodes a best-so-far curve needs to reach ``target`` (``None``: never)."""
    return next((i + 1 for i, b in enumerate(curve) if b is not None and b >= target), None)


def run_search(folder: Path, argv: list[str], n: int) -> None:
    """Run (or resume) one search unless its folder already holds ``n`` episodes."""
    if len(episodes(folder)) >= n:
        return
    resume = ["--resume"] if (folder / "config.yaml").is_file() else []
    assert search.main([*argv, "--out", str(folder), *resume]) == 0


def summary(scratch: list[dict[str, Any]], warm: list[dict[str, Any]],
            policies: dict[str, Policy]) -> dict[str, Any]:
    """The warm-start figures from both searches' episodes and declared policies."""
    curves = {"scratch": best_so_far(scratch), "warm": best_so_far(warm)}
    n = len(scratch)
    target = curves["scratch"][-1]
    third = max(1, n // 3)
    out: dict[str, Any] = {"episodes": n, "scratch_best": target, "third": third}
    for name, rows in (("scratch", scratch), ("warm", warm)):
        curve = curves[name]
        m = policies[name].metrics
        out[name] = {
            "best": curve[-1],
            "found_at": episodes_to_reach(curve, curve[-1]) if curve[-1] is not None else None,
            "best_at_third": curve[third - 1],
            "first_episode_acc": rows[0]["accuracy"],
            "heldout_acc": m.get("rescored_val_accuracy"),
            "heldout_images": m.get("rescore_images"),
            "curve": curve,
        }
    reach = episodes_to_reach(curves["warm"], target) if target is not None else None
    out["warm_episodes_to_scratch_best"] = reach
    out["meets_third"] = reach is not None and reach <= third
    return out


def main() -> None:
    """Run both searches and record the comparison."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="the target model")
    p.add_argument("--actor", type=Path, required=True,
                   help="policy.json (or its folder) whose actor starts the warm search")
    p.add_argument("--target", default="flops")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--scratch", type=Path, default=None,
                   help="a finished from-scratch amc-ddpg search to reuse (e.g. an amc-compare "
                        "run's search-amc-ddpg folder at the same budget, seed and episodes); "
                        "default: run one in WORK/scratch")
    p.add_argument("extra", nargs="*", help="further amc-search flags (after --)")
    args = p.parse_args()
    common = ["--checkpoint", str(args.checkpoint), "--target", args.target, "--budget",
              str(args.budget), "--episodes", str(args.episodes), "--seed", str(args.seed),
              "--agent", "amc-ddpg", "--wandb-mode", "disabled", "--no-progress", *args.extra]
    folders = {"scratch": args.scratch or args.work / "scratch", "warm": args.work / "warm"}
    if args.scratch is not None and len(episodes(args.scratch)) < args.episodes:
        print(f"bench_warmstart: error: --scratch {args.scratch} holds fewer than "
              f"{args.episodes} episodes", file=sys.stderr)
        sys.exit(2)
    run_search(folders["scratch"], common, args.episodes)
    run_search(folders["warm"], [*common, "--init-actor", str(args.actor)], args.episodes)
    rows = {name: episodes(folders[name])[:args.episodes] for name in RUNS}
    policies = {name: Policy.load(folders[name] / "policy.json") for name in RUNS}
    source = Policy.load(args.actor / "policy.json" if args.actor.is_dir() else args.actor)
    actor_dir = args.actor if args.actor.is_dir() else args.actor.parent
    trained_on = (yaml.safe_load((actor_dir / "config.yaml").read_text()) or {}).get(
        "checkpoint") if (actor_dir / "config.yaml").is_file() else None
    ckpt = load_checkpoint(args.checkpoint)
    name = (f"warmstart_{ckpt['recipe']['name']}_{args.target}{args.budget:g}"
            + (f"_s{args.seed}" if args.seed else ""))
    out = write_result(name, {
        "checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
        "base_test_acc": ckpt["metrics"]["test_acc"], "actor": str(args.actor),
        "actor_trained_on": trained_on or source.model.get("name"),
        "actor_budget_range": source.budget_range, "target": args.target,
        "budget": args.budget, "seed": args.seed,
        "search_commands": {n: f"amc-search {' '.join(common)} --out {folders[n]}"
                            + (f" --init-actor {args.actor}" if n == "warm" else "")
                            for n in RUNS},
        "scratch_reused": str(args.scratch) if args.scratch else None,
        **summary(rows["scratch"], rows["warm"], policies)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
