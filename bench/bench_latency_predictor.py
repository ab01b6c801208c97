"""Latency predictors against measurement: how far off is what the action wall believes?

    python -m bench.bench_latency_predictor --checkpoint runs/s5/resnet20_e3.pt \
        --batch 1 --backend eager --policies 50

For ``--policies`` random policies at ``--budget`` (MACs, the random strategy through the wall),
each pruned model is measured with the original round-robin (``--rounds`` passes; ``--backend``,
``--batch``, the torch thread count; on these shared machines single timings of the same model
differ by up to 2x), and its latency *ratio* to the original is compared with the
ratio each predictor gives: the per-layer latency table (amc_agent.env.latency_table, built or
loaded from its cache) and the line a + b x MACs (amc_agent.env.latency_model). Ratios, not
milliseconds, so drift in machine load between the predictor's calibration and the measurement
cancels as it does in a search (budgets are ratios). Writes
``bench/results/latency_predictor_<model>_<backend>_b<batch>[_cuda].json`` with the median and
90th-percentile absolute relative error of each predictor, and of a second, independent
measurement of the same pair (``repeat``): the noise floor, under which no predictor's error can
be shown to fall.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.env import LATENCY_REFIT, LATENCY_REFIT_WINDOW, ChannelPruningEnv, EnvConfig
from amc_agent.env.latency_model import calibrate_latency
from amc_agent.env.latency_table import build_latency_table, device_name, online_predictions
from amc_agent.policies.finetune import interleaved_latency
from amc_agent.policies.heuristics import random_policy
from bench.common import write_result


def main() -> None:
    """Build both predictors, measure random policies, write the errors."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--backend", default="eager")
    p.add_argument("--policies", type=int, default=50)
    p.add_argument("--budget", type=float, default=0.5, help="MACs budget of the policies")
    p.add_argument("--round-to", type=int, default=8)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the models are timed")
    p.add_argument("--tag", default="", help="appended to the result's name")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).eval()
    data = load_checkpoint_data(ckpt, download=False)
    env = ChannelPruningEnv(model, data, EnvConfig(budget=args.budget, round_to=args.round_to,
                                                   val_size=1, recalibrate=False,
                                                   device=args.device))
    shape = data.spec.input_shape
    t0 = time.perf_counter()
    table = build_latency_table(model, env.units, env.example, env.wall.options, args.device,
                                args.batch, args.backend, progress=True)
    table_s = time.perf_counter() - t0
    line = calibrate_latency(model, env.units, env.cost, env.example, args.device, args.batch,
                             min_time_s=args.min_time, backend=args.backend)
    rows = []
    for seed in range(args.policies):
        ratios = random_policy(env, seed=seed)
        env.play(ratios)
        kept = [round(ratios[u.name] * u.channels) for u in env.units]
        measured = []
        for _ in range(2):  # the second, independent measurement is the noise floor
            lat = interleaved_latency({"original": model, "pruned": env.pruned_model()}, shape,
                                      args.device, batch_sizes=(args.batch,),
                                      rounds=args.rounds, min_time_s=args.min_time,
                                      backend=args.backend)
            b = f"b{args.batch}"
            measured.append(lat["pruned"][b]["median_ms"] / lat["original"][b]["median_ms"])
        t = float(table.predict_rows(np.array([kept]))[0]) / table.original_ms
        ln = float(line.predict(env.cost.macs(kept))) / line.original_ms
        rows.append({"seed": seed, "macs_kept": env.cost.macs(kept) / env.cost.original["flops"],
                     "kept": kept, "measured_ratio": measured[0], "table_ratio": t,
                     "line_ratio": ln, "repeat_ratio": measured[1]})
        print(rows[-1], flush=True)
    refit = online_predictions(table, np.array([r["kept"] for r in rows]),
                               np.array([r["measured_ratio"] for r in rows]) * table.original_ms,
                               LATENCY_REFIT, LATENCY_REFIT_WINDOW) / table.original_ms
    for r, ratio in zip(rows, refit, strict=True):
        r["refit_ratio"] = float(ratio)
    stats = {}
    for kind, counted in (("table", rows), ("line", rows), ("repeat", rows),
                          ("refit", rows[LATENCY_REFIT:])):
        if not counted:
            continue
        err = np.array([abs(r[f"{kind}_ratio"] - r["measured_ratio"]) / r["measured_ratio"]
                        for r in counted])
        stats[kind] = {"median_abs_error": float(np.median(err)),
                       "p90_abs_error": float(np.quantile(err, 0.9)),
                       "max_abs_error": float(err.max()), "policies": len(counted)}
    print(stats)
    dev = torch.device(args.device).type
    name = (f"latency_predictor_{ckpt['recipe']['name']}_{args.backend}_b{args.batch}"
            + ("" if dev == "cpu" else f"_{dev}") + args.tag)
    result = {"checkpoint": str(args.checkpoint), "batch": args.batch, "backend": args.backend,
              "device_name": device_name(args.device),
              "budget": args.budget, "round_to": args.round_to, "rounds": args.rounds,
              "refit_from": LATENCY_REFIT, "refit_window": LATENCY_REFIT_WINDOW,
              "policies": rows,
              "errors": stats, "table_build_s": table_s, "table_scale": table.scale,
              "table_element_ms": table.element_ms, "table_mac_ms": table.mac_ms,
              "table_layers": len(table.specs)}
    print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
