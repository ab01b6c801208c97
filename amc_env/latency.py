"""Measured inference latency on CPU or CUDA, as the model would run when deployed.

Backends (:data:`BACKENDS`):

- ``eager``: PyTorch's eager forward. CPU: ``torch.utils.benchmark.Timer`` with a fixed thread
  count, warm-up runs, then repeated timed blocks; CUDA: CUDA events around each run after warm-up.
- ``onnxruntime`` (CPU): the model exported to ONNX (:mod:`amc_agent.env.export`) and run by an
  onnxruntime session pinned to the thread count, sequential execution; what a CPU deployment sees.
- ``cudagraph`` (CUDA): the forward captured once as a CUDA graph and replayed, so kernel launch
  overhead (which dominates small networks in eager mode and hides what pruning saves) is gone.

Eager CPU timings depend on the process's heap history (a fresh process maps and faults in
every activation buffer anew, 2x slower on ResNet-20 at batch 64); every CPU measurement first
fixes that regime (:mod:`amc_agent.env.allocator`).

The figure is the median per forward pass, with its inter-quartile range; always reported with
backend, device, batch size and threads. ``default_backend`` picks ``cudagraph`` on CUDA and
``eager`` on CPU.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

# torch.utils.benchmark imports cpp_extension, which warns about a missing CUDA toolkit on every
# CPU-only machine; that line would break the commands' "one line on error" contract.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402

from amc_agent.env.allocator import steady_heap  # noqa: E402
from amc_agent.env.errors import UserError  # noqa: E402

BACKENDS = ("eager", "onnxruntime", "cudagraph")
MIN_BLOCKS = 5
"""Fewest timed blocks a CPU eager measurement accepts before it falls back to timing at least
this many single calls."""


def default_backend(device: str) -> str:
    """``cudagraph`` on CUDA, ``eager`` on CPU."""
    return "cudagraph" if torch.device(device).type == "cuda" else "eager"


def check_backend(backend: str, device: str) -> None:
    """:class:`UserError` for an unknown backend or one the device cannot run."""
    if backend not in BACKENDS:
        raise UserError(f"unknown --latency-backend {backend!r}; valid: {', '.join(BACKENDS)}")
    cuda = torch.device(device).type == "cuda"
    if backend == "cudagraph" and not cuda:
        raise UserError("--latency-backend cudagraph needs --device cuda")
    if backend == "onnxruntime" and cuda:
        raise UserError("--latency-backend onnxruntime measures the CPU deployment; use "
                        "--device cpu (or cudagraph on CUDA)")


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
    backend: str = "eager"

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
    if len(m.times) < MIN_BLOCKS:
        # One slow call can fill the whole time budget (seen: a 623 ms "median" of a single
        # batch-64 call, 36 ms when measured again); a median needs several samples.
        return _cpu_loop(model, x, threads, 0, min_time_s)
    return Latency(m.median * 1e3, m.iqr * 1e3, len(m.times) * m.number_per_run, x.shape[0],
                   threads, "cpu")


def _summary(times_ms: list[float], batch: int, threads: int, device: str,
             backend: str) -> Latency:
    q = statistics.quantiles(times_ms, n=4) if len(times_ms) > 1 else [times_ms[0]] * 3
    return Latency(statistics.median(times_ms), q[2] - q[0], len(times_ms), batch, threads,
                   device, backend)


def _loop(run: Callable[[], object], warmup: int, min_time_s: float) -> list[float]:
    """Milliseconds of single calls of ``run`` after ``warmup`` calls, for at least
    ``min_time_s`` seconds and :data:`MIN_BLOCKS` calls."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    t_end = time.perf_counter() + min_time_s
    while time.perf_counter() < t_end or len(times) < MIN_BLOCKS:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _cpu_loop(model: nn.Module, x: torch.Tensor, threads: int, warmup: int,
              min_time_s: float) -> Latency:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _summary(_loop(lambda: model(x), warmup, min_time_s), x.shape[0], threads, "cpu",
                        "eager")
    finally:
        torch.set_num_threads(before)


def _onnxruntime(model: nn.Module, x: torch.Tensor, threads: int, warmup: int,
                 min_time_s: float) -> Latency:
    from amc_agent.env.export import onnx_bytes, onnx_session

    sess = onnx_session(onnx_bytes(model, tuple(x.shape[1:])), threads)
    feed = {sess.get_inputs()[0].name: x.cpu().numpy()}
    return _summary(_loop(lambda: sess.run(None, feed), warmup, min_time_s), x.shape[0],
                    threads, "cpu", "onnxruntime")


def _cuda(model: nn.Module, x: torch.Tensor, threads: int, warmup: int, repeats: int,
          graph: bool) -> Latency:
    run = lambda: model(x)  # noqa: E731
    if graph:
        # Warm up on a side stream (CUDA graph capture requires it), then capture one forward.
        stream = torch.cuda.Stream(x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            for _ in range(max(3, warmup)):
                model(x)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            model(x)
        run = g.replay
    for _ in range(warmup):
        run()
    torch.cuda.synchronize(x.device)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return _summary(times, x.shape[0], threads, f"cuda:{torch.cuda.get_device_name(x.device)}",
                    "cudagraph" if graph else "eager")


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
    backend: str | None = None,
    quick: bool = False,
) -> Latency:
    """Median latency in milliseconds of one eval-mode forward pass on ``backend`` (default
    :func:`default_backend`). ``quick`` (CPU eager): time single calls in a plain loop, for the
    thousands of short measurements of a latency table (``torch.utils.benchmark``'s block-size
    search can cost ten times the requested time there).

    ``threads`` defaults to the current ``torch.get_num_threads()``; on CPU the measurement runs
    for at least ``min_time_s`` seconds, on CUDA ``repeats`` event-timed runs. The model is put in
    eval mode for the measurement and restored afterwards. On CPU the process's heap is first
    put in one regime (amc_agent.env.allocator.steady_heap), so a measurement does not depend on
    what the process allocated before it.
    """
    backend = backend or default_backend(device)
    check_backend(backend, device)
    threads = threads or torch.get_num_threads()
    was_training = model.training
    model.eval()
    try:
        x = torch.randn(batch_size, *input_shape, device=device)
        if torch.device(device).type == "cuda":
            return _cuda(model, x, threads, warmup, repeats, graph=backend == "cudagraph")
        steady_heap()
        if backend == "onnxruntime":
            return _onnxruntime(model, x, threads, warmup, min_time_s)
        if quick:
            return _cpu_loop(model, x, threads, warmup, min_time_s)
        return _cpu(model, x, threads, warmup, min_time_s)
    finally:
        model.train(was_training)
