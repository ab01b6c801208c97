"""How much one model's measured latency wanders between measurements, per thread count.

    python -m bench.bench_timing_spread --checkpoint runs/s21/mobilenetv2_e3.pt \
        --checkpoint runs/s5/resnet20_e3.pt --backend onnxruntime --batch 64 --threads 1,2

Each checkpoint's unpruned model is timed ``--repeats`` times in a row through
``amc_agent.env.latency.measure_latency`` (what every search, check and cut calls: a new
onnxruntime session per measurement, warm-up, at least ``--min-time`` seconds), at each thread
count, in this one quiet process. The spread (largest median / smallest) is the noise every
latency ratio of that model carries on this host: a comparison at equal measured latency cannot
separate strategies whose latencies differ by less. Writes
``bench/results/timing_spread_<backend>_b<batch>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.latency import measure_latency
from bench.common import write_result


def main() -> None:
    """Time each checkpoint's model repeatedly at each thread count; write the medians."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, action="append", required=True)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--min-time", type=float, default=0.3)
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for path in args.checkpoint:
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt).eval()
        shape = load_checkpoint_data(ckpt, download=False).spec.input_shape
        for t in threads:
            ms = [measure_latency(model, shape, batch_size=args.batch, threads=t,
                                  min_time_s=args.min_time, backend=args.backend).median_ms
                  for _ in range(args.repeats)]
            rows.append({"model": ckpt["recipe"]["name"], "checkpoint": str(path), "threads": t,
                         "median_ms": ms, "spread": max(ms) / min(ms)})
            print(rows[-1], flush=True)
    result = {"backend": args.backend, "batch": args.batch, "repeats": args.repeats,
              "min_time_s": args.min_time, "rows": rows}
    print(f"wrote {write_result(f'timing_spread_{args.backend}_b{args.batch}', result)}")


if __name__ == "__main__":
    main()
