"""Shared by the benchmarks: machine facts and writing ``bench/results/NAME.json``."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from amc_agent.env import atomic
from amc_agent.env.checkpoint import library_versions, load_checkpoint, state_digest

RESULTS = Path(os.environ.get("AMC_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
"""Where results go; ``AMC_BENCH_RESULTS`` redirects them (the device session collects them)."""


def machine() -> dict[str, Any]:
    """Where a figure was measured: CPU model, cores, torch threads, GPU if any, and which
    generation of CPU (family/model) with which kernels (torch's CPU capability): a name such
    as "AMD EPYC" covers generations whose kernels train the same command into different
    networks."""
    cpu, info = platform.processor(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model") and key.strip() not in info:
                info[key.strip()] = value.strip()
            if not line.strip():
                break
        cpu = info.get("model name", cpu)
    except OSError:
        pass
    generation = f"family {info['cpu family']} model {info['model']}" \
        if "cpu family" in info and "model" in info else None
    return {"cpu": cpu, "cpu_generation": generation,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), **library_versions()}


def command_line() -> str:
    """How this benchmark was started, as a user would type it (``python -m bench.x ...``)."""
    return " ".join([display_program(sys.argv[0]), shlex.join(sys.argv[1:])])


def display_program(argv0: str) -> str:
    """``python -m bench.NAME`` for a benchmark script path, else the path itself."""
    p = Path(argv0)
    return f"python -m bench.{p.stem}" if p.parent.name == "bench" else argv0


def checkpoint_sha256(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 over a checkpoint's tensors (names, dtypes,
    shapes, bytes, in order): which network a result was measured on. A path can be trained
    again into another network; the metadata beside the tensors (timings) does not count, so a
    bit-identical retraining keeps its digest."""
    return state_digest(load_checkpoint(Path(path))["state_dict"])[:16]


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the command line, date and machine, and the
    SHA-256 of ``data["checkpoint"]`` where that is a file. A result under the same name that
    was measured on another network at that path (another digest, or none recorded) is kept:
    the new one is written as ``<name>_<digest>.json`` instead, so the report never mixes the
    two networks' rows under one name."""
    ckpt = data.get("checkpoint")
    if isinstance(ckpt, str | Path) and Path(ckpt).is_file():
        data = {**data, "checkpoint_sha256": checkpoint_sha256(ckpt)}
    path = RESULTS / f"{name}.json"
    if "checkpoint_sha256" in data and path.exists():
        old = json.loads(path.read_text())
        if old.get("checkpoint") == data["checkpoint"] \
                and old.get("checkpoint_sha256") != data["checkpoint_sha256"]:
            name = f"{name}_{data['checkpoint_sha256']}"
            kept, path = path, RESULTS / f"{name}.json"
            print(f"{kept} was measured on another network at {ckpt}; writing {path} instead",
                  file=sys.stderr)
    atomic.write_json(path, {"benchmark": name, "command": command_line(),
                             "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                             "machine": machine(), **data})
    return path
