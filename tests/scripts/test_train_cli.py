"""``amc-train`` end to end on synthetic data: checkpoint, resume, config file, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from amc_agent.cli import train
from amc_agent.cli.cli import parse
from amc_agent.env import training
from amc_agent.env.checkpoint import load_checkpoint

BASE = ["--model", "cnn", "--dataset", "synthetic", "--batch-size", "32", "--lr", "0.05",
        "--no-progress"]


def test_train_writes_checkpoint_with_metrics(tmp_path, capsys) -> None:
    out = tmp_path / "m.pt"
    assert train.main([*BASE, "--epochs", "2", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ckpt = load_checkpoint(out)
    m = ckpt["metrics"]
    assert ckpt["recipe"]["name"] == "cnn" and ckpt["dataset"] == "synthetic"
    assert m["test_acc"] == summary["test_acc"] and 0.0 <= m["test_acc"] <= 1.0
    assert m["macs"] > 0 and m["params"] > 0 and m["latency"]["median_ms"] > 0
    assert [h["epoch"] for h in m["history"]] == [1, 2]


def test_resume_matches_uninterrupted_run(tmp_path, monkeypatch) -> None:
    full, part = tmp_path / "full.pt", tmp_path / "part.pt"
    assert train.main([*BASE, "--epochs", "3", "--out", str(full)]) == 0

    real_epoch = training.train_one_epoch
    calls = []

    def crash_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed mid-epoch 2: only epoch 1 is on disk
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.main([*BASE, "--epochs", "3", "--out", str(part)])
    assert load_checkpoint(part)["train_state"]["epoch"] == 1
    monkeypatch.setattr(training, "train_one_epoch", real_epoch)
    assert train.main([*BASE, "--epochs", "3", "--out", str(part), "--resume"]) == 0
    a, b = load_checkpoint(full)["state_dict"], load_checkpoint(part)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert len(load_checkpoint(part)["metrics"]["history"]) == 3
    # Resuming a finished run does nothing.
    assert train.main([*BASE, "--epochs", "3", "--out", str(part), "--resume"]) == 0


def test_config_file_values_and_flag_override(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: cnn\ndataset: synthetic\nepochs: 1\nlr: 0.01\nbatch-size: 64\n")
    ns = parse(train.build_parser(), ["--config", str(cfg), "--lr", "0.2"])
    assert (ns.model, ns.epochs, ns.lr, ns.batch_size) == ("cnn", 1, 0.2, 64)


BAD_INPUT = [
    (["--model", "resnet21", "--dataset", "synthetic"], "unknown model 'resnet21'; valid names"),
    (["--model", "cnn", "--dataset", "mnist"], "unknown dataset 'mnist'; valid names"),
    (["--model", "cnn", "--dataset", "synthetic", "--epochs", "0"], "--epochs must be at least 1"),
    (["--model", "cnn", "--dataset", "synthetic", "--epochs", "x"], "invalid int value"),
    (["--model", "cnn", "--dataset", "synthetic", "--device", "cuda:0"], "cuda"),
    (["--model", "cnn", "--dataset", "synthetic", "--config", "missing.yaml"], "does not exist"),
    (["--dataset", "synthetic"], "no model given"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, message) -> None:
    if "cuda" in message and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "out.pt"
    monkeypatch.setattr(sys, "argv", ["amc-train", *argv, "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        train.entry()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert lines[0].startswith("amc-train: error: ")
    assert not out.exists()


def test_diverged_training_exits_1_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "out.pt"
    monkeypatch.setattr(sys, "argv", ["amc-train", "--model", "cnn", "--dataset", "synthetic",
                                      "--lr", "1e12", "--epochs", "2", "--no-progress",
                                      "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        train.entry()
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 1
    assert len(lines) == 1 and lines[0].startswith("amc-train: error: training diverged (epoch 1/2")
    assert not out.exists()


def test_console_script_corrupt_checkpoint(tmp_path) -> None:
    # The installed console script, as a user runs it: one stderr line, exit 2, nothing written.
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    exe = Path(sys.executable).parent / "amc-train"
    proc = subprocess.run([str(exe), "--checkpoint", str(bad), "--dataset", "synthetic",
                           "--out", str(tmp_path / "o.pt")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "corrupt" in proc.stderr
    assert not (tmp_path / "o.pt").exists()
