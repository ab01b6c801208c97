"""How much a process's heap history moves an eager CPU latency (amc_agent.env.allocator).

    python -m bench.bench_heap --checkpoint runs/s5/resnet20_e3.pt --batch 64

Times the checkpoint's model (eager, ``torch.get_num_threads()`` threads) in three new processes,
each a plain loop of single forward passes after a warm-up, ``--rounds`` blocks of at least
``--min-time`` seconds: *fresh* (nothing ran before), *after a large batch* (one forward at batch
512 first, as a search's evaluation does) and *steady heap* (amc_agent.env.allocator.steady_heap
first, as every CPU measurement now does). Each block reports the median ms per forward and the
minor page faults per forward (glibc mapping activation buffers anew). Writes
``bench/results/heap_<model>_b<batch>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from amc_agent.env.checkpoint import load_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from bench.common import write_result

MODES = ("fresh", "after a large batch", "steady heap")

CHILD = """
import json, resource, statistics, sys, time, torch
from amc_agent.env.allocator import steady_heap
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
ckpt, batch, mode, rounds, min_time, shape = sys.argv[1:7]
model = model_from_checkpoint(load_checkpoint(ckpt)).eval()
shape = tuple(int(d) for d in shape.split(","))
x = torch.randn(int(batch), *shape)
with torch.no_grad():
    if mode == "after a large batch":
        model(torch.randn(512, *shape))
    elif mode == "steady heap":
        steady_heap()
    for _ in range(5):
        model(x)
    blocks = []
    for _ in range(int(rounds)):
        times, f0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        end = time.perf_counter() + float(min_time)
        while time.perf_counter() < end or len(times) < 5:
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        blocks.append({"median_ms": statistics.median(times), "calls": len(times),
                       "faults_per_call": faults / len(times)})
print(json.dumps(blocks))
"""


def main() -> None:
    """Time the model in a fresh, a warmed and a steady-heap process; write the figures."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5)
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    name = ckpt["recipe"]["name"]
    shape = ",".join(str(d) for d in load_checkpoint_data(ckpt, download=False).spec.input_shape)
    modes = {}
    for mode in MODES:
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.checkpoint), str(args.batch),
                              mode, str(args.rounds), str(args.min_time), shape],
                             capture_output=True, text=True, check=True)
        modes[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(mode, modes[mode], flush=True)
    result = {"model": name, "checkpoint": str(args.checkpoint), "batch": args.batch,
              "threads": torch.get_num_threads(), "rounds": args.rounds,
              "min_time_s": args.min_time, "modes": modes}
    print(f"wrote {write_result(f'heap_{name}_b{args.batch}', result)}")


if __name__ == "__main__":
    main()
