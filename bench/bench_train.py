"""Baseline training benchmark: ``amc-train`` on a model/dataset, recording test accuracy, wall time
per epoch, MACs, params and CPU latency into ``bench/results/train_<model>_<dataset>[<tag>].json``.

    python -m bench.bench_train --model resnet20 --dataset fashion-mnist --epochs 10 \
        --out runs/base_resnet20.pt
"""

from __future__ import annotations

import argparse
import sys

from amc_agent.cli import train
from amc_agent.env.checkpoint import load_checkpoint
from bench.common import write_result


def main() -> None:
    """Run amc-train with this script's arguments, then record its checkpoint's metrics."""
    tag = argparse.ArgumentParser(add_help=False)
    tag.add_argument("--tag", default="", help="appended to the result's name")
    ours, argv = tag.parse_known_args(sys.argv[1:])
    args = train.build_parser().parse_args(argv)
    code = train.main(argv)
    if code:
        sys.exit(code)
    m = load_checkpoint(args.out)["metrics"]
    keep = ("test_acc", "val_acc", "macs", "params", "latency", "epochs", "seconds_per_epoch",
            "history", "train_config")
    path = write_result(f"train_{args.model}_{args.dataset}{ours.tag}",
                        {"checkpoint": str(args.out), **{k: m[k] for k in keep}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
