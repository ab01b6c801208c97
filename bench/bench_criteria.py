"""Channel-selection criteria at fixed per-unit channel counts: validation accuracy before any
fine-tuning and time per episode, every criterion keeping the same number of channels in every
unit, so only *which* channels differ.

    python -m bench.bench_criteria --checkpoint runs/base_resnet20.pt --budget 0.5 --round-to 1

Two count sets by default, both fixed before any criterion runs: ``uniform`` (the largest single
keep ratio meeting the budget, completed through the wall) and ``tp-global`` (the widths
Torch-Pruning's global pruner chooses with its default importance; amc_agent.policies.peers). Each
criterion runs ``--repeats`` episodes per count set on the same environment settings (1000
validation images scored, BN recalibration on 512 training images), and the last episode's model is
also scored on ``--heldout`` further validation images, which halves the binomial error of the
comparison. The reconstruction-based criteria sample ``--calib-images`` x ``--calib-points`` rows
per consumer layer; ``random`` is the floor every criterion should clear. Writes
``bench/results/criteria_<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.evaluation import accuracy
from amc_agent.policies.heuristics import heuristic_policy
from amc_agent.policies.peers import PEER_CRITERION
from bench.common import RESULTS, command_line, write_result

CRITERIA = ("random", "l1", "l2", "consumer-l1", "group-l1", "group-l2", "taylor", "snip",
            "slimming", "l1+reconstruct", "consumer-l1+reconstruct", "group-l2+reconstruct",
            "thinet", "lasso")
COUNT_SETS = ("uniform", "tp-global")


def main() -> None:
    """Measure every criterion at every count set and write the result file."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--criteria", default=",".join(CRITERIA))
    p.add_argument("--counts", default=",".join(COUNT_SETS),
                   help="count sets: heuristic strategy names (uniform, tp-global, ...)")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--val-size", type=int, default=EnvConfig.val_size)
    p.add_argument("--heldout", type=int, default=4000,
                   help="further validation images scored once per criterion and count set")
    p.add_argument("--calib-images", type=int, default=EnvConfig.calib_images)
    p.add_argument("--calib-points", type=int, default=EnvConfig.calib_points)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--update", action="store_true",
                   help="rerun only --criteria and keep the other rows of the existing result "
                        "(same checkpoint and settings; the rerun is listed in the result)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    base = EnvConfig(budget=args.budget, round_to=args.round_to, val_size=args.val_size,
                     calib_images=args.calib_images, calib_points=args.calib_points,
                     fill_budget=False, cache=False)  # time real episodes
    # The counts come first, from an env whose criterion is Torch-Pruning's importance (what
    # tp-global plays with); uniform's counts do not depend on the criterion.
    counts_env = ChannelPruningEnv(model, data, base, criterion=PEER_CRITERION)
    count_sets = {name: heuristic_policy(name, counts_env) for name in args.counts.split(",")}
    heldout = counts_env.heldout_batches(args.heldout)
    rows = []
    for name in args.criteria.split(","):
        t0 = time.perf_counter()
        env = ChannelPruningEnv(model, data, base, criterion=name)
        setup = time.perf_counter() - t0
        for counts, ratios in count_sets.items():
            times, infos = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                infos.append(env.play(ratios))
                times.append(time.perf_counter() - t0)
            info = infos[-1]
            rows.append({
                "criterion": name, "counts": counts, "val_acc": info["accuracy"],
                "val_acc_repeats": [i["accuracy"] for i in infos],
                "val_acc_heldout": accuracy(env.pruned_model(), heldout),
                "macs_kept": info["macs"] / info["original_macs"],
                "episode_s": statistics.median(times), "setup_s": setup,
                "criterion_s": statistics.median(i["timings"]["criterion"] for i in infos),
            })
            print(rows[-1], flush=True)
    result = {"checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
              "dataset": ckpt["dataset"], "budget": args.budget, "round_to": args.round_to,
              "val_size": args.val_size, "heldout_images": sum(len(y) for _, y in heldout),
              "calib_images": args.calib_images, "calib_points": args.calib_points,
              "count_sets": count_sets, "original_val_acc": ckpt["metrics"].get("val_acc"),
              "rows": rows}
    name = "criteria_" + result["model"]
    if args.update:
        result = _merged(RESULTS / f"{name}.json", result, args.criteria.split(","))
    print(f"wrote {write_result(name, result)}")


SETTINGS = ("checkpoint", "budget", "round_to", "val_size", "heldout_images", "calib_images",
            "calib_points", "count_sets")


def _merged(path: Path, new: dict[str, Any], rerun: list[str]) -> dict[str, Any]:
    """``new``'s rows merged into the result at ``path`` (rows of ``rerun`` replaced, the rest
    kept, in registry order); the settings must match, or the rows would not compare."""
    if not path.is_file():
        raise SystemExit(f"--update: no earlier result at {path}")
    prev = json.loads(path.read_text())
    differ = [k for k in SETTINGS if prev.get(k) != new[k]]
    if differ:
        raise SystemExit(f"--update: settings differ from {path} ({', '.join(differ)}); "
                         "rerun every criterion instead")
    order = list(CRITERIA)
    rows = [r for r in prev["rows"] if r["criterion"] not in rerun] + new["rows"]
    rows.sort(key=lambda r: order.index(r["criterion"]) if r["criterion"] in order else 99)
    update = {"command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "criteria": rerun}
    return {**new, "rows": rows, "first_command": prev.get("first_command", prev["command"]),
            "first_date": prev.get("first_date", prev["date"]),
            "first_machine": prev.get("first_machine", prev["machine"]),
            "updates": [*prev.get("updates", []), update]}


if __name__ == "__main__":
    main()
