"""Any-model sweep: every torchvision classification model and every zoo model, random weights
at a small input, one random feasible policy at 50% MACs through the environment.

    python -m bench.bench_sweep                   # all models, one subprocess each
    python -m bench.bench_sweep --models resnet18,vgg11 --workers 2
    python -m bench.bench_sweep --quick           # a handful of families (smoke run)
    python -m bench.bench_sweep --timm --workers 2   # the timm sample (bench/results/sweep_timm)

Per model, in order (the first failing stage is recorded with its error line):

1. ``build``: the architecture with random weights, 10 classes, 3 input channels (the zoo's own
   channel count for Fashion-MNIST models);
2. ``env``: units found (Torch-Pruning dependency graph) and the env built on synthetic data;
3. ``episode``: a seeded random policy passed through the budget wall, played to the end;
4. ``forward``: the pruned model gives a finite ``(2, 10)`` output;
   (rows count the channel groups left unpruned, by kind: ``left_unpruned``, and the seconds
   this stage took, ``env_s``: unit discovery, bounded by ``DISCOVERY_TIMEOUT_S`` and cached);
5. ``macs``: the cost model's predicted MACs equal a recount of the pruned model, and the MACs
   kept are at most the 50% budget (rows also count the units cut group-balanced for grouped
   convolutions, ``grouped_units``, and how many of them the policy cut, ``grouped_units_cut``);
6. ``export``: checkpoint saved, loaded with ``weights_only=True``, rebuilt from the recipe plus the
   pruning record, outputs bit-identical to the in-memory pruned model.

Each model runs in its own process with a time limit and an address-space limit, so one crash,
hang or memory blow-up does not hide the rest. Writes ``bench/results/sweep.json``.
(Torch-Pruning's own sweep reported 77 of 85 torchvision models working.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from amc_agent.env.datasets import synthetic
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.errors import first_line
from amc_agent.env.models import ZOO, build_model, torchvision_names
from amc_agent.policies.heuristics import random_policy
from bench.common import RESULTS, command_line, write_result

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 0.5
DEFAULT_SIZE = 64
# Models whose architecture fixes or bounds the input size: (image size, extra build kwargs).
SIZES: dict[str, tuple[int, dict[str, Any]]] = {
    "inception_v3": (96, {"aux_logits": False, "init_weights": False}),  # needs >= 75 px
    "googlenet": (64, {"aux_logits": False, "init_weights": False}),
    "maxvit_t": (224, {}),  # window partition 7 x 7 at stride 32
    "vit_b_16": (64, {"image_size": 64}),
    "vit_b_32": (64, {"image_size": 64}),
    "vit_l_16": (64, {"image_size": 64}),
    "vit_l_32": (64, {"image_size": 64}),
    "vit_h_14": (56, {"image_size": 56}),
    "timm:efficientformer_l1": (224, {}),  # attention biases sized for 7 x 7 at stride 32
}
ZOO_INPUT = {"cnn": (1, 28), "cnn10": (1, 28), "resnet20": (3, 32), "resnet32": (3, 32),
             "resnet56": (3, 32), "resnet110": (3, 32), "plain20": (3, 32), "vgg16": (3, 32),
             "mobilenetv2": (3, 32)}
QUICK = ["cnn", "resnet20", "mobilenetv2", "resnet18", "mobilenet_v3_small", "squeezenet1_1",
         "densenet121", "efficientnet_b0", "regnet_x_400mf", "vit_b_32"]


TIMM_SAMPLE = [
    "resnet18", "resnet26d", "resnet50d", "resnext26ts", "seresnext26d_32x4d", "regnetx_002",
    "regnety_002", "regnetz_b16", "efficientnet_b0", "efficientnet_lite0",
    "tf_efficientnetv2_b0", "mobilenetv3_small_100", "mobilenetv3_large_100",
    "mobilenetv4_conv_small", "mnasnet_100", "spnasnet_100", "fbnetc_100", "ghostnet_100",
    "ghostnetv2_100", "hrnet_w18_small", "dla34", "dpn68", "densenet121", "vgg11",
    "xception41", "cspresnet50", "cspdarknet53", "darknet53", "nf_resnet26", "rexnet_100",
    "lcnet_050", "tinynet_a", "mixnet_s", "semnasnet_100", "hardcorenas_a", "res2net50_14w_8s",
    "resnest14d", "skresnet18", "selecsls42b", "repvgg_a0", "convnext_atto", "convnextv2_atto",
    "efficientformer_l1", "mobilevit_xxs", "mobilevitv2_050", "edgenext_xx_small",
    "fastvit_t8", "repghostnet_050", "gernet_s", "resnetrs50", "ecaresnet26t", "seresnet18",
    "legacy_seresnet18", "resnet10t", "dla46_c", "cs3darknet_s", "efficientvit_b0",
    "mobileone_s0", "inception_next_atto", "poolformer_s12", "regnety_004", "hgnet_tiny",
    "ese_vovnet19b_dw", "tresnet_m",
]
"""timm image classifiers across its CNN families (plain, residual, grouped, squeeze-excite,
inverted-residual, NAS, dense, dual-path, CSP, re-parameterised, ConvNeXt) and hybrids
(EfficientFormer, MobileViT, EdgeNeXt, FastViT, EfficientViT, PoolFormer), small variants."""


def all_models() -> list[str]:
    """Zoo names (prefixed ``zoo:`` only where torchvision shares the name) and torchvision
    names (``torchvision:`` where the zoo shadows them)."""
    tv = torchvision_names()
    return ZOO.names() + [f"torchvision:{n}" if n in ZOO else n for n in tv]


UNPRUNED_KINDS = {"coupled through": "opaque op", "cannot map": "opaque op",
                  "breaks the forward": "breaks forward", "grouped convolution": "grouped conv",
                  "tied irregularly": "irregular tie"}


def left_unpruned(messages: list[str]) -> dict[str, int]:
    """Channel groups unit discovery left unpruned, counted by kind, from its warnings."""
    counts: dict[str, int] = {}
    for msg in messages:
        if not msg.startswith("left unpruned: "):
            continue
        for entry in msg.removeprefix("left unpruned: ").split("; "):
            kind = next((k for key, k in UNPRUNED_KINDS.items() if key in entry), "other")
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def check_model(name: str, round_to: int = 8, seed: int = 0) -> dict[str, Any]:
    """Run the six stages on one model; returns ``{"status": "pass"|"fail", "stage", ...}``."""
    tv_name = name.removeprefix("torchvision:")
    size, extra = SIZES.get(tv_name, (DEFAULT_SIZE, {}))
    cin = 3
    if name in ZOO_INPUT:
        cin, size = ZOO_INPUT[name]
    recipe = {"name": name, "kwargs": {"in_channels": cin, "num_classes": 10, **extra}}
    row: dict[str, Any] = {"model": name, "input": [cin, size, size], "status": "fail"}
    stage = "build"
    t0 = time.perf_counter()
    try:
        torch.manual_seed(seed)
        model = build_model(recipe).eval()
        stage = "env"
        data = synthetic(in_channels=cin, image_size=size, num_classes=10, train_size=8,
                         test_size=2, val_size=4)
        t_env = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            env = ChannelPruningEnv(model, data, EnvConfig(
                budget=BUDGET, round_to=round_to, val_size=4, eval_batch=4, recalib_batches=1,
                recalib_batch_size=4, fill_budget=False))
        row["left_unpruned"] = left_unpruned([str(w.message) for w in caught])
        row["env_s"] = round(time.perf_counter() - t_env, 2)  # unit discovery, mostly
        row["units"] = env.n_units
        row["grouped_units"] = sum(u.channel_groups > 1 for u in env.units)
        row["params"] = env.cost.original["params"]
        row["macs"] = env.cost.original["flops"]
        stage = "episode"
        info = env.play(random_policy(env, seed=seed), seed=seed)
        row["grouped_units_cut"] = sum(u.channel_groups > 1 and
                                       info["keep_ratios"][u.name] < 1 for u in env.units)
        pruned = env.pruned_model().eval()
        stage = "forward"
        x = torch.randn(2, cin, size, size)
        with torch.no_grad():
            out = pruned(x)
        if tuple(out.shape) != (2, 10) or not torch.isfinite(out).all():
            raise AssertionError(f"output shape {tuple(out.shape)}, finite "
                                 f"{bool(torch.isfinite(out).all())}")
        stage = "macs"
        row["macs_kept"] = info["macs"] / info["original_macs"]
        row["predicted_macs_error"] = (info["predicted_macs"] - info["macs"]) / info["macs"]
        if info["predicted_macs"] != info["macs"]:
            raise AssertionError(f"predicted {info['predicted_macs']} MACs, recounted "
                                 f"{info['macs']}")
        if row["macs_kept"] > BUDGET + 1e-9:
            raise AssertionError(f"{row['macs_kept']:.4f} of the MACs kept, budget {BUDGET}")
        stage = "export"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pruned.pt"
            save_checkpoint(path, pruned, recipe, "synthetic", pruning=info["pruning"],
                            input_shape=(cin, size, size))
            rebuilt = model_from_checkpoint(load_checkpoint(path)).eval()
        with torch.no_grad():
            same = torch.equal(rebuilt(x), out)
        if not same:
            raise AssertionError("the rebuilt model's output differs from the pruned model's")
        row.update(status="pass", stage="done")
    except Exception as exc:  # a sweep records every failure and goes on
        row.update(stage=stage, error=first_line(exc, 300))
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def run_isolated(name: str, timeout_s: float, threads: int,
                 memory_gib: float = 12.0) -> dict[str, Any]:
    """:func:`check_model` in a child process; a crash or time-out becomes a failed row.

    The child's address space is capped at ``memory_gib``: a model whose dependency graph
    explodes fails with MemoryError in its own process instead of drawing the machine's OOM
    killer onto the sweep."""
    limit = int(memory_gib * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "bench.bench_sweep", "--one", name, "--threads", str(threads)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout_s, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"model": name, "status": "fail", "stage": "timeout",
                "error": f"no result within {timeout_s:.0f} s", "seconds": round(timeout_s, 2)}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": name, "status": "fail", "stage": "crash",
            "error": f"exit {proc.returncode}: {tail}"[:300],
            "seconds": round(time.perf_counter() - t0, 2)}


def main() -> None:
    """Sweep the models (in parallel child processes), print and write the results."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma-separated names (default: all)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument("--timm", action="store_true",
                   help=f"the {len(TIMM_SAMPLE)} timm models of TIMM_SAMPLE (timm:NAME)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1)))
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per model")
    p.add_argument("--memory-gib", type=float, default=12.0, help="address space per model")
    p.add_argument("--rerun-failed", action="store_true",
                   help="after a fix: rerun the models that failed (or were not reached) in "
                        "bench/results/sweep.json (sweep_timm.json with --timm), or those of "
                        "them in --models, and update their rows")
    p.add_argument("--update", action="store_true",
                   help="rerun the --models (passed or not) in bench/results/sweep.json and "
                        "update their rows (after a change to how they are pruned)")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        with tempfile.TemporaryDirectory() as cache:  # discovery timed and checked, not cached
            os.environ["AMC_CACHE_DIR"] = cache
            print(json.dumps(check_model(args.one)), flush=True)
        return
    timm = [f"timm:{n}" for n in TIMM_SAMPLE]
    names = (args.models.split(",") if args.models else QUICK if args.quick else
             timm if args.timm else all_models())
    threads = max(1, args.threads // args.workers)
    name = "sweep_quick" if args.quick else "sweep_timm" if args.timm else \
        "sweep_subset" if args.models else "sweep"
    rows: list[dict[str, Any]] = []  # a rerun starts from the previous rows
    todo, extra = names, {}
    if args.rerun_failed or args.update:
        name = "sweep_timm" if args.timm else "sweep"
        prev = json.loads((RESULTS / f"{name}.json").read_text())
        rows = prev["models"]
        names = [r["model"] for r in rows] + prev["not_run"]
        todo = [r["model"] for r in rows if r["status"] != "pass"] + prev["not_run"]
        if args.update:
            if not args.models:
                p.error("--update needs --models")
            todo = [n for n in args.models.split(",") if n in names]
        elif args.models:
            todo = [n for n in todo if n in args.models.split(",")]
        extra = {"command": prev["command"],
                 "wall_s_first_run": prev.get("wall_s_first_run", prev["wall_s"]),
                 "first_run": prev.get("first_run") or {
                     k: prev[k] for k in ("workers", "threads_per_model", "timeout_s",
                                          "memory_gib")},
                 "reruns": [*prev.get("reruns", []),
                            {"command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M"),
                             "models": todo}]}
    t0 = time.perf_counter()

    def save() -> Path:
        # Rewritten after every model, so an interrupted sweep keeps what it finished.
        done = {r["model"] for r in rows}
        return write_result(name, {
            "budget": BUDGET, "round_to": 8, "workers": args.workers,
            "threads_per_model": threads, "timeout_s": args.timeout,
            "memory_gib": args.memory_gib, "passed": sum(r["status"] == "pass" for r in rows),
            "total": len(rows), "complete": len(rows) == len(names),
            "not_run": [n for n in names if n not in done],
            "wall_s": round(time.perf_counter() - t0, 1), "models": rows, **extra})

    with ThreadPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_isolated, n, args.timeout, threads, args.memory_gib)
                   for n in todo]
        for future in as_completed(futures):
            row = future.result()
            rows = [r for r in rows if r["model"] != row["model"]] + [row]
            rows.sort(key=lambda r: names.index(r["model"]))
            what = row.get("error", f"{row.get('units')} units, MACs kept "
                                    f"{row.get('macs_kept', 0):.3f}")
            print(f"{row['model']:<28} {row['status']:<4} {row['seconds']:>7.1f} s  {what}",
                  flush=True)
            save()
    print(f"{sum(r['status'] == 'pass' for r in rows)} of {len(rows)} models pass")
    print(f"wrote {save()}")


if __name__ == "__main__":
    main()
