"""Measured speed-up of pruned models against their MACs reduction, batch 1 and 64.

    python -m bench.bench_latency --checkpoint runs/base_resnet20.pt --round-to 1 \
        --policy runs/bench_search/amc-ddpg_s0/policy.json            # CPU (this machine)
    python -m bench.bench_latency ... --device cuda                  # a GPU session
    python -m bench.bench_latency ... --backend onnxruntime          # as a CPU deployment runs it

Models: the unpruned checkpoint, uniform keep ratios meeting each ``--budgets`` MACs fraction,
and the given policies (their keep ratios, same architecture). Latency is measured round-robin
over all models (amc_agent.env.latency: torch.utils.benchmark on CPU, CUDA events on GPU;
``--backend`` eager, onnxruntime or cudagraph), so machine load hits every model alike. Writes
``bench/results/latency_<model>_<device>[_<backend>].json`` (no suffix for the device's default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.cost import count_macs, count_params
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.latency import default_backend
from amc_agent.policies.artifact import Policy
from amc_agent.policies.finetune import interleaved_latency
from amc_agent.policies.heuristics import uniform
from bench.common import write_result


def main() -> None:
    """Build the pruned models, measure them interleaved, write the result file."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--budgets", default="0.75,0.5,0.25")
    p.add_argument("--policy", type=Path, action="append", default=[])
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per CPU measurement")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", default=None, help="eager, onnxruntime, cudagraph")
    args = p.parse_args()
    backend = args.backend or default_backend(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).eval()
    data = load_checkpoint_data(ckpt, download=False)
    shape = data.spec.input_shape
    models: dict[str, nn.Module] = {"original": model}
    for b in (float(v) for v in args.budgets.split(",")):
        env = ChannelPruningEnv(model, data, EnvConfig(budget=b, round_to=args.round_to,
                                                       fill_budget=False, val_size=1,
                                                       recalibrate=False))
        env.play(uniform(env))
        models[f"uniform@{b}"] = env.pruned_model()
    for path in args.policy:
        pol = Policy.load(path)
        env = ChannelPruningEnv(model, data, EnvConfig(budget=pol.budget, round_to=pol.round_to,
                                                       strict_round=pol.strict_round,
                                                       lbound=pol.lbound, fill_budget=False,
                                                       val_size=1, recalibrate=False))
        env.play(pol.keep_ratios)
        models[f"{pol.agent.get('name', path.parent.name)}@{pol.budget}"] = env.pruned_model()
    models = {n: m.to(args.device).eval() for n, m in models.items()}
    lat = interleaved_latency(models, shape, args.device, rounds=args.rounds,
                              min_time_s=args.min_time, backend=backend)
    base_macs = count_macs(model, shape)
    rows = []
    for name, m in models.items():
        macs = count_macs(m.cpu(), shape)
        m.to(args.device)
        row = {"model": name, "macs": macs, "macs_kept": macs / base_macs,
               "params": count_params(m)}
        for b in ("b1", "b64"):
            row[f"latency_{b}_ms"] = lat[name][b]["median_ms"]
            row[f"speedup_{b}"] = lat["original"][b]["median_ms"] / lat[name][b]["median_ms"]
        row["macs_speedup"] = 1.0 / row["macs_kept"]
        rows.append(row)
        print(row)
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    result = {"checkpoint": str(args.checkpoint), "model": ckpt["recipe"]["name"],
              "dataset": ckpt["dataset"], "device": args.device,
              "device_name": torch.cuda.get_device_name(0) if device == "cuda" else None,
              "rounds": args.rounds, "backend": backend, "latency_detail": lat, "rows": rows}
    name = f"latency_{result['model']}_{device}"
    if backend != default_backend(args.device):
        name += f"_{backend}"
    print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
