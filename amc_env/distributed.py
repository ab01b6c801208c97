"""Fine-tuning under ``torchrun``: DistributedDataParallel with a distributed sampler.

``torchrun --nproc-per-node N -m amc_agent.cli.apply ...`` (or ``amc_agent.cli.compare``) starts
N copies of the command; under ``amc-compare`` rank 0 runs the searches and heuristics and
broadcasts their keep ratios. Each process prunes the same model the same way (and DDP starts
every copy from rank 0's weights), trains on its share of every epoch's shuffled training split
(``DistributedSampler``, re-shuffled per epoch) with gradients averaged across processes, and only
rank 0 measures and writes. The per-process batch is the total batch divided
by N, so the steps per epoch, the learning-rate schedule and the effective batch are those of one
process with the same ``--batch-size``. Gloo on CPU, NCCL on CUDA (one GPU per local rank).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from amc_agent.env.errors import UserError

T = TypeVar("T")

TIMEOUT = timedelta(days=7)
"""How long a collective waits: under ``amc-compare`` the other processes wait in one while rank 0
runs the searches, which take hours on a big model."""


def world_size() -> int:
    """Processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process measures and writes the outputs (rank 0)."""
    return rank() == 0


def active() -> bool:
    """Whether training runs distributed (under torchrun with more than one process)."""
    return world_size() > 1


def setup(device: str) -> str:
    """Join the process group when under torchrun; returns the device this process trains on
    (``cuda`` becomes ``cuda:LOCAL_RANK``)."""
    if not active():
        return device
    on_cuda = device.startswith("cuda")
    if on_cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if on_cuda else "gloo", timeout=TIMEOUT)
    return device


def barrier() -> None:
    """Wait until every process gets here (nothing outside torchrun)."""
    if active():
        dist.barrier()


def broadcast(obj: T | None) -> T:
    """Rank 0's ``obj`` (any picklable value) on every process; ``obj`` itself outside
    torchrun. The others pass ``None``."""
    if not active():
        return obj  # type: ignore[return-value]
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def teardown() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def loader(dataset: Dataset, batch_size: int, seed: int, workers: int = 0) -> DataLoader:
    """This rank's share of ``dataset``, shuffled with ``seed`` (the epoch is set by
    :func:`amc_agent.env.training.fit`), in batches of ``batch_size / world_size``."""
    n = world_size()
    if batch_size % n:
        raise UserError(f"--batch-size {batch_size} does not split evenly over {n} processes")
    sampler = DistributedSampler(dataset, num_replicas=n, rank=rank(), shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=batch_size // n, sampler=sampler, num_workers=workers)


def wrap(model: nn.Module, device: str) -> nn.Module:
    """``model`` in DistributedDataParallel (gradients all-reduced; BN buffers from rank 0)."""
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model.to(device), device_ids=ids)
