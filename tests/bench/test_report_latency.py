"""The latency-predictor table's correlation column: it tells a reader whether the policies'
latencies differ measurably at all (repeat r) and whether the table ranks them (table r)."""

from __future__ import annotations

from typing import Any

from bench.report_latency import latency_predictor_section


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
