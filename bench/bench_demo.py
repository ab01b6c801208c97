"""``make demo`` from a fresh clone, timed: wall time (set-up included) and the comparison table.

    python -m bench.bench_demo                   # clone HEAD into a temp folder, time make demo
    python -m bench.bench_demo --clone DIR --seconds S   # record a run already made in DIR

Writes ``bench/results/demo.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from amc_agent.env.checkpoint import load_checkpoint
from bench.bench_compare import summary
from bench.common import write_result

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Run (or record) the demo and write its figures."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clone", type=Path, help="a fresh clone where make demo already ran")
    p.add_argument("--seconds", type=float, help="its measured wall time (with --clone)")
    args = p.parse_args()
    if args.clone is None:
        clone = Path(tempfile.mkdtemp(prefix="amc-demo-")) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        t0 = time.perf_counter()
        subprocess.run(["make", "demo"], cwd=clone, check=True)
        seconds = time.perf_counter() - t0
    else:
        clone, seconds = args.clone, args.seconds
    results = json.loads((clone / "runs/demo/compare/results.json").read_text())
    metrics = load_checkpoint(clone / "runs/demo/cnn10.pt")["metrics"]
    base = {k: metrics[k] for k in ("test_acc", "epochs", "seconds_per_epoch")}
    print(write_result("demo", {"wall_seconds": seconds, "base": base,
                                "base_test_acc": metrics["test_acc"], **summary(results)}))


if __name__ == "__main__":
    main()
