"""Bad input to every command: exit status 2, one stderr line naming the problem, nothing written.

``CASES`` is the table: (id, command, argv, pattern). ``argv`` may name ``{tmp}`` (the case's own
empty folder, also the working directory) and ``{in}`` (read-only inputs made once per module:
broken checkpoints and policies). ``pattern`` is a regular expression the one stderr line must
contain. Commands run in-process through ``cli.run`` exactly as their console scripts do.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import torch

import amc_agent.env.datasets as datasets_module
from amc_agent.cli import apply, cli, compare, search, train
from amc_agent.env.checkpoint import save_checkpoint
from amc_agent.env.models import build_model

COMMANDS = {"amc-train": train, "amc-search": search, "amc-apply": apply, "amc-compare": compare}

FAST_ENV = ["--eval-size", "32", "--recalib-batches", "1", "--recalib-batch-size", "16",
            "--wandb-mode", "disabled"]
BASE = {
    "amc-train": ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64",
                  "--no-progress", "--out", "{tmp}/out.pt"],
    "amc-search": ["--dataset", "synthetic", *FAST_ENV, "--agent", "random", "--episodes", "1",
                   "--no-progress", "--out", "{tmp}/out"],
    "amc-apply": ["--policy", "{in}/search/policy.json", "--dataset", "synthetic",
                  "--eval-size", "32", "--latency-time", "0.01", "--no-progress",
                  "--out", "{tmp}/out.pt"],
    "amc-compare": ["--dataset", "synthetic", *FAST_ENV, "--strategies", "uniform",
                    "--episodes", "1", "--finetune-epochs", "1", "--latency-time", "0.01",
                    "--no-progress", "--out", "{tmp}/out"],
}


def case(case_id: str, prog: str, *extra: str, pattern: str) -> tuple[str, str, list[str], str]:
    """A table row: the command's tiny base flags, ``--model cnn`` unless a checkpoint is the
    model source, then ``extra`` (argparse lets a later flag override an earlier one)."""
    model = [] if "--checkpoint" in extra or "--model" in extra else ["--model", "cnn"]
    return (case_id, prog, [*BASE[prog], *model, *extra], pattern)


UNWRITABLE = r"cannot write --out .*a-file is not a folder"
BAD_CHECKPOINTS = [  # (file under {in}, pattern)
    ("empty.pt", "corrupt or unreadable"),
    ("random.pt", "corrupt or unreadable"),
    ("truncated.pt", "corrupt or unreadable"),
    ("foreign-dict.pt", "has format None, expected 'amc-checkpoint/1'"),
    ("foreign-tensor.pt", "has format 'Tensor', expected 'amc-checkpoint/1'"),
]
INFEASIBLE = r"budget 0\.01 is infeasible .*use --budget 0\.\d+ or more"

CASES = [
    # amc-train
    case("train-unknown-model", "amc-train", "--model", "resnet21", pattern="unknown model"),
    case("train-unknown-dataset", "amc-train", "--dataset", "mnist", pattern="unknown dataset"),
    case("train-epochs-not-int", "amc-train", "--epochs", "abc",
         pattern="--epochs: invalid int value"),
    case("train-lr-not-float", "amc-train", "--lr", "fast", pattern="--lr: invalid float value"),
    *[case(f"train-checkpoint-{f.split('.')[0]}", "amc-train", "--checkpoint", f"{{in}}/{f}",
           pattern=p) for f, p in BAD_CHECKPOINTS],
    case("train-missing-dataset-offline", "amc-train", "--dataset", "fashion-mnist",
         "--data-root", "{in}/empty-data", pattern="Fashion-MNIST not found"),
    case("train-missing-dataset-offline-env-root", "amc-train", "--dataset", "fashion-mnist",
         pattern="Fashion-MNIST not found"),
    case("train-missing-cifar10-offline", "amc-train", "--dataset", "cifar10",
         pattern="cifar10 not found"),
    case("train-out-under-a-file", "amc-train", "--out", "{in}/a-file/out.pt",
         pattern=UNWRITABLE),
    case("train-out-is-a-folder", "amc-train", "--out", "{in}/empty-data",
         pattern="is a folder; give a file name"),
    # amc-search
    case("search-unknown-model", "amc-search", "--model", "resnet21", pattern="unknown model"),
    case("search-unknown-dataset", "amc-search", "--dataset", "mnist",
         pattern="unknown dataset"),
    case("search-unknown-criterion", "amc-search", "--criterion", "obd",
         pattern="unknown criterion 'obd'"),
    case("search-unknown-agent", "amc-search", "--agent", "dqn", pattern="unknown agent 'dqn'"),
    case("search-unknown-reward", "amc-search", "--reward", "top5",
         pattern="unknown reward 'top5'"),
    case("search-episodes-not-int", "amc-search", "--episodes", "abc",
         pattern="--episodes: invalid int value"),
    case("search-budget-not-float", "amc-search", "--budget", "x",
         pattern="--budget: expected a fraction or LOW:HIGH, got 'x'"),
    case("search-budget-negative", "amc-search", "--budget", "-0.5",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("search-budget-above-1", "amc-search", "--budget", "1.5",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("search-budget-zero", "amc-search", "--budget", "0",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("search-budget-infeasible", "amc-search", "--budget", "0.01", pattern=INFEASIBLE),
    *[case(f"search-checkpoint-{f.split('.')[0]}", "amc-search", "--checkpoint", f"{{in}}/{f}",
           pattern=p) for f, p in BAD_CHECKPOINTS],
    case("search-missing-dataset-offline", "amc-search", "--dataset", "fashion-mnist",
         "--data-root", "{in}/empty-data", pattern="Fashion-MNIST not found"),
    case("search-out-under-a-file", "amc-search", "--out", "{in}/a-file/out",
         pattern=UNWRITABLE),
    case("search-out-is-a-file", "amc-search", "--out", "{in}/a-file",
         pattern="is a file; give a folder name"),
    # amc-apply
    case("apply-unknown-model", "amc-apply", "--model", "resnet21", pattern="unknown model"),
    case("apply-unknown-dataset", "amc-apply", "--dataset", "mnist", pattern="unknown dataset"),
    case("apply-budget-not-float", "amc-apply", "--budget", "x",
         pattern="--budget: invalid float value"),
    case("apply-budget-negative", "amc-apply", "--budget", "-0.5",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("apply-budget-above-1", "amc-apply", "--budget", "1.5",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("apply-budget-zero", "amc-apply", "--budget", "0",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("apply-budget-infeasible", "amc-apply", "--budget", "0.01", pattern=INFEASIBLE),
    case("apply-finetune-epochs-not-int", "amc-apply", "--finetune-epochs", "one",
         pattern="--finetune-epochs: invalid int value"),
    *[case(f"apply-checkpoint-{f.split('.')[0]}", "amc-apply", "--checkpoint", f"{{in}}/{f}",
           pattern=p) for f, p in BAD_CHECKPOINTS],
    case("apply-policy-missing", "amc-apply", "--policy", "{in}/nope.json",
         pattern="policy .*nope.json does not exist"),
    case("apply-policy-empty", "amc-apply", "--policy", "{in}/empty.json",
         pattern="is not valid JSON"),
    case("apply-policy-invalid-json", "amc-apply", "--policy", "{in}/invalid.json",
         pattern="is not valid JSON"),
    case("apply-policy-other-format", "amc-apply", "--policy", "{in}/other-format.json",
         pattern="has format 'x', expected 'amc-policy/1'"),
    case("apply-policy-json-list", "amc-apply", "--policy", "{in}/list.json",
         pattern="is not a JSON object"),
    case("apply-policy-for-another-model", "amc-apply", "--policy", "{in}/ratios-only.json",
         "--model", "tests.user_model:make",
         pattern=r"the policy \(ratios only, no actor\) does not fit this model"),
    case("apply-missing-dataset-offline", "amc-apply", "--dataset", "fashion-mnist",
         "--data-root", "{in}/empty-data", pattern="Fashion-MNIST not found"),
    case("apply-out-under-a-file", "amc-apply", "--out", "{in}/a-file/out.pt",
         pattern=UNWRITABLE),
    case("apply-out-is-a-folder", "amc-apply", "--out", "{in}/empty-data",
         pattern="is a folder; give a file name"),
    # amc-compare
    case("compare-unknown-model", "amc-compare", "--model", "resnet21",
         pattern="unknown model"),
    case("compare-unknown-dataset", "amc-compare", "--dataset", "mnist",
         pattern="unknown dataset"),
    case("compare-unknown-criterion", "amc-compare", "--criterion", "obd",
         pattern="unknown criterion 'obd'"),
    case("compare-unknown-strategy", "amc-compare", "--strategies", "uniform,magic",
         pattern="unknown strategy 'magic'"),
    case("compare-unknown-agent-strategy", "amc-compare", "--strategies", "dqn",
         pattern="unknown strategy 'dqn'"),
    case("compare-unknown-reward", "amc-compare", "--reward", "top5",
         pattern="unknown reward 'top5'"),
    case("compare-episodes-not-int", "amc-compare", "--episodes", "abc",
         pattern="--episodes: invalid int value"),
    case("compare-budget-not-float", "amc-compare", "--budget", "x",
         pattern="--budget: expected a fraction or LOW:HIGH, got 'x'"),
    case("compare-budget-negative", "amc-compare", "--budget", "-0.5",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("compare-budget-above-1", "amc-compare", "--budget", "1.5",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("compare-budget-zero", "amc-compare", "--budget", "0",
         pattern=r"--budget must be a fraction in \(0, 1\]"),
    case("compare-budget-infeasible", "amc-compare", "--budget", "0.01", pattern=INFEASIBLE),
    *[case(f"compare-checkpoint-{f.split('.')[0]}", "amc-compare", "--checkpoint",
           f"{{in}}/{f}", pattern=p) for f, p in BAD_CHECKPOINTS],
    case("compare-missing-dataset-offline", "amc-compare", "--dataset", "fashion-mnist",
         "--data-root", "{in}/empty-data", pattern="Fashion-MNIST not found"),
    case("compare-out-under-a-file", "amc-compare", "--out", "{in}/a-file/out",
         pattern=UNWRITABLE),
    case("compare-out-is-a-file", "amc-compare", "--out", "{in}/a-file",
         pattern="is a file; give a folder name"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Bad (and one good) input files, made once: checkpoints, policies, a file, an empty dir."""
    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    good = d / "good.pt"
    model = build_model({"name": "cnn", "kwargs": {"in_channels": 3, "num_classes": 4}})
    save_checkpoint(good, model, {"name": "cnn", "kwargs": {"in_channels": 3, "num_classes": 4}},
                    "synthetic", {"epochs": 1}, input_shape=(3, 16, 16))
    raw = good.read_bytes()
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8,
                                                generator=torch.Generator().manual_seed(1))
                                  .numpy().tobytes())
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    torch.save({"weights": torch.zeros(3)}, d / "foreign-dict.pt")
    torch.save(torch.zeros(3), d / "foreign-tensor.pt")
    (d / "a-file").write_text("a regular file, not a folder\n")
    (d / "empty-data").mkdir()
    # A real policy for cnn (random agent: ratios only, no actor).
    assert search.main(["--model", "cnn", *BASE["amc-search"][:-2], "--out",
                        str(d / "search")]) == 0
    policy = json.loads((d / "search" / "policy.json").read_text())
    assert policy["actor"] is None
    (d / "ratios-only.json").write_text(json.dumps(policy))
    (d / "empty.json").write_text("")
    (d / "invalid.json").write_text('{"format": "amc-policy/1", "keep_ratios": {')
    (d / "other-format.json").write_text('{"format": "x"}')
    (d / "list.json").write_text("[1, 2, 3]")
    return d


def listing(*roots: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``roots``: (size, mtime) for files, None for folders."""
    out: dict[str, tuple[int, int] | None] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            st = p.lstat()
            out[str(p)] = None if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def offline(monkeypatch) -> None:
    """No network and no system-wide dataset copies: a missing dataset stays missing."""

    def no_network(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "offline (test)")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(datasets_module, "DEBIAN_FASHION_MNIST", Path("/nonexistent/fmnist"))


def test_cases_table_covers_every_command() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)
    assert {c[1] for c in CASES} == set(COMMANDS)


@pytest.mark.parametrize(("case_id", "prog", "argv", "pattern"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_exit_2_one_line_nothing_written(
    case_id, prog, argv, pattern, inputs, offline, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # anything written relative to the working dir shows up too
    monkeypatch.setenv("AMC_DATA_ROOT", str(tmp_path / "data"))
    args = [a.format(tmp=tmp_path, **{"in": inputs}) for a in argv]
    before = listing(tmp_path, inputs)
    with pytest.raises(SystemExit) as exc:
        cli.run(prog, lambda: COMMANDS[prog].main(args))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert exc.value.code == 2, err
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert re.search(pattern, lines[0]), err
    assert listing(tmp_path, inputs) == before
