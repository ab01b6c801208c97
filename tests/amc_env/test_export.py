"""ONNX export checked in onnxruntime, and the deployment-like latency backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amc_agent.env import export as export_module
from amc_agent.env.errors import UserError
from amc_agent.env.export import check_onnx, onnx_bytes, onnx_session
from amc_agent.env.latency import default_backend, measure_latency
from tests.amc_env.helpers import make_env
from tests.policies.test_apply import _apply, searched  # noqa: F401 (fixture)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_pruned_model_exports_with_matching_outputs(name: str) -> None:
    env = make_env(name, budget=0.5)
    env.play({u.name: 0.5 for u in env.units})
    pruned = env.pruned_model().eval()
    data = onnx_bytes(pruned, (3, 16, 16))
    assert check_onnx(data, pruned, (3, 16, 16)) <= 1e-4
    # Any batch size runs (the batch axis is dynamic), with PyTorch's outputs.
    x = torch.randn(7, 3, 16, 16)
    sess = onnx_session(data, threads=1)
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, pruned(x).numpy(), atol=1e-4)


def test_a_mismatching_export_is_refused() -> None:
    env = make_env("cnn")
    model = env.model
    data = onnx_bytes(model, (3, 16, 16))
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # PyTorch's model no longer matches the file
    with pytest.raises(UserError, match="outputs differ from PyTorch's"):
        check_onnx(data, model, (3, 16, 16))


def test_apply_writes_a_checked_onnx_file(searched, tmp_path, capsys) -> None:  # noqa: F811
    out, onnx = tmp_path / "p.pt", tmp_path / "p.onnx"
    assert _apply("--policy", str(searched / "policy.json"), "--model", "resnet20",
                  "--onnx", str(onnx), "--out", str(out)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["onnx"] == str(onnx) and onnx.stat().st_size > 1000
    from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(out)
    assert ckpt["metrics"]["onnx"]["max_relative_difference"] <= 1e-4
    assert check_onnx(onnx.read_bytes(), model_from_checkpoint(ckpt), (3, 16, 16)) <= 1e-4


def test_apply_writes_nothing_when_the_export_fails(searched, tmp_path, monkeypatch) -> None:  # noqa: F811
    def broken(*args, **kwargs):
        raise UserError("ONNX export failed (test)")

    monkeypatch.setattr("amc_agent.cli.apply.onnx_bytes", broken)
    with pytest.raises(UserError, match="ONNX export failed"):
        _apply("--policy", str(searched / "policy.json"), "--model", "resnet20",
               "--onnx", str(tmp_path / "p.onnx"), "--out", str(tmp_path / "p.pt"))
    assert list(tmp_path.iterdir()) == []


def test_onnxruntime_backend_times_the_runtime(monkeypatch) -> None:
    env = make_env("cnn")
    runs: list[tuple[int, ...]] = []
    real = export_module.onnx_session

    def spy(data, threads):
        sess = real(data, threads)
        run = sess.run

        class Spy:
            def get_inputs(self):
                return sess.get_inputs()

            def run(self, out, feed):
                runs.append(next(iter(feed.values())).shape)
                return run(out, feed)

        assert threads == 1
        return Spy()

    monkeypatch.setattr(export_module, "onnx_session", spy)
    lat = measure_latency(env.model, (3, 16, 16), batch_size=5, threads=1, min_time_s=0.02,
                          warmup=1, backend="onnxruntime")
    assert lat.backend == "onnxruntime" and lat.median_ms > 0 and lat.runs >= 5
    assert set(runs) == {(5, 3, 16, 16)} and len(runs) == lat.runs + 1  # + the warm-up


def test_backends_are_checked_against_the_device() -> None:
    assert default_backend("cpu") == "eager" and default_backend("cuda:0") == "cudagraph"
    model = make_env("cnn").model
    with pytest.raises(UserError, match="cudagraph needs --device cuda"):
        measure_latency(model, (3, 16, 16), backend="cudagraph")
    with pytest.raises(UserError, match="unknown --latency-backend 'tensorrt'"):
        measure_latency(model, (3, 16, 16), backend="tensorrt")


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_without_the_onnx_extra_the_error_names_it(monkeypatch, missing: str) -> None:
    real = export_module.importlib.util.find_spec
    monkeypatch.setattr(export_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == missing else real(name, *a))
    model = make_env("cnn").model
    with pytest.raises(UserError, match=r"onnx extra: pip install 'amc-agent\[onnx\]'"):
        if missing == "onnx":
            onnx_bytes(model, (3, 16, 16))
        else:
            onnx_session(b"", threads=1)
