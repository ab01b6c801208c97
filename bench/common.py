"""Shared by the benchmarks: machine facts and writing ``bench/results/NAME.json``."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from amc_agent.env import atomic
from amc_agent.env.checkpoint import library_versions

RESULTS = Path(os.environ.get("AMC_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
"""Where results go; ``AMC_BENCH_RESULTS`` redirects them (the device session collects them)."""


def machine() -> dict[str, Any]:
    """Where a figure was measured: CPU model, cores, torch threads, GPU if any."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), **library_versions()}


def command_line() -> str:
    """How this benchmark was started, as a user would type it (``python -m bench.x ...``)."""
    return " ".join([display_program(sys.argv[0]), shlex.join(sys.argv[1:])])


def display_program(argv0: str) -> str:
    """``python -m bench.NAME`` for a benchmark script path, else the path itself."""
    p = Path(argv0)
    return f"python -m bench.{p.stem}" if p.parent.name == "bench" else argv0


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the command line, date and machine."""
    path = RESULTS / f"{name}.json"
    atomic.write_json(path, {"benchmark": name, "command": command_line(),
                             "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                             "machine": machine(), **data})
    return path
