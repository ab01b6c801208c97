"""Search-vs-final correlation: does the accuracy a search scores a policy with predict the
accuracy after fine-tuning?

    python -m bench.bench_correlation --checkpoint runs/base_resnet20.pt \
        --search runs/bench_search/amc-ddpg_s0 --top 8 --spread 8 --finetune-epochs 1

From a finished search's ``episodes.jsonl`` (distinct policies that met the budget, ranked by
reward) it takes the ``--top`` best and ``--spread`` more at evenly spaced ranks below them (the
top alone spans a narrow accuracy range; the spread set shows whether the signal ranks policies
at all). Each policy is replayed twice on the search's validation subset, without and with BN
recalibration (EagleEye, Li et al., ECCV 2020, argue the recalibrated figure is the one that
predicts fine-tuned accuracy), then fine-tuned with one recipe and seed and scored on the test
split. With ``--short-finetune N`` each policy is also scored on the held-out validation images
(the ones no episode saw) before and after the search's short fine-tune (``amc-search
--rescore-finetune N``, amc_agent.agents.rescore.ShortFinetune), so the benchmark says which signal
ranks policies as the final accuracy does. ``--finetune-seeds K`` averages the final accuracy over K
fine-tune seeds and reports its own spread: a predictor cannot rank policies whose final
accuracies differ by less than that. Reported: Pearson and Spearman (ties at their mean rank)
correlation of each signal with the final accuracy, over the top set, the spread set and both. A
diverged fine-tune is listed and left out of the statistics. Writes
``bench/results/correlation_<model>.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from amc_agent.agents.rescore import ShortFinetune
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.datasets import load_checkpoint_data, make_loader
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.evaluation import accuracy
from amc_agent.env.training import TrainConfig, evaluate
from amc_agent.policies.artifact import Policy
from amc_agent.policies.finetune import finetune_or_diverged
from bench.common import write_result


def select(rows: list[dict[str, Any]], top: int, spread: int) -> list[tuple[str, dict]]:
    """``(set name, episode row)``: the ``top`` best distinct feasible policies by reward, then
    ``spread`` more at evenly spaced ranks among the rest."""
    seen, ranked = set(), []
    feasible = [r for r in rows if r["meets_budget"] and math.isfinite(r["reward"])]
    for r in sorted(feasible, key=lambda r: -r["reward"]):
        key = tuple(sorted(r["keep_ratios"].items()))
        if key not in seen:
            seen.add(key)
            ranked.append(r)
    rest = ranked[top:]
    idx = np.unique(np.linspace(0, len(rest) - 1, spread).round().astype(int)) if rest else []
    return [("top", r) for r in ranked[:top]] + [("spread", rest[i]) for i in idx]


def ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks of ``x``, tied values sharing their mean rank (accuracies on a few thousand
    images tie often)."""
    _, inv = np.unique(x, return_inverse=True)
    raw = x.argsort(kind="stable").argsort()
    return (np.bincount(inv, raw) / np.bincount(inv))[inv]


def correlations(xs: list[float], ys: list[float]) -> dict[str, float | None]:
    """Pearson and Spearman (Pearson of tie-averaged ranks) correlation; ``None`` below 3 points
    or for a constant series."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return {"pearson": None, "spearman": None, "n": len(x)}
    return {"pearson": float(np.corrcoef(x, y)[0, 1]),
            "spearman": float(np.corrcoef(ranks(x), ranks(y))[0, 1]), "n": len(x)}


SIGNALS = {"plain": "val_acc_plain", "recalibrated": "val_acc_recalibrated",
           "heldout": "heldout_acc", "short_finetune": "heldout_acc_after_short_finetune"}
"""Correlation name -> the policy record's key of a signal known before the final fine-tune."""


def main() -> None:
    """Replay, fine-tune and score the selected policies; write the correlations."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--search", type=Path, required=True, help="a finished amc-search folder")
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--spread", type=int, default=8)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-lr", type=float, default=0.01)
    p.add_argument("--val-size", type=int, default=1000, help="the search's --eval-size")
    p.add_argument("--finetune-images", type=int, default=0,
                   help="fine-tune on this many training images (seeded subset; 0 = all)")
    p.add_argument("--finetune-seeds", type=int, default=1,
                   help="final accuracy = mean over this many fine-tune seeds")
    p.add_argument("--short-finetune", type=int, default=0,
                   help="also score each policy on held-out images before and after a short "
                        "fine-tune on this many training images (0: off)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tag", default="", help="suffix of the result's name")
    args = p.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).to(args.device).eval()
    data = load_checkpoint_data(ckpt, download=False)
    if args.finetune_images:
        pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
        data = dataclasses.replace(data, train=Subset(data.train,
                                                      pick[:args.finetune_images].tolist()))
    policy = Policy.load(args.search / "policy.json")
    rows = [json.loads(line) for line in (args.search / "episodes.jsonl").read_text().splitlines()
            if line.strip()]
    cfg = EnvConfig(budget=policy.budget, round_to=policy.round_to,
                    strict_round=policy.strict_round, lbound=policy.lbound,
                    criterion=policy.criterion, val_size=args.val_size, fill_budget=False,
                    device=args.device)
    plain_env = ChannelPruningEnv(model, data, cfg, recalibrate=False)
    env = ChannelPruningEnv(model, data, cfg)
    test_loader = make_loader(data.test, 512)
    heldout = env.heldout_batches()
    short = ShortFinetune(args.short_finetune, lr=args.finetune_lr) \
        if args.short_finetune else None
    out: list[dict[str, Any]] = []
    for which, row in select(rows, args.top, args.spread):
        plain = plain_env.play(row["keep_ratios"])["accuracy"]
        info = env.play(row["keep_ratios"])
        pruned = env.pruned_model()
        result: dict[str, Any] = {"set": which, "episode": row["episode"],
                                  "search_reward": row["reward"], "val_acc_plain": plain,
                                  "val_acc_recalibrated": info["accuracy"],
                                  "macs_kept": info["macs"] / info["original_macs"]}
        if heldout:
            result["heldout_acc"] = accuracy(pruned, heldout)
        if short is not None:
            t0 = time.perf_counter()
            tuned = short.run(pruned, data.train, args.device)
            result["heldout_acc_after_short_finetune"] = \
                math.nan if tuned is None else accuracy(tuned, heldout)
            result["short_finetune_seconds"] = time.perf_counter() - t0
        accs = []
        for seed in range(args.finetune_seeds):
            m = copy.deepcopy(pruned)
            ft = TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr, seed=seed)
            _, diverged = finetune_or_diverged(m, data, ft, args.device, progress=False)
            if diverged:
                result["diverged"] = diverged
                break
            accs.append(evaluate(m, test_loader, args.device).acc)
        result["test_acc_seeds"] = accs
        result["test_acc_after_finetune"] = None if "diverged" in result else \
            float(np.mean(accs))
        print(result, flush=True)
        out.append(result)
    stats: dict[str, Any] = {}
    for name, members in (("top", ["top"]), ("spread", ["spread"]), ("all", ["top", "spread"])):
        ok = [r for r in out if r["set"] in members and r["test_acc_after_finetune"] is not None]
        final = [r["test_acc_after_finetune"] for r in ok]
        stats[name] = {sig: correlations([r[key] for r in ok], final)
                       for sig, key in SIGNALS.items() if ok and key in ok[0]}
        stds = [float(np.std(r["test_acc_seeds"], ddof=1)) for r in ok
                if len(r["test_acc_seeds"]) > 1]
        stats[name]["final_accuracy_range"] = (max(final) - min(final)) if final else None
        stats[name]["finetune_seed_std"] = float(np.mean(stds)) if stds else None
    print(json.dumps(stats, indent=1))
    path = write_result(f"correlation_{ckpt['recipe']['name']}{args.tag}", {
        "checkpoint": str(args.checkpoint), "search": str(args.search),
        "agent": policy.agent.get("name"), "budget": policy.budget, "val_size": args.val_size,
        "finetune": {**TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr).to_dict(),
                     "seeds": args.finetune_seeds},
        "short_finetune": short.to_dict() if short else None,
        "finetune_images": args.finetune_images or len(data.train),
        "device": args.device, "policies": out,
        "correlation": stats})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
