"""Search-quality findings: a gap counts only beyond the seed spread and beyond the held-out
images' own binomial error (every row is scored on the same images)."""

from __future__ import annotations

from bench import report_search


def _search(acc: float) -> dict:
    return {"rescored_val_acc": acc, "rescore_images": 4000, "episodes_served_from_cache": 0}


def test_a_gap_below_the_splits_binomial_error_is_a_tie() -> None:
    by = {"tpe": [_search(0.9015), _search(0.9028)],   # seed spread 0.09 points
          "ddpg": [_search(0.880), _search(0.882)],
          "uniform": [{"rescored_val_acc": 0.9035, "rescore_images": 4000}]}
    lines = report_search._search_findings(by)
    assert "binomial standard error (0.49 points on 4000 images" in lines[0]
    tpe = next(ln for ln in lines if ln.startswith("- tpe"))
    # -0.135 points is beyond two seed SEs (0.130) but far below what 4000 images resolve.
    assert "within the noise of uniform (-0.13, 2 SE 0.13)" in tpe
    assert "ahead of ddpg (+2.12" in tpe  # two points is a lead
    ddpg = next(ln for ln in lines if ln.startswith("- ddpg"))
    assert ddpg.endswith("behind tpe (-2.12, 2 SE 0.24), uniform (-2.25, 2 SE 0.20).")


def _result(agent: str, seed: int, held: float, test: float | None) -> dict:
    r = {"checkpoint": "runs/x.pt", "checkpoint_sha256": "ab", "model": "resnet20",
         "dataset": "fashion-mnist", "criterion": "group-l2", "budget": 0.5, "round_to": 8,
         "eval_size": 1000, "threads": 2, "agent": agent, "seed": seed, "episodes": 300,
         "best_val_acc": held + 0.01, "rescored_val_acc": held, "rescore_images": 4000,
         "best_macs_ratio": 0.5, "seconds": 60.0, "command": f"bench_search {agent} {seed}",
         "date": "d", "machine": {"cpu": "c", "cores": 2, "torch": "t", "torch_threads": 2}}
    if test is not None:
        r["test_acc_before_finetune"] = test
    return r


def test_the_winners_test_accuracy_is_a_column_where_recorded() -> None:
    results = {"search_amc-ddpg_s0": _result("amc-ddpg", 0, 0.86, 0.851),
               "search_amc-ddpg_s1": _result("amc-ddpg", 1, 0.87, 0.853),
               "search_uniform": _result("uniform", 0, 0.84, None)}
    text = "\n".join(report_search.search_section(results))
    assert "| per seed (held-out) | test acc | MACs kept |" in text
    assert "| amc-ddpg | 2 | 300 | 87.50 ± 0.71 | 86.50 ± 0.71 | 86.00, 87.00 | 85.20 ± 0.14 |" \
        in text
    assert "| uniform | 1 | 300 | 85.00 | 84.00 | 84.00 | - | 0.500 |" in text
    old = {k: r for k, r in results.items() if k == "search_uniform"}
    assert "test acc" not in "\n".join(report_search.search_section(old))


def test_env_rows_name_their_criterion_and_budget() -> None:
    parts = {"surgery": 0.02, "criterion": 0.5, "recalibration": 0.2, "evaluation": 0.3,
             "recount": 0.01}
    lever = {"median_episode_s": 1.0, "median_parts_s": parts, "speedup_vs_plain": 1.3,
             "episodes_per_minute": 60.0}
    r = {"model": "resnet20", "criterion": "group-l2+reconstruct", "budget": 0.3, "units": 12,
         "val_size": 1000, "recalib_images": 512, "median_episode_s": 1.0,
         "median_parts_s": parts, "eval_pass_s": 0.5, "ratio_episode_to_eval": 2.0,
         "episodes": 6, "round_to": 8, "threads": 1, "max_accuracy_diff_plain_vs_fast": 0.0,
         "uniform_0.5_val_acc_recalibration": {"with": 0.8, "without": 0.1},
         "random_policy_val_acc": {"min": 0.5, "max": 0.7, "median": 0.6},
         "levers": {"fast-scoring + prefix reuse": lever}, "command": "bench_env", "date": "d",
         "machine": {"cpu": "c", "cores": 2, "torch": "t", "torch_threads": 1}}
    text = "\n".join(report_search.env_section({"env_resnet20_x": r}))
    assert "| resnet20 | group-l2+reconstruct | 12 | 1000 | 512 | 1.00 |" in text
    assert "Reward signal (resnet20, group-l2+reconstruct, 30% MACs)" in text
    assert "(resnet20, group-l2+reconstruct, 30% MACs, round-to 8, 1 threads;" in text
    assert "| fast-scoring + prefix reuse | 1.00 |" in text
