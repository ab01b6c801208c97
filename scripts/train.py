"""``amc-train``: train a model on a dataset and write a checkpoint (DESIGN.md section 5)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from amc_agent.cli import cli
from amc_agent.env.checkpoint import (
    checkpoint_dict,
    load_checkpoint,
    save_checkpoint,
    verify_rebuild,
)
from amc_agent.env.cost import measure_cost
from amc_agent.env.datasets import make_loader
from amc_agent.env.errors import UserError
from amc_agent.env.latency import measure_latency
from amc_agent.env.training import TrainConfig, evaluate, fit

PROG = "amc-train"


def build_parser() -> cli.Parser:
    """Flags of ``amc-train``."""
    p = cli.make_parser(PROG, "Train a CNN (SGD + momentum + cosine) and write a checkpoint.")
    cli.add_model_source(p)
    d = TrainConfig()
    p.add_argument("--out", type=Path, help="checkpoint to write, e.g. runs/base.pt")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (cosine decay)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--slimming-lambda", type=float, default=d.slimming_lambda,
                   help="Network Slimming L1 penalty on BN gammas (e.g. 1e-4); 0 = off")
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader workers")
    p.add_argument("--resume", action="store_true", help="continue training --out where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _check(args: Any) -> None:
    if args.out is None:
        raise UserError("--out is required (the checkpoint to write)")
    cli.check_output(args.out, folder=False)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.lr <= 0:
        raise UserError("--lr must be positive")
    if args.slimming_lambda < 0 or args.weight_decay < 0:
        raise UserError("--slimming-lambda and --weight-decay must be non-negative")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = cli.parse(build_parser(), argv)
    _check(args)
    cli.apply_runtime(args)
    source = cli.source_checkpoint(args)
    resume_state = None
    if args.resume and args.out.exists():
        prev = load_checkpoint(args.out)
        resume_state = prev.get("train_state")
        if resume_state is None:
            raise UserError(f"{args.out} holds no training state to resume")
        args.checkpoint, args.model, source = args.out, None, prev
    data = cli.load_data(args, source)  # a checkpoint (or the run resumed) keeps its split
    spec = data.spec
    model, recipe, _ = cli.resolve_model(args, spec.in_channels, spec.num_classes, source,
                                         input_shape=spec.input_shape)
    # A model its recipe cannot rebuild is refused now, not after the first epoch's save.
    try:
        verify_rebuild(checkpoint_dict(model, recipe, spec.name), model, spec.input_shape)
    except UserError as exc:
        raise UserError(f"cannot train {recipe['name']!r}: {exc}") from None
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      momentum=args.momentum, weight_decay=args.weight_decay,
                      slimming_lambda=args.slimming_lambda, workers=args.workers, seed=args.seed)
    if resume_state is not None and resume_state["epoch"] >= cfg.epochs:
        print(f"{args.out} already finished {resume_state['epoch']} epochs; nothing to do")
        return 0
    progress = not args.no_progress
    train_loader = make_loader(data.train, cfg.batch_size, shuffle=True, seed=args.seed,
                               workers=cfg.workers)
    val_loader = make_loader(data.val, 512)
    test_loader = make_loader(data.test, 512)
    device = torch.device(args.device)
    epoch_times: list[float] = list(resume_state.get("epoch_times", [])) if resume_state else []
    t0 = [time.perf_counter()]
    last_state: dict[str, Any] = dict(resume_state or {})

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        epoch_times.append(time.perf_counter() - t0[0])
        out = {"val_acc": evaluate(m, val_loader, device).acc} if len(data.val) else {}
        return out

    def checkpoint(epoch: int, state: dict[str, Any]) -> None:
        state["epoch_times"] = epoch_times
        last_state.update(state)
        save_checkpoint(args.out, model, recipe, spec.name, {"epochs_done": epoch},
                        train_state=state, split=data.split, input_shape=spec.input_shape)
        t0[0] = time.perf_counter()

    history = fit(model, train_loader, cfg, device, eval_fn=eval_fn, on_epoch_end=checkpoint,
                  resume_state=resume_state, progress=progress)
    test = evaluate(model, test_loader, device)
    cost = measure_cost(model, spec.input_shape)
    lat = measure_latency(model, spec.input_shape, batch_size=1, device=args.device)
    metrics = {
        "test_acc": test.acc, "test_loss": test.loss,
        "val_acc": history[-1].get("val_acc") if history else None,
        "macs": cost.macs, "params": cost.params, "latency": lat.to_dict(),
        "epochs": cfg.epochs, "seconds_per_epoch": sum(epoch_times) / max(1, len(epoch_times)),
        "train_config": cfg.to_dict(), "history": history,
    }
    save_checkpoint(args.out, model, recipe, spec.name, metrics, train_state=last_state,
                    split=data.split, input_shape=spec.input_shape)
    summary = {k: metrics[k] for k in ("test_acc", "val_acc", "macs", "params", "epochs",
                                       "seconds_per_epoch")}
    summary["latency_ms_b1"] = round(lat.median_ms, 4)
    summary["latency_threads"] = lat.threads
    print(json.dumps({"checkpoint": str(args.out), **summary}))
    return 0


def entry() -> None:
    """Console-script entry point."""
    cli.run(PROG, main)


if __name__ == "__main__":
    entry()
