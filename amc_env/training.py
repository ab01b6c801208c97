"""Training and evaluation loops, shared by ``amc-train``, fine-tuning and train-from-scratch.

Recipe: SGD with momentum and weight decay, cosine learning-rate schedule stepped per iteration,
cross-entropy loss. Optional Network Slimming sparsity (Liu et al., ICCV 2017): an L1 penalty
``slimming_lambda * |gamma|`` on every BatchNorm scale, applied as its subgradient as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 10
    """Passes over the training split."""
    batch_size: int = 128
    """Samples per SGD step."""
    lr: float = 0.1
    """Peak learning rate; decays to 0 along a cosine over all steps."""
    momentum: float = 0.9
    """SGD momentum (Nesterov)."""
    weight_decay: float = 5e-4
    """L2 penalty on all parameters."""
    slimming_lambda: float = 0.0
    """Network Slimming's L1 penalty on BN gammas (1e-4 in the paper); 0 turns it off."""
    workers: int = 0
    """DataLoader worker processes."""
    seed: int = 0
    """Seeds the per-epoch shuffling and augmentation (so a resumed run matches a fresh one)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-type view for checkpoints."""
        return asdict(self)


class Diverged(RuntimeError):
    """Training produced a non-finite loss (NaN or inf): the weights are no longer usable.

    Raised at the first such step, so no later result is computed from the broken weights;
    callers report it instead of recording a number."""

    def __init__(self, where: str, step: int, loss: float) -> None:
        super().__init__(f"training diverged ({where}, step {step}: loss {loss}); "
                         "try a lower learning rate")
        self.where, self.step, self.loss = where, step, loss


@dataclass
class EpochStats:
    """Mean loss and accuracy (fraction in [0, 1]) over one pass."""

    loss: float
    acc: float


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD + per-step cosine schedule over ``cfg.epochs`` epochs."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    return opt, sched


def add_slimming_subgradient(model: nn.Module, lam: float) -> None:
    """Add ``lam * sign(gamma)`` to each BN scale's gradient (Network Slimming's sparsity term)."""
    for m in model.modules():
        is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
        if is_bn and m.weight is not None and m.weight.grad is not None:
            m.weight.grad.add_(lam * torch.sign(m.weight.detach()))


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    device: torch.device | str,
    slimming_lambda: float = 0.0,
    desc: str = "train",
    progress: bool = True,
) -> EpochStats:
    """One pass over ``loader`` in train mode; returns mean loss and accuracy.

    Raises :class:`Diverged` at the first step whose loss is NaN or infinite."""
    model.train()
    total, correct, loss_sum = 0, 0, 0.0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    for step, (x, y) in enumerate(bar, 1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        loss = F.cross_entropy(out, y)
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(desc, step, value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if slimming_lambda:
            add_slimming_subgradient(model, slimming_lambda)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = y.numel()
        total += n
        loss_sum += value * n
        correct += (out.argmax(1) == y).sum().item()
        bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
    if total == 0:
        raise ValueError("training loader is empty")
    return EpochStats(loss_sum / total, correct / total)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str,
    max_batches: int | None = None,
) -> EpochStats:
    """Loss and top-1 accuracy in eval mode over ``loader`` (first ``max_batches`` if given)."""
    was_training = model.training
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    try:
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            total += y.numel()
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluation loader is empty")
    return EpochStats(loss_sum / total, correct / total)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    cfg: TrainConfig,
    device: torch.device | str,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    resume_state: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train for ``cfg.epochs`` epochs; returns one metrics dict per epoch run.

    ``eval_fn(model)`` adds evaluation metrics after each epoch. ``on_epoch_end(epoch, state)``
    receives the 1-based epoch and a resumable state (optimizer, scheduler, history) so callers can
    checkpoint; passing that state back as ``resume_state`` continues where it stopped.
    """
    model.to(device)
    opt, sched = make_optimizer(model, cfg, len(train_loader))
    start, history = 0, []
    if resume_state:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        start, history = resume_state["epoch"], list(resume_state["history"])
    for epoch in range(start, cfg.epochs):
        # Reseed per epoch so a resumed run shuffles and augments exactly like an uninterrupted one.
        epoch_seed = cfg.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed)
        gen = getattr(train_loader, "generator", None)
        if gen is not None:
            gen.manual_seed(epoch_seed)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch_seed)  # every rank shuffles alike
        stats = train_one_epoch(model, train_loader, opt, sched, device, cfg.slimming_lambda,
                                desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=progress)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": stats.loss,
                               "train_acc": stats.acc, "lr": opt.param_groups[0]["lr"],
                               # This process's share of the epoch (all of it outside torchrun).
                               "images": len(train_loader.sampler)}
        if eval_fn is not None:
            row.update(eval_fn(model))
        history.append(row)
        if progress:
            tqdm.write("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in row.items()))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, {"optimizer": opt.state_dict(),
                                     "scheduler": sched.state_dict(),
                                     "epoch": epoch + 1, "history": history})
    return history
