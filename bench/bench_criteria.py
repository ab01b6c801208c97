"""Channel-selection criteria at one policy: validation accuracy before any fine-tuning and
time per episode, for the same uniform keep ratios (the largest one meeting the budget).

    python -m bench.bench_criteria --checkpoint runs/base_resnet20.pt --budget 0.5 --round-to 1

Each criterion runs ``--repeats`` episodes on the same environment settings (1000 validation
images, BN recalibration on 512 training images); the reconstruction-based ones sample
``--calib-images`` x ``--calib-points`` rows per consumer layer. Writes
``bench/results/criteria_<model>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from amc_env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_env.datasets import load_checkpoint_data
from amc_env.env import ChannelPruningEnv, EnvConfig
from bench.common import write_result
from policies.heuristics import uniform

CRITERIA = ("l1", "l1+reconstruct", "thinet", "lasso")


def main() -> None:
    """Measure every criterion and write the result file."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--criteria", default=",".join(CRITERIA))
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--val-size", type=int, default=EnvConfig.val_size)
    p.add_argument("--calib-images", type=int, default=EnvConfig.calib_images)
    p.add_argument("--calib-points", type=int, default=EnvConfig.calib_points)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    base = EnvConfig(budget=args.budget, round_to=args.round_to, val_size=args.val_size,
                     calib_images=args.calib_images, calib_points=args.calib_points,
                     fill_budget=False)
    rows = []
    ratios: dict[str, float] = {}
    for name in args.criteria.split(","):
        t0 = time.perf_counter()
        env = ChannelPruningEnv(model, data, base, criterion=name)
        setup = time.perf_counter() - t0
        ratios = ratios or uniform(env)
        times, infos = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            infos.append(env.play(ratios))
            times.append(time.perf_counter() - t0)
        info = infos[-1]
        rows.append({
            "criterion": name, "val_acc": info["accuracy"],
            "val_acc_repeats": [i["accuracy"] for i in infos],
            "macs_kept": info["macs"] / info["original_macs"],
            "episode_s": statistics.median(times), "setup_s": setup,
            "criterion_s": statistics.median(i["timings"]["criterion"] for i in infos),
        })
        print(rows[-1])
    result = {"checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
              "dataset": ckpt["dataset"], "budget": args.budget, "round_to": args.round_to,
              "val_size": args.val_size, "calib_images": args.calib_images,
              "calib_points": args.calib_points, "keep_ratios": ratios,
              "original_val_acc": ckpt["metrics"].get("val_acc"), "rows": rows}
    name = "criteria_" + result["model"]
    print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
