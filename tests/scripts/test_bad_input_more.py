"""More bad input (issue 14): a model that cannot take the dataset's images, an unknown agent
setting, negative epoch counts. Each exits 2 with one stderr line and writes nothing; rows as in
test_bad_input.CASES, run the same way."""

from __future__ import annotations

import re

import pytest

from amc_agent.cli import cli
from tests.scripts.test_bad_input import COMMANDS, case, listing

REJECTS_SHAPE = r"the model cannot take the dataset's 3x16x16 inputs \(RuntimeError: mat1 and mat2"

CASES = [
    case("train-model-rejects-input-shape", "amc-train", "--model", "tests.custom_layers:fixed",
         pattern=REJECTS_SHAPE),
    case("search-model-rejects-input-shape", "amc-search", "--model",
         "tests.custom_layers:fixed", pattern=REJECTS_SHAPE),
    case("compare-model-rejects-input-shape", "amc-compare", "--model",
         "tests.custom_layers:fixed", pattern=REJECTS_SHAPE),
    case("search-unknown-agent-setting", "amc-search", "--agent", "amc-ddpg",
         "--agent-kwargs", "{{warmup: 2}}",  # {{ }}: the table's argv go through str.format
         pattern=r"unknown amc-ddpg setting\(s\) \['warmup'\]"),
    case("search-unknown-sb3-setting", "amc-search", "--agent", "td3",
         "--agent-kwargs", "{{gama: 0.9}}",
         pattern=r"agent 'td3' rejects settings \{'gama': 0.9\}"),
    case("compare-negative-finetune-epochs", "amc-compare", "--finetune-epochs", "-1",
         pattern="--finetune-epochs must be non-negative, got -1"),
    case("train-unknown-augment", "amc-train", "--augment", "flip",
         pattern=r"argument --augment: invalid choice: 'flip'"),
    case("train-image-size-zero", "amc-train", "--image-size", "0",
         pattern="--image-size must be a positive number of pixels, got 0"),
    case("search-augment-on-tensors", "amc-search", "--augment", "standard",
         pattern="synthetic data take no augmentation"),
    case("search-model-rejects-resized-input", "amc-search", "--image-size", "24", "--model",
         "tests.custom_layers:fixed",
         pattern=r"the model cannot take the dataset's 3x24x24 inputs"),
    case("search-rescore-finetune-without-rescore", "amc-search", "--rescore-finetune", "64",
         "--rescore-top", "0", pattern="--rescore-finetune .* needs --rescore-top K > 0"),
    case("search-rescore-finetune-too-many", "amc-search", "--rescore-finetune", "100000",
         pattern=r"--rescore-finetune must be in \[1, 384\] training images"),
    case("compare-rescore-finetune-negative", "amc-compare", "--strategies", "random",
         "--rescore-finetune", "-1", pattern="--rescore-finetune must be non-negative"),
    case("search-latency-backend-unknown", "amc-search", "--latency-backend", "tensorrt",
         pattern="unknown --latency-backend 'tensorrt'; valid: eager, onnxruntime, cudagraph"),
    case("compare-cudagraph-on-cpu", "amc-compare", "--latency-backend", "cudagraph",
         pattern="--latency-backend cudagraph needs --device cuda"),
    case("compare-negative-scratch-epochs", "amc-compare", "--scratch-epochs", "-2",
         pattern="--scratch-epochs must be non-negative, got -2"),
    case("search-budget-range-reversed", "amc-search", "--budget", "0.6:0.3",
         pattern=r"--budget LOW:HIGH must satisfy 0 < LOW < HIGH <= 1, got 0.6:0.3"),
    case("search-budget-range-not-numbers", "amc-search", "--budget", "0.3:high",
         pattern=r"argument --budget: expected a fraction or LOW:HIGH, got '0.3:high'"),
    case("search-budget-range-without-actor", "amc-search", "--budget", "0.3:0.6", "--agent",
         "random", pattern="a budget range trains a budget-conditioned actor; agent 'random'"),
    case("search-budget-range-latency", "amc-search", "--budget", "0.3:0.6", "--target",
         "latency", pattern="a budget range .* is for flops or params targets"),
    case("compare-budget-range", "amc-compare", "--budget", "0.3:0.6",
         pattern="amc-compare compares strategies at one budget"),
    case("search-cmaes-start-without-seed", "amc-search", "--agent", "cmaes", "--agent-kwargs",
         "{{x0: seed}}", pattern=r"agent 'cmaes' starts from a seed policy \(\{x0: seed\}\)"),
]


@pytest.mark.parametrize(("case_id", "prog", "argv", "pattern"), CASES,
                         ids=[c[0] for c in CASES])
def test_exit_2_one_line_nothing_written(case_id, prog, argv, pattern, tmp_path, monkeypatch,
                                         capsys) -> None:
    monkeypatch.chdir(tmp_path)  # anything written relative to the working dir shows up too
    args = [a.format(tmp=tmp_path) for a in argv]
    before = listing(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.run(prog, lambda: COMMANDS[prog].main(args))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert exc.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert re.search(pattern, lines[0]), err
    assert listing(tmp_path) == before
