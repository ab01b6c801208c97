"""The latency-predictor table's correlation column: it tells a reader whether the policies'
latencies differ measurably at all (repeat r) and whether the table ranks them (table r)."""

from __future__ import annotations

from typing import Any

from bench.report_latency import (
    equal_latency_section,
    heap_section,
    latency_predictor_section,
    latency_target_section,
    timing_spread_section,
)


def _result(policies: list[dict[str, float]]) -> dict[str, Any]:
    err = {"median_abs_error": 0.05, "p90_abs_error": 0.1, "max_abs_error": 0.2}
    return {"benchmark": "latency_predictor_resnet20_eager_b1", "backend": "eager", "batch": 1,
            "device_name": "cpu", "policies": policies, "table_build_s": 3.0,
            "errors": {"table": err, "line": err, "repeat": err}, "command": "c",
            "machine": {"cpu": "x", "cores": 2, "torch": "t", "torch_threads": 2}, "date": "d"}


def test_correlations_follow_the_stored_ratios() -> None:
    m = [0.5, 0.6, 0.7, 0.8]
    rows = [{"measured_ratio": x, "repeat_ratio": x + 0.01, "table_ratio": 1.3 - x,
             "line_ratio": x} for x in m]
    row = next(ln for ln in latency_predictor_section({"latency_predictor_x": _result(rows)})
           if ln.startswith("| ") and "resnet20" in ln)
    assert "| 1.00 / -1.00 |" in row  # repeat tracks the measurement, the table inverts it
    old = [{k: v for k, v in r.items() if k != "repeat_ratio"} for r in rows]
    row = next(ln for ln in latency_predictor_section({"latency_predictor_x": _result(old)})
           if ln.startswith("| ") and "resnet20" in ln)
    assert "| - / -1.00 |" in row  # rows from before the repeat measurement
    assert row.count(" | ") == 11 and "| 5.0% (10.0%) | - | 5.0% (10.0%) | 5.0% (10.0%) |" in row
    refitted = _result(rows)
    refitted["errors"]["refit"] = {"median_abs_error": 0.031, "p90_abs_error": 0.062,
                                   "max_abs_error": 0.1, "policies": 40}
    row = next(ln for ln in latency_predictor_section({"latency_predictor_x": refitted})
               if ln.startswith("| ") and "resnet20" in ln)
    assert "| 5.0% (10.0%) | 3.1% (6.2%; 40) | 5.0% (10.0%) |" in row  # table, refitted, line


def _equal(seed: int, accs: dict[str, float]) -> dict[str, Any]:
    """An equal-latency result at one search seed with these mean accuracies after FT."""
    ls = {"share_over_budget": 0.1, "median_abs_error": 0.05}
    return {"model": "resnet20", "backend": "onnxruntime", "batch": 64, "budget": 0.5,
            "device_name": None, "search_seed": seed, "episodes": 10, "flops_budget": 0.4,
            "finetune": {"epochs": 1, "images": 100, "lr": 0.01, "seeds": [0, 1]},
            "latency_search": {"predictor": ls}, "command": "c",
            "search_commands": {"latency": "l", "flops": "f"},
            "machine": {"cpu": "x", "cores": 2, "torch": "t", "torch_threads": 2}, "date": "d",
            "differences": {}, "strategies": {n: {
                "probes": [], "scale": 1.0, "latency_ratio": 0.5, "met": True, "macs_kept": 0.4,
                "test_acc_before_finetune": 0.5, "test_acc": a, "test_acc_std": 0.001}
                for n, a in accs.items()}}


def test_equal_latency_is_judged_over_search_seeds() -> None:
    """Each search seed's mean is one sample: a steady lead over two seeds counts, a lead one
    seed reverses does not, and a setting run at one seed gets no pooled line."""
    runs = {"equal_latency_a_s0": _equal(0, {"latency-search": 0.880, "flops-search": 0.860,
                                            "uniform": 0.890}),
            "equal_latency_a_s1": _equal(1, {"latency-search": 0.882, "flops-search": 0.861,
                                            "uniform": 0.870})}
    lines = equal_latency_section(runs)
    assert sum(ln.startswith("| ") and "| onnxruntime |" in ln for ln in lines) == 6
    assert any("| adaptive | 1 | flops-search |" in ln for ln in lines)  # grid, seed columns
    pooled = [ln for ln in lines if ln.startswith("Over search seeds 0, 1")]
    assert len(pooled) == 1 and "best: latency-search" in pooled[0]
    assert "flops-search 86.05% ± 0.07 (-2.05, beyond 2 SE" in pooled[0]
    assert "uniform 88.00% ± 1.41 (-0.10, within 2 SE" in pooled[0]
    one = equal_latency_section({"equal_latency_a_s0": runs["equal_latency_a_s0"]})
    assert not any(ln.startswith("Over search seeds") for ln in one)
    # The strict channel grid is another setting: never pooled with the adaptive one.
    mixed = equal_latency_section({**runs, "equal_latency_a_s1": {
        **runs["equal_latency_a_s1"], "strict_round": True}})
    assert any("| strict | 1 | flops-search |" in ln for ln in mixed)
    assert not any(ln.startswith("Over search seeds") for ln in mixed)
    # So are a scanned cut and seeded searches; both seeds of one setting still pool.
    scanned = {k: {**r, "strict_round": True, "cut": "scan", "seed_policies": "uniform"}
               for k, r in runs.items()}
    lines = equal_latency_section({**runs, **{f"{k}_scan": r for k, r in scanned.items()}})
    assert any("| strict, scan, seeded uniform | 1 | flops-search |" in ln for ln in lines)
    pooled = [ln for ln in lines if ln.startswith("Over search seeds 0, 1")]
    assert len(pooled) == 2 and "grid strict, scan, seeded uniform;" in pooled[1]
    coarse = equal_latency_section({"equal_latency_a_s0": {**runs["equal_latency_a_s0"],
                                                           "round_to": 16}})
    assert any("| adaptive, round-to 16 | 0 |" in ln for ln in coarse)
    # A search that declared the heuristic it was seeded with says so in its row.
    declared = {**scanned["equal_latency_a_s0"],
                "latency_search": {**runs["equal_latency_a_s0"]["latency_search"],
                                   "declared_seed_policy": "uniform"}}
    lines = equal_latency_section({"equal_latency_a_s0": {**declared, "drop_dominated": True}})
    assert any("| strict, scan, seeded uniform, undominated | 0 |" in ln for ln in lines)
    threaded = equal_latency_section({"equal_latency_a_s0": {**runs["equal_latency_a_s0"],
                                                            "latency_threads": 1}})
    assert any("| adaptive, timed at 1 thread(s) | 0 |" in ln for ln in threaded)
    assert any("| latency-search (declared its seed uniform) |" in ln for ln in lines)
    assert any("| flops-search |" in ln for ln in lines)


def _target(seed: int, over: float, met: bool, margin: float = 0.9) -> dict[str, Any]:
    """A latency-target search result at one seed."""
    return {"model": "resnet20", "device_name": None, "budget": 0.6, "latency_batch": 64,
            "episodes": 100, "seed": seed, "strict_round": True, "predictor_kind": "table",
            "backend": "onnxruntime", "latency_margin": margin, "latency_refit": True,
            "budget_ms_at_search": 6.0, "checkpoint_sha256": "c4099ae9e58bb091",
            "best": {"accuracy": 0.7, "macs_ratio": 0.4, "latency_ms": 5.9,
                     "predicted_latency_ms": 5.8},
            "remeasured": {"latency_ratio": 0.59, "searched_ms": 5.9, "original_ms": 10.0,
                           "meets_budget": met},
            "predictor": {"median_abs_error": 0.02}, "episodes_over_budget": over,
            "search_check": {"met": met, "candidates": 5},
            "command": "python -m bench.bench_latency_target --checkpoint runs/x.pt",
            "search_command": "amc-search --device cpu", "heap": "glibc",
            "machine": {"cpu": "x", "cores": 2, "torch": "t", "torch_threads": 2}, "date": "d"}


def test_latency_targets_are_counted_over_seeds() -> None:
    """Each run shows its seed and grid; a setting at two or more seeds gets one line counting
    the runs within the episodes-over-budget target and those whose winner met the budget when
    re-measured; another wall margin is another setting."""
    runs = {"latency_target_a": _target(0, 0.07, True),
            "latency_target_a_s1": _target(1, 0.12, False),
            "latency_target_a_m0.95": _target(0, 0.03, True, margin=0.95)}
    lines = latency_target_section(runs)
    rows = [ln for ln in lines if ln.startswith("| ") and "resnet20" in ln]
    assert len(rows) == 3 and "weights c4099ae9" in rows[0]
    assert "| table (onnxruntime) | strict | 0.9 | yes | 64 | 0.60 (6.00 ms) | 1 | 100 |" \
        in rows[1]
    pooled = [ln for ln in lines if ln.startswith("Over seeds")]
    assert len(pooled) == 1  # the 0.95 margin ran at one seed only
    assert "wall margin 0.9" in pooled[0] and "episodes over budget 7%, 12%" in pooled[0]
    assert "at most 10% in 1 of 2" in pooled[0] and "re-measured in 1 of 2" in pooled[0]
    # An eager CPU re-measurement from before the heap regime was fixed is marked.
    old = {k: v for k, v in _target(0, 0.07, True).items() if k != "heap"}
    row = next(ln for ln in latency_target_section({"latency_target_o": {**old,
                                                                          "backend": "eager"}})
               if ln.startswith("| ") and "resnet20" in ln)
    assert "| 0.590 fresh heap (5.90 / 10.00 ms) |" in row
    assert "fresh heap" not in rows[0]  # onnxruntime, and measured with the heap fixed


def test_heap_rows_show_each_process_regime() -> None:
    """One row per process kind, each round's median and page faults in order."""
    blocks = {"fresh": [{"median_ms": 25.1, "faults_per_call": 1536.0},
                        {"median_ms": 26.0, "faults_per_call": 1540.0}],
              "steady heap": [{"median_ms": 12.6, "faults_per_call": 0.0},
                              {"median_ms": 12.7, "faults_per_call": 0.0}]}
    lines = heap_section({"heap_resnet20_b64": {
        "model": "resnet20", "batch": 64, "modes": blocks, "command": "c", "date": "d",
        "machine": {"cpu": "x", "cores": 2, "torch": "t", "torch_threads": 2}}})
    rows = [ln for ln in lines if ln.startswith("| ") and "resnet20" in ln]
    assert rows[0].endswith("| 64 | fresh | 25.10, 26.00 | 1536, 1540 |")
    assert rows[1].endswith("| 64 | steady heap | 12.60, 12.70 | 0, 0 |")
    assert heap_section({}) == []


def test_cuts_timed_after_a_finetune_are_marked() -> None:
    """Runs that cut a strategy after an earlier one's fine-tunes (same process) say so on
    every strategy but the first; runs that cut everything first do not."""
    run = _equal(0, {"latency-search": 0.88, "flops-search": 0.86, "uniform": 0.87})
    rows = [ln for ln in equal_latency_section({"equal_latency_a_s0": run})
            if ln.startswith("| ") and "| onnxruntime |" in ln]
    assert ["(cut after training)" in ln for ln in rows] == [False, True, True]
    rows = [ln for ln in equal_latency_section({"equal_latency_a_s0": {
        **run, "cuts_before_finetune": True}}) if ln.startswith("| ") and "| onnxruntime |" in ln]
    assert not any("(cut after training)" in ln for ln in rows)


def test_timing_spread_rows_per_model_and_thread_count() -> None:
    r = {"backend": "onnxruntime", "batch": 64, "device_name": None, "command": "c",
         "machine": {"cpu": "x", "cores": 2, "torch": "t", "torch_threads": 2}, "date": "d",
         "rows": [{"model": "mobilenetv2", "threads": 1, "median_ms": [78.0, 80.0],
                   "spread": 80 / 78},
                  {"model": "mobilenetv2", "threads": 2, "median_ms": [43.0, 72.6],
                   "spread": 72.6 / 43}]}
    lines = timing_spread_section({"timing_spread_onnxruntime_b64": r})
    assert any("| mobilenetv2 | onnxruntime | 64 | 1 | 78.0, 80.0 | 1.03 |" in ln for ln in lines)
    assert any("| mobilenetv2 | onnxruntime | 64 | 2 | 43.0, 72.6 | 1.69 |" in ln for ln in lines)
    assert timing_spread_section({}) == []


def test_equal_latency_grid_names_the_mac_term() -> None:
    """Runs whose latency table fits a MAC term are another setting than runs before it: the
    grid names it, so they are neither shown nor pooled as the same."""
    old, new = _equal(0, {"uniform": 0.88}), _equal(1, {"uniform": 0.87})
    new["table_terms"] = "layers+elements+macs"
    lines = equal_latency_section({"equal_latency_a_s0": old, "equal_latency_a_s1": new})
    assert any("table with a MAC term" in ln for ln in lines)
    assert not any(ln.startswith("Over search seeds") for ln in lines)
