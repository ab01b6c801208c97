"""Policies compared at one budget: accuracy before/after the same short fine-tune and from
scratch, MACs, params, and measured latency (batch 1 and 64) with the speed-up over the unpruned
model; plus one transfer row (the ResNet-20 actor applied to ResNet-56 vs uniform on ResNet-56).

The accuracy runs come from ``bench/device_session.sh policies`` and ``... transfer`` (amc-compare
and amc-apply; fine-tuning on the lent GPU when a session has one, else run the same commands with
``--device cpu``). This script gathers them and measures CPU latency here, round-robin over every
architecture, so the speed-ups are this machine's:

    python -m bench.bench_policies --checkpoint runs/base_resnet20.pt \
        --compare bench/results/device/compare_resnet20 \
        --transfer bench/results/device/transfer_resnet56/apply.json \
        --transfer-checkpoint runs/device/base_resnet56.pt

(``bench/results/device/`` keeps the JSON the device runs wrote; the checkpoints stay in runs/.)

Writes ``bench/results/policies_resnet20.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.training import TrainConfig
from amc_agent.policies.artifact import Policy
from amc_agent.policies.finetune import finetune, interleaved_latency, measure
from amc_agent.policies.heuristics import uniform
from bench.common import write_result


def pruned(model: nn.Module, data: Any, policy: Policy) -> nn.Module:
    """``model`` cut to ``policy``'s keep ratios (ratios mode; weights do not matter here)."""
    env = ChannelPruningEnv(model, data, EnvConfig(budget=policy.budget, round_to=policy.round_to,
                                                   strict_round=policy.strict_round,
                                                   lbound=policy.lbound, fill_budget=False,
                                                   val_size=1, recalibrate=False))
    env.play(policy.keep_ratios)
    return env.pruned_model()


def transfer_rows(apply_json: Path, checkpoint: Path, finetune_epochs: int, device: str
                  ) -> dict[str, Any]:
    """The actor-transfer result (amc-apply's summary) and uniform on the same ResNet-56,
    measured the same way: test accuracy after BN recalibration, then after ``finetune_epochs``."""
    actor = json.loads(apply_json.read_text())
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_checkpoint_data(ckpt, download=False)
    env = ChannelPruningEnv(model, data, EnvConfig(budget=0.5, round_to=1, fill_budget=False))
    info = env.play(uniform(env))
    net = env.pruned_model()
    before = measure(net, data, device, latency_batches=())
    after = before
    if finetune_epochs:
        finetune(net, data, TrainConfig(epochs=finetune_epochs, lr=0.01, seed=0), device,
                 progress=False)
        after = measure(net, data, device, latency_batches=())
    return {
        "model": "resnet56", "base_test_acc": ckpt["metrics"]["test_acc"],
        "base_epochs": ckpt["metrics"]["epochs"],
        "actor": {"mode": actor["mode"], "macs_kept": actor["macs_ratio"],
                  "params_kept": actor["params_ratio"],
                  "test_acc_before_finetune": actor["test_acc_pruned"],
                  "test_acc": actor.get("test_acc_finetuned")},
        "uniform": {"macs_kept": info["macs"] / info["original_macs"],
                    "params_kept": info["params"] / info["original_params"],
                    "val_acc_before_finetune": info["accuracy"],
                    "test_acc_before_finetune": before["test_acc"],
                    "test_acc": after["test_acc"], "finetune_epochs": finetune_epochs,
                    "finetune_device": device},
    }


def main() -> None:
    """Gather the accuracy runs, measure CPU latency, write the result file."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--compare", type=Path, required=True, help="amc-compare output folder")
    p.add_argument("--transfer", type=Path, help="amc-apply's summary (apply.json) of the actor "
                   "transfer to ResNet-56")
    p.add_argument("--transfer-checkpoint", type=Path, help="the ResNet-56 it pruned")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--transfer-finetune-epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads((args.compare / "results.json").read_text())
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).eval()
    data = load_checkpoint_data(ckpt, download=False)
    models: dict[str, nn.Module] = {"original": model}
    for name, row in results["strategies"].items():
        source = row.get("architecture_of", name)
        models[name] = pruned(model, data, Policy.load(args.compare / f"policy-{source}.json"))
    lat = interleaved_latency(models, data.spec.input_shape, "cpu", rounds=args.rounds)
    rows = []
    for name in models:
        row = results["original"] if name == "original" else results["strategies"][name]
        rows.append({
            "strategy": name,
            "val_acc_before_finetune": row.get("val_acc_before_finetune"),
            "test_acc_before_finetune": row.get("test_acc_before_finetune", row["test_acc"]),
            "test_acc": row["test_acc"], "macs": row["macs"],
            "macs_kept": row["macs"] / results["original"]["macs"], "params": row["params"],
            **{f"cpu_latency_{b}_ms": lat[name][b]["median_ms"] for b in ("b1", "b64")},
            **{f"cpu_speedup_{b}": lat["original"][b]["median_ms"] / lat[name][b]["median_ms"]
               for b in ("b1", "b64")},
            **{f"accel_speedup_{b}": results["original"]["latency"][b]["median_ms"]
               / row["latency"][b]["median_ms"] for b in ("b1", "b64")},
        })
        print(rows[-1])
    out = {"accuracy_runs": {"command": results.get("command"), "config": results["config"],
                             "device": results["original"]["latency"]["b1"].get("device")},
           "checkpoint": str(args.checkpoint), "base_test_acc": ckpt["metrics"]["test_acc"],
           "cpu_latency": lat, "rows": rows}
    if args.transfer is not None:
        out["transfer"] = transfer_rows(args.transfer, args.transfer_checkpoint,
                                        args.transfer_finetune_epochs, "cpu")
        print(out["transfer"])
    print(f"wrote {write_result('policies_' + ckpt['recipe']['name'], out)}")


if __name__ == "__main__":
    main()
