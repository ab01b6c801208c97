"""Equal measured latency: a latency-target search against a FLOPs-target search and uniform
pruning, each cut to the same measured latency, then fine-tuned alike.

    python -m bench.bench_equal_latency --checkpoint runs/s5/resnet20_e3.pt --budget 0.8 \
        --batch 1 --backend eager --episodes 100 --finetune-seeds 3 --finetune-images 10000

1. ``amc-search --target latency --budget B`` (amc-ddpg): policy L, its declared winner confirmed
   against the original (amc_agent.agents.latency_check).
2. ``amc-search --target flops`` at L's MACs (rounded up to a percent): policy F, the best a
   FLOPs budget finds with the same MACs.
3. Uniform pruning U.
Each is cut to measured latency ``B`` x the original, all three before any fine-tune runs in
this process (amc_agent.policies.equal_latency: the largest common scale of its keep ratios
whose pruned model meets B in every round-robin round, found by bisection or, with ``--cut
scan``, by probing every channel-count vector from the top), then scored before fine-tuning and
fine-tuned with the same recipe and ``--finetune-seeds`` seeds; differences count only beyond
two standard errors over seeds (amc_agent.policies.stats). ``--strict-round`` puts all three on
the strict channel grid (every count a multiple of ``--round-to``; amc_agent.env.wall), where
latency falls with the scale instead of jumping at off-grid counts. ``--seed-policies uniform``
makes uniform pruning both searches' first episode (amc-search ``--seed-policies``).
``--drop-dominated-counts`` lets the latency search keep only channel counts no larger count
matches in predicted latency (``_undominated``). ``--threads N`` searches and times every cut
at N threads (``_t<N>``; fine-tunes keep the default). ``--resume`` keeps a search folder
started with the same flags: a finished search is reused, an unfinished one continued
(amc-search ``--resume``), so a killed run only redoes what it had not finished. Writes
``bench/results/equal_latency_<model>_<backend>_b<batch>[_cuda]_lat<budget>[_strict]
[_scan][_seeded][_undominated][_t<threads>][_r<round-to, when not 8>]_s<seed>[<tag>].json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from amc_agent.agents.search import STATE_FILE
from amc_agent.cli.search import build_parser, resolved_config
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.latency_table import FIT_TERMS, device_name
from amc_agent.env.models import clone_model
from amc_agent.env.training import TrainConfig
from amc_agent.policies.artifact import Policy
from amc_agent.policies.compare import finetune_subset, train_seeds
from amc_agent.policies.equal_latency import METHODS, cut_to_latency
from amc_agent.policies.finetune import measure
from amc_agent.policies.stats import difference
from bench.common import write_result

LAST_WRITTEN = {"latency": "latency_check.json", "flops": "rescore.json"}
"""What a search writes last, per target: its presence means the search finished."""
RESOLVED_AT_RUN = ("rescore-finetune",)
"""config.yaml keys amc-search fills in at run time (a default the flags leave unset)."""


def same_search(out: Path, cmd: list[str]) -> bool:
    """Whether search folder ``out`` was started with the flags of ``cmd`` (``python -m
    amc_agent.cli.search ...``), judged by its config.yaml."""
    path = out / "config.yaml"
    if not path.exists():
        return False
    want = resolved_config(build_parser().parse_args(cmd[3:]))
    have = yaml.safe_load(path.read_text()) or {}
    return {k: v for k, v in want.items() if k not in RESOLVED_AT_RUN} == \
        {k: v for k, v in have.items() if k not in RESOLVED_AT_RUN}


def search(args: argparse.Namespace, target: str, budget: float, out: Path) -> list[str]:
    """Run one amc-search into ``out`` (afresh, or with ``args.resume`` reusing or continuing
    a search started with the same flags); returns its command line."""
    cmd = [sys.executable, "-m", "amc_agent.cli.search", "--checkpoint", str(args.checkpoint),
           "--target", target, "--budget", str(budget), "--episodes", str(args.episodes),
           "--round-to", str(args.round_to), *(["--strict-round"] if args.strict_round else []),
           *(["--seed-policies", args.seed_policies] if args.seed_policies else []),
           *(["--drop-dominated-counts"] if args.drop_dominated_counts and target == "latency"
             else []),
           "--seed", str(args.search_seed),
           *(["--threads", str(args.threads)] if args.threads else []),
           "--device", args.device, "--eval-size", str(args.eval_size),
           "--wandb-mode", "disabled", "--no-progress", "--out", str(out)]
    if target == "latency":
        cmd += ["--latency-batch", str(args.batch), "--latency-backend", args.backend]
    if args.resume and same_search(out, cmd):
        if (out / LAST_WRITTEN[target]).exists():
            print(f"reusing the finished {target} search in {out}", flush=True)
            return cmd
        if (out / STATE_FILE).exists():
            subprocess.run([*cmd, "--resume"], check=True)
            return cmd
    shutil.rmtree(out, ignore_errors=True)  # the benchmark's own scratch folder
    subprocess.run(cmd, check=True)
    return cmd


def winner(out: Path) -> tuple[Policy, dict[str, Any]]:
    """A search's policy and its declared episode's row."""
    policy = Policy.load(out / "policy.json")
    rows = [json.loads(ln) for ln in (out / "episodes.jsonl").read_text().splitlines() if ln]
    return policy, next(r for r in rows if r["episode"] == policy.agent["found_at_episode"])


def main() -> None:
    """Search both ways, cut three policies to one measured latency, fine-tune, compare."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--budget", type=float, default=0.8, help="measured latency fraction")
    p.add_argument("--batch", type=int, default=1, help="latency batch size")
    p.add_argument("--backend", default="eager", help="--latency-backend")
    p.add_argument("--device", default="cpu")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--eval-size", type=int, default=1000)
    p.add_argument("--round-to", type=int, default=8)
    p.add_argument("--strict-round", action="store_true",
                   help="every strategy keeps multiples of --round-to (amc-search --strict-round)")
    p.add_argument("--search-seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds per probe")
    p.add_argument("--seed-policies", default="",
                   help="heuristics both searches play first (amc-search --seed-policies)")
    p.add_argument("--drop-dominated-counts", action="store_true",
                   help="the latency search keeps only counts no larger count matches in "
                        "predicted latency (amc-search --drop-dominated-counts)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for the searches and every latency measurement (the cuts); "
                        "fine-tunes keep the default")
    p.add_argument("--cut", choices=METHODS, default="bisect",
                   help="how the common scale is found (amc_agent.policies.equal_latency)")
    p.add_argument("--min-time", type=float, default=0.2, help="CPU seconds per measurement")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-seeds", type=int, default=3)
    p.add_argument("--finetune-images", type=int, default=10000)
    p.add_argument("--finetune-lr", type=float, default=0.01)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--tag", default="", help="appended to the result's name")
    p.add_argument("--resume", action="store_true",
                   help="reuse (or continue) a search in --work started with the same flags")
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    name = ckpt["recipe"]["name"]
    dev = torch.device(args.device).type
    tag = f"{name}_{args.backend}_b{args.batch}{'' if dev == 'cpu' else '_' + dev}" \
          f"_lat{args.budget:g}{'_strict' if args.strict_round else ''}" \
          f"{'_scan' if args.cut == 'scan' else ''}{'_seeded' if args.seed_policies else ''}" \
          f"{'_undominated' if args.drop_dominated_counts else ''}" \
          f"{f'_t{args.threads}' if args.threads else ''}" \
          f"{'' if args.round_to == 8 else f'_r{args.round_to}'}_s{args.search_seed}{args.tag}"
    work = args.work or Path(f"runs/bench_equal_latency/{tag}")
    lat_cmd = search(args, "latency", args.budget, work / "latency")
    lat_policy, lat_row = winner(work / "latency")
    check = json.loads((work / "latency" / "latency_check.json").read_text())
    flops_budget = math.ceil(lat_row["macs_ratio"] * 100) / 100
    flops_cmd = search(args, "flops", flops_budget, work / "flops")
    flops_policy, _ = winner(work / "flops")

    model = model_from_checkpoint(ckpt).eval()
    data = load_checkpoint_data(ckpt, download=False)
    env = ChannelPruningEnv(model, data, EnvConfig(budget=1.0, round_to=args.round_to,
                                                   strict_round=args.strict_round,
                                                   lbound=lat_policy.lbound, fill_budget=False,
                                                   val_size=args.eval_size, device=args.device))
    ft_data = finetune_subset(data, args.finetune_images, args.search_seed)
    train = TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr)
    seeds = list(range(args.finetune_seeds))
    policies = {"latency-search": lat_policy.keep_ratios,
                "flops-search": flops_policy.keep_ratios,
                "uniform": {u.name: 1.0 for u in env.units}}
    # Every cut is timed before anything trains in this process: onnxruntime timings taken
    # after torch trained here were off (MobileNetV2, batch 64: 0.44 -> 0.63 of the original).
    cuts = {}
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or default_threads)
    for strategy, ratios in policies.items():
        cut = cut_to_latency(env, ratios, args.budget, args.batch, args.rounds,
                             args.backend, args.min_time, method=args.cut)
        cuts[strategy] = (cut, clone_model(env.pruned_model()))
    torch.set_num_threads(default_threads)
    rows: dict[str, dict[str, Any]] = {}
    for strategy, (cut, pruned) in cuts.items():
        info = cut.info
        before = measure(pruned, data, args.device, latency_batches=())
        record, _ = train_seeds(pruned, ft_data, train, seeds, args.device, False)
        record.pop("finetune_histories")
        rows[strategy] = {"scale": cut.scale, "met": cut.met, "latency_ratio": cut.ratio,
                          "round_ratios": cut.round_ratios, "probes": cut.probes,
                          "keep_ratios": cut.keep_ratios,
                          "macs_kept": info["macs"] / info["original_macs"],
                          "params_kept": info["params"] / info["original_params"],
                          "val_acc_before_finetune": info["accuracy"],
                          "test_acc_before_finetune": before["test_acc"], **record}
        print(strategy, {k: rows[strategy][k] for k in ("scale", "latency_ratio", "macs_kept",
                                                         "test_acc_before_finetune",
                                                         "test_acc")}, flush=True)
    accs = {s: [a for a in r["test_acc_seeds"] if a is not None] for s, r in rows.items()}
    best = max(accs, key=lambda s: sum(accs[s]) / max(len(accs[s]), 1))
    result = {
        "model": name, "checkpoint": str(args.checkpoint),
        "device_name": device_name(args.device), "budget": args.budget,
        "batch": args.batch, "backend": args.backend, "episodes": args.episodes,
        "round_to": args.round_to, "strict_round": args.strict_round, "cut": args.cut,
        "seed_policies": args.seed_policies or None,
        "drop_dominated": args.drop_dominated_counts,
        "latency_threads": args.threads, "table_terms": FIT_TERMS,
        "cuts_before_finetune": True,
        "search_seed": args.search_seed, "flops_budget": flops_budget,
        "finetune": {"epochs": args.finetune_epochs, "seeds": seeds,
                     "images": args.finetune_images, "lr": args.finetune_lr},
        "search_commands": {"latency": " ".join(["amc-search", *lat_cmd[3:]]),
                            "flops": " ".join(["amc-search", *flops_cmd[3:]])},
        "latency_search": {"declared_episode": lat_row["episode"], "met": check["met"],
                           "predictor": check["predictor"], "macs_ratio": lat_row["macs_ratio"],
                           "declared_seed_policy": lat_policy.agent.get("declared_seed_policy")},
        "flops_search": {"declared_seed_policy": flops_policy.agent.get("declared_seed_policy")},
        "strategies": rows, "best": best,
        "differences": {s: difference(accs[s], accs[best]) for s in rows if s != best},
    }
    print(f"wrote {write_result(f'equal_latency_{tag}', result)}")


if __name__ == "__main__":
    main()
