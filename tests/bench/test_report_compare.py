"""The compare table in BENCHMARKS.md names strategies that built one network, and says whether
that network was fine-tuned once (amc-compare's ``same_network_as``) or once per row."""

from __future__ import annotations

from typing import Any

from bench.report_compare import compare_table

LAT = {"b1": {"median_ms": 1.0, "round_ms": [1.0] * 3, "calls": 9},
       "b64": {"median_ms": 8.0, "round_ms": [8.0] * 3, "calls": 9}}


def row(ratios: dict[str, float], acc: float, **extra: Any) -> dict[str, Any]:
    return {"criterion": "group-l2", "keep_ratios": ratios, "val_acc_before_finetune": 0.8,
            "val_acc_heldout": 0.8, "test_acc_before_finetune": 0.8, "test_acc": acc,
            "test_acc_std": 0.0, "test_acc_seeds": [acc, acc], "macs_kept": 0.5,
            "cost_kept": 0.5, "budget_ok": True, "latency": LAT, **extra}


def result(tp_row: dict[str, Any]) -> dict[str, Any]:
    return {"config": {"finetune_epochs": 1, "finetune_images": 100, "finetune_seeds": 2},
            "original": {"test_acc": 0.9, "latency": LAT, "test_images": 1000},
            "base_test_acc": 0.9, "differences": {}, "compare_command": "amc-compare ...",
            "strategies": {"global": row({"a": 0.5, "b": 0.75}, 0.85),
                           "tp-global": tp_row,
                           "uniform": row({"a": 0.6, "b": 0.6}, 0.84)}}


def test_one_network_fine_tuned_once_is_said_so() -> None:
    text = "\n".join(compare_table(result(row({"a": 0.5, "b": 0.75}, 0.85,
                                              same_network_as="global"))))
    assert "Identical policies (one network, not a tie between strategies; fine-tuned once, " \
           "its rows identical): global = tp-global." in text
    assert "uniform" not in text.split("Identical policies")[1].split("\n")[0]


def test_the_same_policy_fine_tuned_per_row_is_still_named() -> None:
    text = "\n".join(compare_table(result(row({"a": 0.5, "b": 0.75}, 0.851))))
    assert "identical rows up to fine-tune noise): global = tp-global." in text
    other = result(row({"a": 0.5, "b": 0.75}, 0.85) | {"criterion": "l1"})
    assert "Identical policies" not in "\n".join(compare_table(other))


def test_selection_gap_is_measured_against_the_heuristics_of_the_same_comparison() -> None:
    from bench.report_compare import selection_bias_section, selection_gaps

    def cmp(offset: float, searched_excess: float, ft_images: int) -> dict[str, Any]:
        """Heuristic rows with held-out = test + offset; a searched row with more on top."""
        def r(extra: float, **kw: Any) -> dict[str, Any]:
            return {"val_acc_heldout": 0.80 + offset + extra, "test_acc_before_finetune": 0.80,
                    **kw}
        return {"strategies": {"uniform": r(-0.001), "tp-global": r(0.001),
                               "amc-ddpg": r(searched_excess, rescore_finetune_images=ft_images),
                               "transfer": r(0.5)}}
    results = {"compare_a": cmp(0.02, 0.004, 0), "compare_b": cmp(-0.01, 0.002, 0),
               "compare_c": cmp(0.0, 0.0, 2000), "search_x": cmp(0.0, 0.9, 0)}
    gaps = selection_gaps(results)
    assert set(gaps) == {"right after pruning", "after a short fine-tune"}
    assert [round(g, 6) for g in gaps["right after pruning"]] == [0.4, 0.2]
    assert [round(g, 6) for g in gaps["after a short fine-tune"]] == [0.0]
    text = "\n".join(selection_bias_section(results))
    assert "| right after pruning | 2 | +0.30 | 0.10 |" in text
    assert "after a short fine-tune |" not in text  # one row has no spread to show
