"""Crash-safe artifact writes: a crash while writing leaves the previous file whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from amc_agent.env import atomic
from amc_agent.env.checkpoint import load_checkpoint, save_checkpoint
from amc_agent.env.models import build_model

RECIPE = {"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 3}}


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "policy.json"
    atomic.write_json(path, {"v": 1})
    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic.torch_save(path, {"weights": torch.zeros(1000), "bad": _Unpicklable()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["policy.json"]


@pytest.mark.parametrize("kind", ["checkpoint", "json"])
def test_sigkill_while_writing_keeps_the_old_file(tmp_path, kind: str) -> None:
    # The child starts overwriting the artifact, has written part of the new bytes, and is
    # killed with SIGKILL (no handler, no cleanup can run).
    target = tmp_path / ("model.pt" if kind == "checkpoint" else "results.json")
    model = build_model(RECIPE)
    if kind == "checkpoint":
        save_checkpoint(target, model, RECIPE, "synthetic", metrics={"test_acc": 0.5},
                        input_shape=(1, 16, 16))
    else:
        atomic.write_json(target, {"old": True})
    before = target.read_bytes()
    child = textwrap.dedent(f"""
        import os, signal, torch
        from amc_agent.env import atomic

        class Kill:
            def __reduce__(self):
                os.kill(os.getpid(), signal.SIGKILL)

        if {kind!r} == "checkpoint":
            atomic.torch_save({str(target)!r}, {{"state_dict": torch.randn(100_000),
                                                 "bomb": Kill()}})
        else:
            def write(f):
                f.write(b'{{"new": tr')
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            atomic._atomic({str(target)!r}, write)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True)
    assert proc.returncode == -9, proc.stderr
    assert target.read_bytes() == before
    if kind == "checkpoint":
        assert load_checkpoint(target)["metrics"] == {"test_acc": 0.5}
    else:
        assert json.loads(target.read_text()) == {"old": True}
    # What the killed writer left is a hidden temp file beside it, never the artifact's name.
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert leftovers and all(n.startswith(f".{target.name}.") and n.endswith(".tmp")
                             for n in leftovers)
