"""Measured inference latency on CPU or CUDA.

CPU: ``torch.utils.benchmark.Timer`` with a fixed thread count, warm-up runs, then repeated timed
blocks; the figure is the median. CUDA: CUDA events around each run with synchronisation, after
warm-up; the figure is the median. Always reported with device, batch size and threads.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass

import torch
from torch import nn

# torch.utils.benchmark imports cpp_extension, which warns about a missing CUDA toolkit on every
# CPU-only machine; that line would break the commands' "one line on error" contract.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402


@dataclass(frozen=True)
class Latency:
    """One latency measurement: ``median_ms`` per forward pass of ``batch_size`` samples,
    ``iqr_ms`` its inter-quartile range, on ``device`` with ``threads`` CPU threads."""

    median_ms: float
    iqr_ms: float
    runs: int
    batch_size: int
    threads: int
    device: str

    def to_dict(self) -> dict:
        """Plain-type view for JSON and checkpoints."""
        return asdict(self)


def _cpu(
    model: nn.Module, x: torch.Tensor, threads: int, warmup: int, min_time_s: float
) -> Latency:
    timer = benchmark.Timer(
        stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads
    )
    timer.timeit(warmup)
    m = timer.blocked_autorange(min_run_time=min_time_s)
    return Latency(m.median * 1e3, m.iqr * 1e3, len(m.times) * m.number_per_run, x.shape[0],
                   threads, "cpu")


def _cuda(model: nn.Module, x: torch.Tensor, threads: int, warmup: int, repeats: int) -> Latency:
    for _ in range(warmup):
        model(x)
    torch.cuda.synchronize(x.device)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    q = statistics.quantiles(times, n=4)
    return Latency(statistics.median(times), q[2] - q[0], repeats, x.shape[0], threads,
                   f"cuda:{torch.cuda.get_device_name(x.device)}")


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 10,
    min_time_s: float = 0.5,
    repeats: int = 100,
) -> Latency:
    """Median latency in milliseconds of one eval-mode forward pass.

    ``threads`` defaults to the current ``torch.get_num_threads()``; on CPU the measurement runs
    for at least ``min_time_s`` seconds, on CUDA ``repeats`` event-timed runs. The model is put in
    eval mode for the measurement and restored afterwards.
    """
    threads = threads or torch.get_num_threads()
    was_training = model.training
    model.eval()
    try:
        x = torch.randn(batch_size, *input_shape, device=device)
        if torch.device(device).type == "cuda":
            return _cuda(model, x, threads, warmup, repeats)
        return _cpu(model, x, threads, warmup, min_time_s)
    finally:
        model.train(was_training)
