"""The benchmark suite: every scenario in order, then ``BENCHMARKS.md`` regenerated.

    python -m bench.suite            # full: ResNet-20 on Fashion-MNIST (hours on 2 CPU cores)
    python -m bench.suite --quick    # smoke run on the small CNN (minutes); results go to
                                     # runs/bench-quick/results, BENCHMARKS.md is left alone

Scenarios: baseline training, environment throughput, channel-selection criteria, search quality
(every strategy, 2 seeds), the policies comparison (amc-compare with fine-tune and scratch, here
on the CPU; ``bench/device_session.sh`` runs the same on a lent GPU) and the same with equal budgets
and 3 fine-tune seeds (bench_compare), latency (speed-up vs MACs,
CPU), latency-target searches (batch 1 and 64), search-vs-final correlation, the any-model sweep,
the fault and bad-input counts, and ``make demo`` from a fresh clone. A step whose output already
exists is skipped in the full run (the trained checkpoint, finished searches), so an interrupted
suite resumes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def steps(quick: bool) -> list[tuple[str, list[str], Path | None]]:
    """``(name, python -m arguments, output that makes the step skippable)``."""
    if quick:
        work = Path("runs/bench-quick")
        ckpt = work / "base_cnn.pt"
        search = [("search", ["bench.bench_search", "--checkpoint", str(ckpt), "--agent", a,
                              "--seed", "0", "--episodes", "30", "--round-to", "1",
                              "--eval-size", "300", "--work", str(work / "search")], None)
                  for a in ("amc-ddpg", "random", "uniform")]
        return [
            ("train", ["bench.bench_train", "--model", "cnn", "--dataset", "fashion-mnist",
                       "--epochs", "1", "--no-progress", "--out", str(ckpt)], ckpt),
            ("env", ["bench.bench_env", "--checkpoint", str(ckpt), "--episodes", "5"], None),
            ("criteria", ["bench.bench_criteria", "--checkpoint", str(ckpt), "--repeats", "1",
                          "--val-size", "300", "--calib-images", "64"], None),
            *search,
            ("latency", ["bench.bench_latency", "--checkpoint", str(ckpt), "--rounds", "1",
                         "--min-time", "0.1"], None),
            ("latency_target", ["bench.bench_latency_target", "--checkpoint", str(ckpt),
                                "--budget", "0.8", "--episodes", "20", "--eval-size", "300",
                                "--rounds", "2", "--work", str(work / "latency_target")], None),
            ("correlation", ["bench.bench_correlation", "--checkpoint", str(ckpt), "--search",
                             str(work / "search" / "amc-ddpg_s0"), "--top", "3", "--spread", "3",
                             "--val-size", "300", "--finetune-images", "5000"], None),
            ("seeds", ["bench.bench_compare", "--checkpoint", str(ckpt), "--episodes", "30",
                       "--strategies", "amc-ddpg,uniform,global", "--finetune-seeds", "2",
                       "--work", str(work / "compare"), "--", "--eval-size", "300",
                       "--agent-kwargs", "{warmup_episodes: 10}"], None),
            ("sweep", ["bench.bench_sweep", "--quick"], None),
            ("reliability", ["bench.bench_reliability"], None),
        ]
    ckpt = Path("runs/base_resnet20.pt")
    work = Path("runs/bench_search")
    search = []
    for agent in ("amc-ddpg", "random", "td3"):
        for seed in (0, 1):
            search.append((f"search {agent} s{seed}",
                           ["bench.bench_search", "--checkpoint", str(ckpt), "--agent", agent,
                            "--seed", str(seed), "--episodes", "300", "--round-to", "1"],
                           work / f"{agent}_s{seed}" / "policy.json"))
    search.append(("search uniform", ["bench.bench_search", "--checkpoint", str(ckpt),
                                      "--agent", "uniform", "--round-to", "1"], None))
    compare = Path("runs/bench_compare")
    return [
        ("train", ["bench.bench_train", "--model", "resnet20", "--dataset", "fashion-mnist",
                   "--epochs", "10", "--no-progress", "--out", str(ckpt)], ckpt),
        ("env", ["bench.bench_env", "--checkpoint", str(ckpt), "--episodes", "20"], None),
        ("criteria", ["bench.bench_criteria", "--checkpoint", str(ckpt), "--round-to", "1"],
         None),
        *search,
        ("compare", ["amc_agent.cli.compare", "--checkpoint", str(ckpt), "--search",
                     str(work / "amc-ddpg_s0"), "--strategies",
                     "amc-ddpg,random,uniform,sensitivity,global,scratch", "--episodes", "300",
                     "--finetune-epochs", "1", "--budget", "0.5", "--round-to", "1",
                     "--wandb-mode", "disabled", "--no-progress", "--out", str(compare)],
         compare / "results.json"),
        ("seeds", ["bench.bench_compare", "--checkpoint", str(ckpt), "--budget", "0.5",
                   "--episodes", "300", "--finetune-seeds", "3", "--work",
                   "runs/bench_compare_seeds", "--", "--round-to", "1"], None),
        ("policies", ["bench.bench_policies", "--checkpoint", str(ckpt), "--compare",
                      str(compare)], None),
        ("latency", ["bench.bench_latency", "--checkpoint", str(ckpt), "--policy",
                     str(work / "amc-ddpg_s0" / "policy.json")], None),
        *[(f"latency_target b{b}", ["bench.bench_latency_target", "--checkpoint", str(ckpt),
                                    "--budget", budget, "--latency-batch", str(b),
                                    "--episodes", "100"], None)
          for b, budget in ((1, "0.9"), (64, "0.6"))],
        ("correlation", ["bench.bench_correlation", "--checkpoint", str(ckpt), "--search",
                         str(work / "amc-ddpg_s0"), "--top", "8", "--spread", "8"], None),
        ("sweep", ["bench.bench_sweep"], None),
        ("reliability", ["bench.bench_reliability"], None),
        ("demo", ["bench.bench_demo"], None),
    ]


def main() -> None:
    """Run the suite (or ``--quick``), then regenerate BENCHMARKS.md for a full run."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="", help="comma-separated step names to run")
    args = p.parse_args()
    env = dict(os.environ)
    if args.quick:
        env["AMC_BENCH_RESULTS"] = str(ROOT / "runs/bench-quick/results")
    only = {s for s in args.only.split(",") if s}
    t_all = time.perf_counter()
    for name, cmd, done in steps(args.quick):
        if only and name.split()[0] not in only and name not in only:
            continue
        if done is not None and (ROOT / done).exists():
            print(f"[suite] {name}: {done} exists, skipped", flush=True)
            continue
        print(f"[suite] {name}: python -m {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, env=env, check=True)
        print(f"[suite] {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.quick:
        subprocess.run([sys.executable, "-m", "bench.report"], cwd=ROOT, env=env, check=True)
    print(f"[suite] done in {time.perf_counter() - t_all:.0f} s", flush=True)


if __name__ == "__main__":
    main()
