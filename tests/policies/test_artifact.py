"""policy.json: round trip and validation of bad files."""

from __future__ import annotations

import json

import pytest

from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import FORMAT, Policy

GOOD = {"model": {"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}},
        "fingerprint": "abc", "input_shape": [1, 28, 28], "dataset": "fashion-mnist",
        "target": "flops", "budget": 0.5, "criterion": "l1", "round_to": 8, "lbound": 0.2,
        "keep_ratios": {"features.0": 0.5}, "metrics": {"val_accuracy": 0.8},
        "agent": {"name": "random"}, "actor": None, "channels": {"features.0": 32},
        "budget_range": None, "strict_round": False, "observation": "amc", "format": FORMAT}


def test_round_trip(tmp_path) -> None:
    Policy(**GOOD).save(tmp_path / "p.json")
    assert Policy.load(tmp_path / "p.json").to_dict() == GOOD


@pytest.mark.parametrize(("text", "message"), [
    ("", "not valid JSON"),
    (json.dumps(GOOD)[:40], "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({**GOOD, "format": "other/2"}), "expected 'amc-policy/1'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "keep_ratios"}), "'keep_ratios'"),
    (json.dumps({**GOOD, "budget": 1.5}), "not in (0, 1]"),
    (json.dumps({**GOOD, "budget_range": [0.6, 0.3]}), "budget_range must be [low, high]"),
    (json.dumps({**GOOD, "keep_ratios": {"a": 0}}), "keep ratio of unit 'a'"),
    (json.dumps({**GOOD, "keep_ratios": {}}), "no keep ratios"),
])
def test_bad_files_name_the_problem(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        Policy.load(path)
    assert message in str(exc.value)
