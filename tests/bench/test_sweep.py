"""The any-model sweep's per-model check on a sample of families, and its failure recording."""

from __future__ import annotations

import pytest

from amc_agent.env.models import ZOO, torchvision_names
from bench.bench_sweep import QUICK, all_models, check_model, run_isolated

# Plain, residual, inverted-residual + squeeze-excite, fire-module and grouped-conv families
# (dense concatenation: tests/amc_env/test_costmodel.py).
SAMPLE = ["cnn", "resnet20", "mobilenet_v3_small", "squeezenet1_1", "regnet_x_400mf"]


@pytest.mark.parametrize("name", SAMPLE)
def test_model_passes_every_stage(name: str) -> None:
    row = check_model(name)
    assert row["status"] == "pass", row.get("error")
    assert row["units"] > 0 and 0 < row["macs_kept"] <= 0.5
    assert row["predicted_macs_error"] == 0
    if name.startswith("regnet"):  # its grouped stages are cut, not skipped
        assert row["grouped_units"] > 0 and row["grouped_units_cut"] > 0


def test_failures_are_recorded_with_their_stage() -> None:
    row = check_model("no_such_model")
    assert row["status"] == "fail" and row["stage"] == "build"
    assert "unknown model 'no_such_model'" in row["error"]
    hung = run_isolated("resnet20", timeout_s=0.01, threads=1)
    assert hung["status"] == "fail" and hung["stage"] == "timeout"


def test_sweep_covers_the_zoo_and_every_torchvision_classifier() -> None:
    names = all_models()
    assert {"cnn", "resnet20", "mobilenetv2", "torchvision:vgg16"} <= set(names)
    assert len(names) == len(set(names)) == len(torchvision_names()) + len(ZOO.names())
    assert set(QUICK) <= set(names)
