"""Policies comparison over seeds: accuracy before and after the same fine-tune, per strategy,
from several amc-compare runs that differ only in ``--seed`` (search, fine-tune and data seeds).

    python -m bench.bench_seeds bench/results/device/compare_resnet20 \
        bench/results/device/compare_resnet20_s1

The runs come from ``bash bench/device_session.sh policies`` and ``... policies_s1``. Writes
``bench/results/policies_seeds_resnet20.json`` with every run's figures and the per-strategy mean
over the seeds each strategy ran with.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.common import write_result

KEYS = ("val_acc_before_finetune", "test_acc_before_finetune", "test_acc")


def main() -> None:
    """Gather the compare runs and write the per-seed and mean figures."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="amc-compare output folders")
    p.add_argument("--model", default="resnet20")
    args = p.parse_args()
    runs: list[dict[str, Any]] = []
    for folder in args.runs:
        res = json.loads((folder / "results.json").read_text())
        runs.append({"folder": str(folder), "seed": res["config"]["seed"],
                     "device": res["original"]["latency"]["b1"].get("device"),
                     "command": res.get("command"), "original_test_acc":
                     res["original"]["test_acc"],
                     "strategies": {n: {k: r.get(k) for k in KEYS} |
                                    {"macs_kept": r["macs"] / res["original"]["macs"]}
                                    for n, r in res["strategies"].items()}})
    mean: dict[str, dict[str, Any]] = {}
    names = dict.fromkeys(n for r in runs for n in r["strategies"])
    for name in names:
        rows = [r["strategies"][name] for r in runs if name in r["strategies"]]
        mean[name] = {"seeds": [r["seed"] for r in runs if name in r["strategies"]]}
        for k in KEYS:
            vals = [row[k] for row in rows if row[k] is not None]
            mean[name][k] = statistics.fmean(vals) if vals else None
    out = write_result(f"policies_seeds_{args.model}", {"runs": runs, "mean": mean})
    print(json.dumps(mean, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
