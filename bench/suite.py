"""The benchmark suite: every scenario in order, then ``BENCHMARKS.md`` regenerated.

    python -m bench.suite            # full: ResNet-20 on Fashion-MNIST (hours on 2 CPU cores)
    python -m bench.suite --quick    # smoke run on the small CNN (minutes); results go to
                                     # runs/bench-quick/results, BENCHMARKS.md is left alone

Scenarios (the CPU rows of BENCHMARKS.md, each with the command that produced its row): the
3-epoch ResNet-20 the rows use, environment throughput, channel-selection criteria, search quality
(every searched strategy at 2 seeds and every heuristic; default criterion and with
reconstruction), the speed levers, parallel workers, the difficulty ladder (amc-compare at
50/30/20% MACs, 2 search seeds, 3 fine-tune seeds; default criterion and with reconstruction;
ResNet-56 at 50% and MobileNetV2 at 50/30%), a
budget-conditioned agent at a budget it was not searched at (one trained across ResNet-20
and ResNet-32, zero-shot and warm-started on ResNet-56), measured speed-ups, latency
predictors, latency-target searches, equal measured latency on the CPU, search-vs-final
correlation, the ResNet-50 projection, the any-model sweeps, the fault and bad-input counts, and
``make demo`` from a fresh clone. The GPU
rows come from ``bench/device_session.sh``. A step whose output already exists is skipped in the
full run (the trained checkpoint, finished searches; a finished comparison is re-read), so an
interrupted suite resumes.
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
    return _full()


E3 = "runs/s5/resnet20_e3.pt"
"""The 3-epoch ResNet-20 most rows use (an easy-to-recover 10-epoch one hides differences)."""
B10 = "runs/base_resnet20.pt"
"""The 10-epoch ResNet-20 (93.7% test): the base the search-quality accuracy targets were set on."""
MBV2 = "runs/s21/mobilenetv2_e3.pt"
"""MobileNetV2 (small-input zoo variant), 3 epochs: the equal-latency rows' second model and a
ladder model."""
R56 = "runs/conditioned/resnet56.pt"
"""ResNet-56, 3 epochs like :data:`E3` (trained by :func:`_across_models`): the zero-shot target
and the ladder's deeper model."""
P20 = "runs/s13/plain20_e3.pt"
"""The plain (no shortcut) 20-layer network of the criteria table, trained like :data:`E3`."""
SEARCHED = ("amc-ddpg", "random", "tpe", "cmaes")
HEURISTICS = ("uniform", "sensitivity", "tp-uniform", "tp-global")
LADDER = ("0.5", "0.3", "0.2")


def _search_quality(criterion: str, episodes: int, threads: int, work: str, tag: str = "",
                    ckpt: str = E3, searched: tuple[str, ...] = SEARCHED,
                    heuristics: tuple[str, ...] = HEURISTICS
                    ) -> list[tuple[str, list[str], Path | None]]:
    """Each searched strategy at 2 seeds and each heuristic, at 50% MACs (bench_search)."""
    base = ["bench.bench_search", "--checkpoint", ckpt, "--budget", "0.5", "--episodes",
            str(episodes), "--threads", str(threads), "--criterion", criterion, "--work", work,
            *(["--tag", tag] if tag else [])]
    out: list[tuple[str, list[str], Path | None]] = [
        (f"search {a} s{seed}{tag}", [*base, "--agent", a, "--seed", str(seed)],
         Path(work) / f"{a}_s{seed}{tag}" / "policy.json")
        for a in searched for seed in (0, 1)]
    return out + [(f"search {h}{tag}", [*base, "--agent", h], None) for h in heuristics]


def _ladder(criterion: str = "group-l2", episodes: int = 300, threads: int = 2,
            work: str = "runs/ladder/r20_b{budget}_s{seed}", ckpt: str = E3,
            budgets: tuple[str, ...] = LADDER) -> list[tuple[str, list[str], Path | None]]:
    """amc-compare of checkpoint ``ckpt`` at each budget and 2 search seeds, 3 fine-tune seeds
    (bench_compare re-reads a finished comparison and its finished searches, so a rerun only
    redoes what is missing); ``work`` is formatted with ``budget``, ``digits`` (the budget
    without its dot) and ``seed``."""
    model = "" if ckpt == E3 else f" {Path(ckpt).stem}"
    out: list[tuple[str, list[str], Path | None]] = []
    for budget in budgets:
        for seed in (0, 1):
            names = ["amc-ddpg", "random", "tpe"] + (
                ["uniform", "sensitivity", "global", "tp-uniform", "tp-global"] if seed == 0
                else [])
            out.append((f"ladder{model} {criterion} {budget} s{seed}",
                        ["bench.bench_compare", "--checkpoint", ckpt, "--budget", budget,
                         "--episodes", str(episodes), "--finetune-seeds", "3", "--search-seed",
                         str(seed), "--strategies", ",".join(names), "--work",
                         work.format(budget=budget, digits=budget.replace(".", ""), seed=seed),
                         "--", "--criterion", criterion, "--finetune-images", "10000",
                         "--threads", str(threads)], None))
    return out


def _transfer() -> list[tuple[str, list[str], Path | None]]:
    """Search once, apply many on the CPU: budget-conditioned agents on the ResNet-20 over
    budgets 0.3:0.6 (300 and 900 episodes), then their policies at 0.35 against a 300-episode
    search at 0.35 (one agent across models: :func:`_across_models`; ResNet-110 and the GPU
    rows: device_session.sh conditioned)."""
    agent, long = "runs/s14/cond_agent", "runs/s15/cond900"
    return [
        ("conditioned agent", ["amc_agent.cli.search", "--checkpoint", E3, "--budget",
                               "0.3:0.6", "--episodes", "300", "--threads", "1",
                               "--no-progress", "--wandb-mode", "disabled", "--out", agent],
         Path(agent) / "greedy.json"),
        ("unseen budget 0.35", ["bench.bench_compare", "--checkpoint", E3, "--budget", "0.35",
                                "--episodes", "300", "--finetune-seeds", "3", "--strategies",
                                "amc-ddpg,transfer", "--variant", "unseen", "--work",
                                "runs/s14/unseen_b035", "--", "--transfer", agent,
                                "--finetune-images", "10000", "--threads", "1"], None),
        # The same agent trained three times as long (session 14's was still improving).
        ("conditioned agent 900", ["amc_agent.cli.search", "--checkpoint", E3, "--budget",
                                   "0.3:0.6", "--episodes", "900", "--threads", "1",
                                   "--no-progress", "--wandb-mode", "disabled", "--out", long],
         Path(long) / "greedy.json"),
        ("unseen budget 0.35, 900 episodes",
         ["bench.bench_compare", "--checkpoint", E3, "--budget", "0.35", "--episodes", "300",
          "--finetune-seeds", "3", "--strategies", "amc-ddpg,transfer", "--variant",
          "unseen900", "--work", "runs/s15/unseen_b035_900", "--", "--transfer", long,
          "--finetune-images", "10000", "--threads", "1"], None),
        # The equal-effort control: a search at 0.35 as long as the 900-episode actor's training.
        ("unseen budget 0.35, 900-episode search",
         ["bench.bench_compare", "--checkpoint", E3, "--budget", "0.35", "--episodes", "900",
          "--finetune-seeds", "3", "--strategies", "amc-ddpg,transfer", "--variant",
          "unseen900s", "--work", "runs/s16/unseen_b035_s900", "--", "--transfer", long,
          "--finetune-images", "10000", "--threads", "1"], None),
        *_across_models(),
    ]


def _across_models() -> list[tuple[str, list[str], Path | None]]:
    """One budget-conditioned agent over ResNet-20 and ResNet-32, at an unseen budget on
    ResNet-20 and zero-shot on ResNet-56 (against uniform, global, the best of 50 random
    policies and a from-scratch search there), and a warm start on ResNet-56 from it."""
    mm, r32, r56 = "runs/s16/mm900", "runs/conditioned/resnet32.pt", R56
    train = [(f"train {m}", ["bench.bench_train", "--model", m, "--dataset", "fashion-mnist",
                             "--epochs", "3", "--no-progress", "--out", path, "--threads", "1",
                             "--tag", "_e3"], Path(path))
             for m, path in (("resnet32", r32), ("resnet56", r56))]
    ft = ["--finetune-images", "10000", "--threads", "1"]
    return [
        *train,
        ("multi-model agent", ["amc_agent.cli.search", "--checkpoint", E3, "--checkpoint", r32,
                               "--budget", "0.3:0.6", "--episodes", "900", "--threads", "1",
                               "--no-progress", "--wandb-mode", "disabled", "--out", mm],
         Path(mm) / "greedy.json"),
        ("multi-model agent, unseen budget 0.35",
         ["bench.bench_compare", "--checkpoint", E3, "--budget", "0.35", "--episodes", "300",
          "--finetune-seeds", "3", "--strategies", "amc-ddpg,transfer", "--variant", "unseen_mm",
          "--work", "runs/s16/unseen_b035_mm", "--", "--transfer", mm, *ft], None),
        *[(f"zero-shot resnet56 {b}",
           ["bench.bench_compare", "--checkpoint", r56, "--budget", b, "--episodes", "50",
            "--variant", "zeroshot", "--finetune-seeds", "3", "--strategies",
            "transfer,uniform,global,random", "--work", f"runs/s16/zs_r56_b{b}", "--",
            "--transfer", mm, *ft], None) for b in ("0.5", "0.3")],
        ("scratch resnet56 0.5",
         ["bench.bench_compare", "--checkpoint", r56, "--budget", "0.5", "--episodes", "300",
          "--finetune-seeds", "3", "--strategies", "amc-ddpg", "--variant", "scratch", "--work",
          "runs/s16/scratch_r56_b0.5", "--", *ft], None),
        ("warm start resnet56 0.5",
         ["bench.bench_warmstart", "--checkpoint", r56, "--actor", mm, "--budget", "0.5",
          "--episodes", "300", "--work", "runs/s16/warm_r56_b0.5", "--scratch",
          "runs/s16/scratch_r56_b0.5/search-amc-ddpg", "--", "--threads", "1"], None),
        *_across_depths(r32, r56, ft),
    ]


def _across_depths(r32: str, r56: str, ft: list[str]) -> list[tuple[str, list[str], Path | None]]:
    """The multi-model agent seeing each unit's raw share of the MACs (``--observation
    amc+share``), so the depth of the network is in its state: over ResNet-20 and -32, then
    with a deeper member (ResNet-44), each zero-shot on ResNet-56."""
    r44 = "runs/conditioned/resnet44.pt"
    share = ["--observation", "amc+share", "--threads", "1", "--no-progress", "--wandb-mode",
             "disabled"]
    out: list[tuple[str, list[str], Path | None]] = [
        ("train resnet44", ["bench.bench_train", "--model", "resnet44", "--dataset",
                            "fashion-mnist", "--epochs", "3", "--no-progress", "--out", r44,
                            "--threads", "1", "--tag", "_e3"], Path(r44))]
    # The second comparison reuses the first one's random search (copy its search-random
    # folder into the work folder first: bench_compare resumes it instead of searching again).
    for tag, mm, members, episodes, names in (
            ("share", "runs/s18/mm900_share", [E3, r32], "900", "transfer,uniform,random"),
            ("mm3", "runs/s18/mm3_share", [E3, r32, r44], "600", "transfer,random")):
        out += [
            (f"multi-model agent, amc+share, {len(members)} models",
             ["amc_agent.cli.search", *[a for m in members for a in ("--checkpoint", m)],
              "--budget", "0.3:0.6", "--episodes", episodes, *share, "--out", mm],
             Path(mm) / "greedy.json"),
            (f"zero-shot resnet56 0.5, amc+share, {len(members)} models",
             ["bench.bench_compare", "--checkpoint", r56, "--budget", "0.5", "--episodes", "50",
              "--variant", f"zeroshot_{tag}", "--finetune-seeds", "3", "--strategies",
              names, "--work", f"runs/s18/zs_{tag}_r56_b0.5", "--",
              "--transfer", mm, *ft], None)]
    # The 3-model actor at the harder budget too, with uniform beside it.
    out.append(("zero-shot resnet56 0.3, amc+share, 3 models",
                ["bench.bench_compare", "--checkpoint", r56, "--budget", "0.3", "--episodes",
                 "50", "--variant", "zeroshot_mm3", "--finetune-seeds", "3", "--strategies",
                 "transfer,random,uniform", "--work", "runs/s19/zs_mm3_r56_b0.3", "--",
                 "--transfer", "runs/s18/mm3_share", *ft], None))
    return out


def _equal_latency_cpu() -> list[tuple[str, list[str], Path | None]]:
    """Equal measured latency on this CPU as deployed (onnxruntime, and eager PyTorch), batch
    64, search seeds 0 and 1, and seeded with uniform where uniform won (GPU rows:
    device_session.sh equal-latency). Latency benchmarks want the machine to themselves."""
    return [(f"equal latency {backend} b64 {budget} s{seed}",
             ["bench.bench_equal_latency", "--checkpoint", E3, "--backend", backend, "--batch",
              "64", "--budget", budget, "--episodes", "100", "--finetune-seeds", "3",
              "--finetune-images", "10000", "--search-seed", str(seed), "--work",
              f"runs/s19/eq_{backend}_b64_{budget}_s{seed}"], None)
            for backend, budget in (("onnxruntime", "0.5"), ("onnxruntime", "0.7"),
                                    ("eager", "0.6")) for seed in (0, 1)] + [
        # Where uniform wins: both searches seeded with it, so their re-scoring weighs it too.
        (f"equal latency onnxruntime b64 0.5 seeded s{seed}",
         ["bench.bench_equal_latency", "--checkpoint", E3, "--backend", "onnxruntime", "--batch",
          "64", "--budget", "0.5", "--episodes", "100", "--finetune-seeds", "3",
          "--finetune-images", "10000", "--search-seed", str(seed), "--seed-policies", "uniform",
          "--work", f"runs/s22/eq_ort_b64_0.5_seeded_s{seed}"], None) for seed in (0, 1)] + [
        (f"equal latency onnxruntime b64 0.5 undominated s{seed}",
         ["bench.bench_equal_latency", "--checkpoint", E3, "--backend", "onnxruntime", "--batch",
          "64", "--budget", "0.5", "--episodes", "100", "--finetune-seeds", "3",
          "--finetune-images", "10000", "--search-seed", str(seed), "--drop-dominated-counts",
          "--work", f"runs/s22/eq_ort_b64_0.5_undominated_s{seed}"], None) for seed in (0, 1)]


def _full() -> list[tuple[str, list[str], Path | None]]:
    """The CPU rows of BENCHMARKS.md (GPU rows: bench/device_session.sh)."""
    b03 = "runs/ladder/r20_b0.3_s0"
    return [
        ("train", ["bench.bench_train", "--model", "resnet20", "--dataset", "fashion-mnist",
                   "--epochs", "3", "--no-progress", "--out", E3, "--tag", "_e3"], Path(E3)),
        ("env", ["bench.bench_env", "--checkpoint", E3, "--episodes", "20"], None),
        # Reconstruction's captures with and without prefix reuse (one thread: beside a ladder).
        *[(f"env reconstruct {Path(ckpt).stem}",
           ["bench.bench_env", "--checkpoint", ckpt, "--episodes", str(n), "--criterion",
            "group-l2+reconstruct", "--budget", "0.3", "--round-to", "8", "--threads", "1"], None)
          for ckpt, n in ((E3, 10), (MBV2, 6))],
        ("criteria", ["bench.bench_criteria", "--checkpoint", E3, "--budget", "0.5",
                      "--round-to", "1"], None),
        ("train plain20", ["bench.bench_train", "--model", "plain20", "--dataset",
                           "fashion-mnist", "--epochs", "3", "--no-progress", "--out", P20,
                           "--threads", "1", "--tag", "_e3"], Path(P20)),
        ("criteria plain20", ["bench.bench_criteria", "--checkpoint", P20, "--budget", "0.5",
                              "--round-to", "1", "--threads", "1"], None),
        *_search_quality("group-l2", 300, 2, "runs/s6/quality"),
        ("search amc-ddpg seeded", ["bench.bench_search", "--checkpoint", E3, "--agent",
                                    "amc-ddpg", "--episodes", "300", "--threads", "2", "--work",
                                    "runs/s6/quality", "--seed-policies", "uniform,tp-global",
                                    "--tag", "_seeded"],
         Path("runs/s6/quality/amc-ddpg_s0_seeded/policy.json")),
        *_search_quality("group-l2+reconstruct", 200, 1, "runs/rec", "_rec"),
        # The accuracy targets at 50% MACs were set on the 10-epoch base, not on E3.
        ("train 10 epochs", ["bench.bench_train", "--model", "resnet20", "--dataset",
                             "fashion-mnist", "--epochs", "10", "--out", B10, "--no-progress"],
         Path(B10)),
        *_search_quality("group-l2", 300, 2, "runs/s17/q10", "_b10", B10, SEARCHED,
                         ("uniform", "tp-uniform", "tp-global")),
        *_search_quality("group-l2+reconstruct", 200, 2, "runs/s17/q10", "_b10_rec", B10,
                         ("amc-ddpg",), ("uniform", "tp-uniform", "tp-global")),
        # The latency table refitted on the search's own episodes, and kept as built.
        *[(f"latency_target b64 {v}", ["bench.bench_latency_target", "--checkpoint", B10,
                                        "--budget", "0.6", "--latency-batch", "64", "--episodes",
                                        "100", "--work", f"runs/s17/lt_b64_{v}", "--tag",
                                        f"_b10_{v}", *flag], None)
          for v, flag in (("refit", []), ("norefit", ["--no-latency-refit"]))],
        ("search levers", ["bench.bench_search", "--checkpoint", E3, "--agent", "amc-ddpg",
                           "--episodes", "300", "--threads", "2", "--round-to", "1",
                           "--agent-kwargs", "{sigma_decay: 0.95}", "--work", "runs/s6/speed",
                           "--tag", "_levers"], None),
        ("search plain", ["bench.bench_search", "--checkpoint", E3, "--agent", "amc-ddpg",
                          "--episodes", "300", "--threads", "2", "--round-to", "1",
                          "--agent-kwargs", "{sigma_decay: 0.95}", "--work", "runs/s6/speed",
                          "--tag", "_plain", "--plain-scoring", "--no-cache"], None),
        ("workers", ["bench.bench_workers", "--checkpoint", E3, "--episodes", "100",
                     "--seeds", "0,1", "--", "--rescore-top", "0"], None),
        ("workers quality", ["bench.bench_workers", "--checkpoint", E3, "--agent", "amc-ddpg",
                             "--episodes", "300", "--seeds", "0,1", "--variants",
                             "1-local,2-local", "--tag", "_quality", "--work",
                             "runs/bench_workers_q"], None),
        *_ladder(),
        ("ladder heuristics 0.5", ["bench.bench_compare", "--checkpoint", E3, "--budget", "0.5",
                                   "--strategies", "uniform,global", "--finetune-seeds", "3",
                                   "--tag", "heur", "--work", "runs/s14/heur_b05", "--",
                                   "--criterion", "group-l2", "--finetune-images", "10000",
                                   "--threads", "1"], None),
        *_ladder("group-l2+reconstruct", 200, 1, "runs/s14/rec_b{digits}_s{seed}"),
        *_transfer(),
        *[(f"latency {backend}", ["bench.bench_latency", "--checkpoint", E3, "--round-to", "8",
                                  "--budgets", "0.5,0.3", "--policy",
                                  f"{b03}/policy-amc-ddpg.json", "--threads", "2",
                                  "--backend", backend], None)
          for backend in ("eager", "onnxruntime")],
        # 60 policies: the refitted table's error counts the 50 after the refit's first ten.
        *[(f"latency_predictor {backend} b{b}",
           ["bench.bench_latency_predictor", "--checkpoint", E3, "--batch", str(b),
            "--backend", backend, "--policies", "60", "--threads", "2"], None)
          for backend in ("eager", "onnxruntime") for b in (1, 64)],
        ("heap b64", ["bench.bench_heap", "--checkpoint", E3, "--batch", "64"], None),
        *[(f"latency_target b{b}", ["bench.bench_latency_target", "--checkpoint", E3,
                                    "--budget", budget, "--latency-batch", str(b),
                                    "--episodes", "100", "--work",
                                    f"runs/latency_target_b{b}"], None)
          for b, budget in ((1, "0.7"), (64, "0.6"))],
        *[(f"latency_target b64 {backend} {budget} s{seed}",
           ["bench.bench_latency_target", "--checkpoint", E3, "--budget", budget,
            "--latency-batch", "64", "--backend", backend, "--episodes", "100", "--seed",
            str(seed), "--work", f"runs/latency_target_b64_{backend}_s{seed}"], None)
          for backend, budget in (("eager", "0.6"), ("onnxruntime", "0.7")) for seed in (0, 1)],
        *_equal_latency_cpu(),
        ("train mobilenetv2", ["bench.bench_train", "--model", "mobilenetv2", "--dataset",
                               "fashion-mnist", "--epochs", "3", "--no-progress", "--out", MBV2,
                               "--threads", "2", "--tag", "_e3", "--resume"], Path(MBV2)),
        ("timing spread", ["bench.bench_timing_spread", "--checkpoint", MBV2, "--checkpoint", E3,
                           "--backend", "onnxruntime", "--batch", "64", "--threads", "1,2"],
         None),
        *[(f"equal latency mobilenetv2 onnxruntime b64 0.5 s{seed}",
           ["bench.bench_equal_latency", "--checkpoint", MBV2, "--backend", "onnxruntime",
            "--batch", "64", "--budget", "0.5", "--episodes", "100", "--finetune-seeds", "3",
            "--finetune-images", "10000", "--strict-round", "--search-seed", str(seed),
            "--work", f"runs/s21/eqlat_mbv2_ort_0.5_strict_s{seed}"], None)
          for seed in (0, 1)],
        # One thread: MobileNetV2's onnxruntime timings spread 1.11x there, 1.26x at two.
        *[(f"equal latency mobilenetv2 onnxruntime b64 0.5 1 thread s{seed}",
           ["bench.bench_equal_latency", "--checkpoint", MBV2, "--backend", "onnxruntime",
            "--batch", "64", "--budget", "0.5", "--episodes", "100", "--finetune-seeds", "3",
            "--finetune-images", "10000", "--strict-round", "--search-seed", str(seed),
            "--threads", "1", "--resume", "--work",
            f"runs/s2{2 + seed}/eqlat_mbv2_ort_0.5_strict_t1_s{seed}"], None)
          for seed in (0, 1)],
        # The same with the latency table's MAC term (amc_agent.env.latency_table FIT_TERMS).
        *[(f"equal latency mobilenetv2 onnxruntime b64 0.5 1 thread mac s{seed}",
           ["bench.bench_equal_latency", "--checkpoint", MBV2, "--backend", "onnxruntime",
            "--batch", "64", "--budget", "0.5", "--episodes", "100", "--finetune-seeds", "3",
            "--finetune-images", "10000", "--strict-round", "--search-seed", str(seed),
            "--threads", "1", "--resume", "--tag", "_mac", "--work",
            f"runs/s23/eqlat_mbv2_ort_0.5_strict_t1_mac_s{seed}"], None)
          for seed in (0, 1)],
        *_ladder(work="runs/s23/ladder_r56_b{budget}_s{seed}", ckpt=R56, budgets=("0.5",)),
        *_ladder(work="runs/s23/ladder_mbv2_b{budget}_s{seed}", ckpt=MBV2,
                 budgets=("0.5", "0.3")),
        # amc-ddpg trailed tpe by 20 points before fine-tuning at 30%: 70 more learning episodes.
        *[(f"ladder mobilenetv2_e3 group-l2 0.3 s{seed} warmup30",
           ["bench.bench_compare", "--checkpoint", MBV2, "--budget", "0.3", "--episodes", "300",
            "--finetune-seeds", "3", "--search-seed", str(seed), "--strategies", "amc-ddpg",
            "--variant", "warmup30", "--work", f"runs/s25/ladder_mbv2_b0.3_s{seed}_warmup30",
            "--", "--criterion", "group-l2", "--finetune-images", "10000", "--threads", "2",
            "--agent-kwargs", "{warmup_episodes: 30}"], None) for seed in (0, 1)],
        ("correlation", ["bench.bench_correlation", "--checkpoint", E3, "--search",
                         f"{b03}/search-amc-ddpg", "--top", "5", "--spread", "5",
                         "--finetune-epochs", "1", "--finetune-images", "10000",
                         "--finetune-seeds", "2", "--short-finetune", "2000", "--tag",
                         "_b03_short"], None),
        ("scale", ["bench.bench_scale", "--device", "cpu", "--batch", "16"], None),
        ("sweep", ["bench.bench_sweep", "--workers", "2", "--threads", "2", "--timeout", "300",
                   "--memory-gib", "11"], None),
        ("sweep timm", ["bench.bench_sweep", "--timm", "--workers", "2", "--threads", "2",
                        "--timeout", "300", "--memory-gib", "8"], None),
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
