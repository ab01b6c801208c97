"""The policies comparison with error bars: ``amc-compare`` at one budget with every strategy on
the same budget (heuristics completed through the wall), the checkpoint's own validation split,
the searched winners re-scored on held-out images, and several fine-tune seeds per strategy.

    python -m bench.bench_compare --checkpoint runs/bench/cnn10.pt --budget 0.5 \
        --episodes 150 --finetune-seeds 3 --work runs/bench_compare/cnn10_b05 \
        [-- extra amc-compare flags, e.g. --agent-kwargs '{warmup_episodes: 50}']

Writes ``bench/results/compare_<model>_<target><budget>[_<criterion>][_<variant>][_<tag>].json``
(the criterion when it is not the default, ``+`` as ``-``; ``..._s<N>.json`` with
``--search-seed N``, N > 0): the config, every strategy's row
(accuracies per seed, mean, std, MACs, budget kept, latency) and the differences against the best
mean with whether each exceeds the seed spread (amc_agent.policies.stats). ``--search-seed N``
runs amc-compare with ``--seed N``: the searches start from seed N and the fine-tunes use seeds N,
N+1, ...; the validation split stays (``--split-seed``), so runs at several search seeds pool
into one comparison (bench.report).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from amc_agent.cli import compare
from amc_agent.env.checkpoint import load_checkpoint
from amc_agent.env.env import EnvConfig
from bench.common import write_result

KEEP = ("criterion", "val_acc_before_finetune", "val_acc_heldout", "heldout_images",
        "test_acc_before_finetune", "test_acc", "test_acc_std", "test_acc_seeds", "seeds",
        "macs", "params", "macs_kept", "cost_kept", "budget_ok", "latency", "diverged",
        "found_at_episode", "warmup_episodes", "seed_policy", "keep_ratios",
        "rescore_finetune_images", "same_network_as")


def main() -> None:
    """Run the comparison and write its figures."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--target", default="flops")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--strategies",
                   default="amc-ddpg,random,tpe,uniform,sensitivity,global,tp-uniform,tp-global")
    p.add_argument("--episodes", type=int, default=150)
    p.add_argument("--finetune-seeds", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--search-seed", type=int, default=0,
                   help="amc-compare --seed: the searches' seed (and the first fine-tune seed)")
    p.add_argument("--work", type=Path, required=True, help="amc-compare output folder")
    p.add_argument("--variant", default="",
                   help="a name for runs whose extra flags change a strategy (e.g. ftrescore "
                        "for --rescore-finetune): kept out of the ladder's pooled seeds")
    p.add_argument("--tag", default="",
                   help="a file-name suffix only (e.g. reselect, for `-- --resume` runs that "
                        "re-select finished searches); the rows pool with the others")
    p.add_argument("extra", nargs="*", help="further amc-compare flags (after --)")
    args = p.parse_args()
    argv = ["--checkpoint", str(args.checkpoint), "--target", args.target, "--budget",
            str(args.budget), "--strategies", args.strategies, "--episodes", str(args.episodes),
            "--finetune-seeds", str(args.finetune_seeds), "--finetune-epochs",
            str(args.finetune_epochs), "--seed", str(args.search_seed),
            "--wandb-mode", "disabled", "--no-progress",
            "--out", str(args.work), *args.extra]
    t0 = time.perf_counter()
    ran = not finished(args.work, argv)
    if ran:
        assert compare.main(resumed(argv, args.work)) == 0
    results = json.loads((args.work / "results.json").read_text())
    ckpt = load_checkpoint(args.checkpoint)
    name = result_name(ckpt["recipe"]["name"], args.target, args.budget,
                       results["config"]["criterion"], args.variant, args.tag, args.search_seed)
    out = write_result(name, {
        "seconds": time.perf_counter() - t0 if ran else None, "variant": args.variant or None,
        "checkpoint": str(args.checkpoint), "base_test_acc": ckpt["metrics"]["test_acc"],
        "base_epochs": ckpt["metrics"].get("epochs"), **summary(results)})
    print(f"wrote {out}")


def finished(work: Path, argv: list[str]) -> bool:
    """Whether ``work`` holds a finished comparison run with these ``amc-compare`` flags (then
    it is re-read, not run again). One run with other flags (other strategies, another
    ``--transfer``) is not this comparison: it is resumed instead, which keeps its finished
    searches and redoes the selection, fine-tunes and report with these flags."""
    results = work / "results.json"
    if not results.is_file():
        return False
    ran = shlex.split(json.loads(results.read_text()).get("command", ""))[1:]
    return [a for a in ran if a != "--resume"] == [a for a in argv if a != "--resume"]


def resumed(argv: list[str], work: Path) -> list[str]:
    """``argv`` with ``--resume`` when ``work`` holds an interrupted comparison: a benchmark
    queue restarted after a kill picks up its searches where they stopped instead of refusing
    the non-empty folder (amc-compare keeps every finished episode)."""
    if "--resume" in argv or not work.is_dir() or not any(work.iterdir()):
        return argv
    return [*argv, "--resume"]


def result_name(model: str, target: str, budget: float, criterion: str, variant: str = "",
                tag: str = "", search_seed: int = 0) -> str:
    """The results file's name (see the module docstring): a run with another criterion than
    the default is another ladder, so it never lands in the default criterion's file."""
    return f"compare_{model}_{target}{budget:g}" + (
        "" if criterion == EnvConfig.criterion else f"_{criterion.replace('+', '-')}") + (
        f"_{variant}" if variant else "") + (f"_{tag}" if tag else "") + (
        f"_s{search_seed}" if search_seed else "")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """What a benchmark keeps of an amc-compare ``results.json`` (bench.report renders it)."""
    return {"compare_command": results["command"], "config": results["config"],
            "original": {k: results["original"][k] for k in ("test_acc", "macs", "params",
                                                             "latency", "test_images")},
            "strategies": {n: {k: r.get(k) for k in KEEP}
                           for n, r in results["strategies"].items()},
            "differences": results["differences"]}


if __name__ == "__main__":
    main()
