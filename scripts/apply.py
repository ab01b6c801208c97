"""``amc-apply``: prune a model with a policy (same or new architecture), optionally fine-tune or
train the pruned architecture from scratch, and export a checkpoint."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from amc_agent.cli import cli
from amc_agent.env import atomic, distributed
from amc_agent.env.checkpoint import save_checkpoint
from amc_agent.env.errors import UserError
from amc_agent.env.export import OPSET, check_onnx, onnx_bytes
from amc_agent.env.latency import BACKENDS, check_backend
from amc_agent.env.training import TrainConfig
from amc_agent.policies.apply import MODES, apply_policy
from amc_agent.policies.artifact import Policy
from amc_agent.policies.finetune import (
    finetune,
    interleaved_latency,
    measure,
    round_ratios,
    scratch_model,
)

PROG = "amc-apply"
LATENCY_BATCHES = (1, 64)


def build_parser() -> cli.Parser:
    """Flags of ``amc-apply``."""
    p = cli.make_parser(PROG, "Apply a pruning policy to a model and export the pruned model.")
    p.add_argument("--policy", type=Path, help="policy.json from amc-search or amc-compare")
    cli.add_model_source(p)
    p.set_defaults(dataset=None)
    p.add_argument("--budget", type=float, default=None,
                   help="re-derive ratios for this budget with the policy's actor")
    p.add_argument("--finetune-epochs", type=int, default=0)
    p.add_argument("--finetune-lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--scratch-epochs", type=int, default=0,
                   help="also train the pruned architecture from scratch for this many epochs")
    p.add_argument("--eval-size", type=int, default=1000,
                   help="validation images for the pre-fine-tune accuracy")
    p.add_argument("--latency-time", type=float, default=0.5,
                   help="seconds each latency measurement runs for at least")
    p.add_argument("--latency-rounds", type=int, default=3,
                   help="round-robin rounds of original and pruned model per batch size; the "
                        "speed-up is the median of the per-round ratios")
    p.add_argument("--latency-backend", default=None,
                   help=f"{', '.join(BACKENDS)} (default: cudagraph on CUDA, eager on CPU)")
    p.add_argument("--onnx", type=Path, default=None,
                   help="also write the pruned (fine-tuned) model as ONNX, checked in "
                        "onnxruntime against PyTorch's outputs first")
    p.add_argument("--out", type=Path, help="pruned checkpoint to write, e.g. runs/pruned.pt")
    p.add_argument("--no-progress", action="store_true")
    return p


def _check(args: Any) -> None:
    if args.policy is None or args.out is None:
        raise UserError("--policy and --out are required")
    if args.finetune_epochs < 0 or args.scratch_epochs < 0:
        raise UserError("--finetune-epochs and --scratch-epochs must be non-negative")
    if args.latency_rounds < 1 or args.latency_time <= 0:
        raise UserError("--latency-rounds must be >= 1 and --latency-time > 0")
    if args.budget is not None and not 0 < args.budget <= 1:
        raise UserError(f"--budget must be a fraction in (0, 1], got {args.budget}")
    cli.check_output(args.out, folder=False)
    if args.onnx is not None:
        cli.check_output(args.onnx, folder=False, flag="--onnx")
    if args.latency_backend is not None:
        check_backend(args.latency_backend, args.device)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = cli.parse(build_parser(), argv)
    _check(args)
    policy = Policy.load(args.policy)
    cli.apply_runtime(args)
    # Under torchrun every process prunes alike and trains its share; rank 0 measures and writes.
    args.device = distributed.setup(args.device)
    try:
        return _run(args, policy)
    finally:
        distributed.teardown()


def _run(args: Any, policy: Policy) -> int:
    """Prune, measure, train and write (measuring and writing on rank 0 only)."""
    main_rank = distributed.is_main()
    source = cli.source_checkpoint(args)
    data = cli.load_data(args, source, fallback=policy.dataset)
    model, recipe, ckpt = cli.resolve_model(args, data.spec.in_channels, data.spec.num_classes,
                                            source, input_shape=data.spec.input_shape)
    model.to(args.device)
    applied = apply_policy(policy, args.policy.parent, model, data, args.budget, args.device,
                           val_size=args.eval_size)
    pruned = applied.model
    progress = not args.no_progress
    # Measured before the fine-tune changes the pruned model in place; accuracy and cost alone,
    # latency below, original and pruned round-robin so load on a shared machine hits both alike.
    original = measure(model, data, args.device, latency_batches=()) if main_rank else {}
    before = measure(pruned, data, args.device, latency_batches=()) if main_rank else {}
    lat = interleaved_latency({"original": model, "pruned": pruned}, data.spec.input_shape,
                              args.device, batch_sizes=LATENCY_BATCHES, rounds=args.latency_rounds,
                              min_time_s=args.latency_time, backend=args.latency_backend) \
        if main_rank else {}
    history, scratch = None, None
    if args.finetune_epochs:
        cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr,
                          batch_size=args.batch_size, seed=args.seed)
        history = finetune(pruned, data, cfg, args.device, progress)
    if args.scratch_epochs:
        scratch = scratch_model(recipe, applied.record, args.seed).to(args.device)
        base_cfg = TrainConfig(epochs=args.scratch_epochs, batch_size=args.batch_size,
                               seed=args.seed)
        finetune(scratch, data, base_cfg, args.device, progress)
    if not main_rank:
        return 0
    original["latency"], before["latency"] = lat["original"], lat["pruned"]
    metrics: dict[str, Any] = {
        "mode": applied.mode, "policy": str(args.policy), "keep_ratios": applied.keep_ratios,
        "val_acc_before_finetune": applied.info["accuracy"], "original": original,
        "before_finetune": before,
        # The median of per-round ratios: each round timed both models back to back.
        **{f"speedup_b{b}": statistics.median(round_ratios(lat, "original", "pruned", b))
           for b in LATENCY_BATCHES},
    }
    # Fine-tuned and scratch models share the pruned architecture, hence its latency.
    if history is not None:
        metrics["finetune_history"] = history
        metrics["after_finetune"] = {**measure(pruned, data, args.device, latency_batches=()),
                                     "latency": before["latency"]}
    if scratch is not None:
        metrics["scratch"] = {**measure(scratch, data, args.device, latency_batches=()),
                              "latency": before["latency"]}
    onnx = None
    if args.onnx is not None:  # checked before anything is written
        onnx = onnx_bytes(pruned, data.spec.input_shape)
        metrics["onnx"] = {"path": str(args.onnx), "opset": OPSET, "bytes": len(onnx),
                           "max_relative_difference": check_onnx(onnx, pruned,
                                                                 data.spec.input_shape)}
    save_checkpoint(args.out, pruned, recipe, data.spec.name, metrics, pruning=applied.record,
                    split=data.split, input_shape=data.spec.input_shape)
    if onnx is not None:
        atomic.write_bytes(args.onnx, onnx)
    summary = {"out": str(args.out), "mode": applied.mode, "what": MODES[applied.mode],
               "macs_ratio": before["macs"] / original["macs"],
               "params_ratio": before["params"] / original["params"],
               "test_acc_original": original["test_acc"], "test_acc_pruned": before["test_acc"],
               "speedup_b1": round(metrics["speedup_b1"], 3),
               "speedup_b64": round(metrics["speedup_b64"], 3),
               "latency_threads": torch.get_num_threads()}
    if "after_finetune" in metrics:
        summary["test_acc_finetuned"] = metrics["after_finetune"]["test_acc"]
    if "scratch" in metrics:
        summary["test_acc_scratch"] = metrics["scratch"]["test_acc"]
    if ckpt is not None:
        summary["checkpoint"] = str(args.checkpoint)
    if onnx is not None:
        summary["onnx"] = str(args.onnx)
    print(json.dumps(summary))
    return 0


def entry() -> None:
    """Console-script entry point."""
    cli.run(PROG, main)


if __name__ == "__main__":
    entry()
