"""Episodes per minute on parallel workers (``amc-search --workers N --backend local|ray``) and
search quality at equal episodes with 1 vs N workers.

Each variant runs the real command (``amc-search``) on the same checkpoint, seed and episode
count; the search's own time excludes the workers' start-up (measured apart). For an agent that
does not learn from rewards (``random``) the episodes must be the same whatever the variant, and
the benchmark checks it; a learning agent's batches change what it tries, so its rows compare
the winner's held-out accuracy instead.

    python -m bench.bench_workers --checkpoint runs/s5/resnet20_e3.pt --episodes 60
    python -m bench.bench_workers --checkpoint runs/s5/resnet20_e3.pt --agent amc-ddpg \\
        --episodes 300 --seeds 0,1 --variants 1-local,2-local --tag _quality
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import write_result


def variant_arg(text: str) -> list[tuple[int, str]]:
    """``1-local,2-local,2-ray`` -> [(1, "local"), (2, "local"), (2, "ray")]."""
    out = []
    for part in text.split(","):
        n, _, backend = part.strip().partition("-")
        out.append((int(n), backend or "local"))
    return out


def run_one(args: argparse.Namespace, seed: int, workers: int, backend: str) -> dict[str, Any]:
    """One search (skipped when its folder already holds a finished run): its summary, total
    wall time and episodes."""
    out = args.work / f"{args.agent}_s{seed}_{workers}-{backend}"
    done = out / "bench_run.json"
    if done.exists():
        return json.loads(done.read_text())
    cmd = [sys.executable, "-m", "amc_agent.cli.search", "--checkpoint", str(args.checkpoint),
           "--agent", args.agent, "--episodes", str(args.episodes), "--seed", str(seed),
           "--budget", str(args.budget), "--threads", str(args.threads),
           "--workers", str(workers), "--backend", backend, "--wandb-mode", "disabled",
           "--no-progress", "--out", str(out), *args.extra]
    if out.exists():
        cmd.append("--resume")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"search failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [json.loads(ln) for ln in (out / "episodes.jsonl").read_text().splitlines()]
    # The episodes' own time (with workers: each batch's wall time shared among its episodes),
    # without start-up and the re-scoring of the winners after the last episode.
    loop = sum(r["seconds"] for r in rows)
    run = {"agent": args.agent, "seed": seed, "workers": workers, "backend": backend,
           "episodes": len(rows), "loop_s": loop, "search_s": summary["seconds"],
           "wall_s": wall, "episodes_per_min": 60 * len(rows) / loop,
           "best_episode": summary["best_episode"], "val_accuracy": summary["val_accuracy"],
           "heldout_val_accuracy": summary.get("rescored_val_accuracy"),
           "finetuned_val_accuracy": summary.get("finetuned_val_accuracy"),
           "cache_hits": sum(1 for r in rows if r.get("cached")),
           "keep_ratios": [r["keep_ratios"] for r in rows],
           "command": "amc-search " + " ".join(cmd[3:])}
    done.write_text(json.dumps(run))
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--agent", default="random")
    p.add_argument("--episodes", type=int, default=60)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--seeds", default="0")
    p.add_argument("--variants", type=variant_arg, default=variant_arg("1-local,2-local,2-ray"))
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads of the learner; the workers share them")
    p.add_argument("--work", type=Path, default=Path("runs/bench_workers"))
    p.add_argument("--tag", default="")
    p.add_argument("--note", default="",
                   help="conditions the figures need read with (e.g. other jobs beside a run)")
    p.add_argument("extra", nargs="*", help="more amc-search flags, after --")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [run_one(args, s, n, b) for s in seeds for n, b in args.variants]
    for r in runs:
        ref = next((x for x in runs if x["seed"] == r["seed"] and x["workers"] == 1), None)
        r["speedup"] = ref["loop_s"] / r["loop_s"] if ref else None
        r["same_episodes_as_one_worker"] = ref["keep_ratios"] == r["keep_ratios"] \
            if ref else None
    for r in runs:
        r.pop("keep_ratios")
    stem = args.checkpoint.stem.split("_")[0]
    path = write_result(f"workers_{stem}_{args.agent}{args.tag}", {
        "model": stem, "checkpoint": str(args.checkpoint), "agent": args.agent,
        "episodes": args.episodes, "budget": args.budget, "threads": args.threads,
        "extra": args.extra, "note": args.note, "runs": runs})
    print(f"wrote {path}")
    for r in runs:
        print(f"{r['workers']}-{r['backend']} s{r['seed']}: {r['episodes_per_min']:.1f} ep/min "
              f"({r['loop_s']:.0f} s; whole command {r['wall_s']:.0f} s), "
              f"held-out {r['heldout_val_accuracy']}, same episodes "
              f"{r['same_episodes_as_one_worker']}")


if __name__ == "__main__":
    main()
