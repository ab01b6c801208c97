"""MACs/params counting against hand formulas and published figures; latency sanity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from amc_agent.env.cost import count_macs, count_params, measure_cost
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.latency import measure_latency
from amc_agent.env.latency_table import LatencyTable
from amc_agent.env.models import build_model
from tests.amc_env.helpers import FAST, model, synthetic


def test_macs_of_hand_computable_net() -> None:
    # conv 3->8, 3x3, stride 1, pad 1 on 8x8 -> 8x8x8; flatten; linear 512 -> 10.
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.Flatten(),
                        nn.Linear(8 * 8 * 8, 10))
    conv_macs = 8 * 8 * 8 * (3 * 3 * 3)  # outputs x (cin x k x k)
    linear_macs = 512 * 10
    assert count_macs(net, (3, 8, 8)) == conv_macs + linear_macs
    assert count_params(net) == (8 * 27 + 8) + (512 * 10 + 10)


def test_grouped_and_strided_conv_macs() -> None:
    # Depthwise 3x3 stride 2 on 16 channels of 10x10 -> 5x5: 16 x 25 x 9 MACs.
    net = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False)
    assert count_macs(net, (16, 10, 10)) == 16 * 25 * 9


@pytest.mark.parametrize(("name", "published"), [("resnet20", 41e6), ("resnet56", 125e6)])
def test_cifar_resnet_macs_match_published(name: str, published: float) -> None:
    model = build_model({"name": name, "kwargs": {"in_channels": 3, "num_classes": 10}})
    macs = measure_cost(model, (3, 32, 32)).macs
    assert abs(macs - published) / published < 0.02


def test_count_macs_preserves_training_mode() -> None:
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}})
    model.train()
    count_macs(model, (1, 28, 28))
    assert model.training


def test_cpu_latency_is_positive_and_records_settings() -> None:
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}})
    lat = measure_latency(model, (1, 28, 28), batch_size=4, threads=1, min_time_s=0.05,
                          warmup=2)
    assert lat.median_ms > 0 and math.isfinite(lat.median_ms)
    assert lat.iqr_ms >= 0 and lat.runs >= 1
    assert (lat.batch_size, lat.threads, lat.device) == (4, 1, "cpu")
    assert set(lat.to_dict()) == {"median_ms", "iqr_ms", "runs", "batch_size", "threads",
                                  "device", "backend"}
    assert lat.backend == "eager"


def test_latency_runs_the_asked_batch_and_restores_threads() -> None:
    """What is timed is a forward of the requested batch (timings themselves are benchmarks)."""
    seen: list[tuple[int, ...]] = []
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}})
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    before = torch.get_num_threads()
    lat = measure_latency(model, (1, 28, 28), batch_size=32, threads=1, min_time_s=0.02,
                          warmup=1)
    assert seen and set(seen) == {(32, 1, 28, 28)}
    assert lat.batch_size == 32 and torch.get_num_threads() == before



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["eager", "cudagraph"])
def test_cuda_latency(backend: str) -> None:
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}}).cuda()
    lat = measure_latency(model, (1, 28, 28), batch_size=8, device="cuda", repeats=20,
                          backend=backend)
    assert lat.median_ms > 0 and lat.device.startswith("cuda") and lat.backend == backend


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_latency_target_env_tables_and_measures_on_the_gpu(tmp_path, monkeypatch) -> None:
    """On CUDA a latency-target env builds its per-layer table with CUDA-graph timings (the
    default backend there), keyed by the GPU's name, and measures every episode on the GPU."""
    monkeypatch.setenv("AMC_CACHE_DIR", str(tmp_path))
    env = ChannelPruningEnv(model("cnn"), synthetic(), **FAST, target="latency", budget=0.9,
                            device="cuda")
    assert isinstance(env.latency_model, LatencyTable)
    full = [u.channels for u in env.units]
    assert env.latency_model.predict_rows(np.array([full]))[0] == pytest.approx(
        env.latency_model.original_ms)
    (cached,) = (tmp_path / "latency_tables").glob("*.json")
    key = json.loads(cached.read_text())["key"]
    assert key["device"] == torch.cuda.get_device_name() and key["backend"] == "cudagraph"
    info = env.play({u.name: 0.5 for u in env.units})
    assert info["latency_ms"] > 0 and info["predicted_latency_ms"] > 0
    assert next(env.pruned_model().parameters()).is_cuda


def test_quick_cpu_latency_times_single_calls_at_the_asked_threads() -> None:
    seen: list[int] = []
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}})
    model.register_forward_pre_hook(lambda _m, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    lat = measure_latency(model, (1, 28, 28), batch_size=2, threads=1, min_time_s=0.01,
                          warmup=2, quick=True)
    assert lat.backend == "eager" and lat.median_ms > 0 and lat.runs >= 5
    assert len(seen) == lat.runs + 2 and set(seen) == {1} and torch.get_num_threads() == before


def test_a_measurement_never_rests_on_one_or_two_slow_calls() -> None:
    """Calls slower than the time budget: the median comes from at least 5 timed calls."""
    import time as time_module

    class Slow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time_module.sleep(0.1)  # one call outlasts the time budget
            return x

    lat = measure_latency(Slow(), (1, 4, 4), min_time_s=0.05, warmup=1)
    assert lat.runs >= 5 and 95 < lat.median_ms < 200
