"""The ``amc+share`` observation (issue: search once, apply many): each unit's raw share of the
model's MACs after AMC's features, so a unit of a deeper network looks cheaper than the same
unit of a shallower one; the observation travels with the policy to ``amc-apply`` and
``--init-actor``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from amc_agent.cli import apply, search
from amc_agent.env.env import OBS_FEATURES, OBSERVATIONS
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy
from tests.agents.test_budget_conditioned import BASE
from tests.amc_env.helpers import make_env


def _shares(name: str) -> tuple[list[float], list[str]]:
    env = make_env(name, observation="amc+share")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (len(OBS_FEATURES) + 1,) and env.observation_space.contains(obs)
    shares = []
    for _ in range(env.n_units):
        shares.append(float(obs[-1]))
        obs, *_ = env.step(np.array([1.0], dtype=np.float32))
    return shares, [u.name for u in env.units]


def test_share_is_the_units_fraction_of_the_models_macs_and_falls_with_depth() -> None:
    assert OBSERVATIONS["amc+share"] == (*OBS_FEATURES, "share")
    env = make_env("resnet20", observation="amc+share")
    want = np.array(env.cost.unit_macs()) / env.cost.original["flops"]
    got, names = _shares("resnet20")
    assert got == pytest.approx(want, rel=1e-6)
    # The same inner unit is a smaller share of a deeper network: what AMC's min-max
    # normalised features cannot tell apart.
    deep, deep_names = _shares("resnet56")
    inner = names.index("layer1.1.conv1")
    assert deep[deep_names.index("layer1.1.conv1")] < got[inner] / 2
    amc = make_env("resnet20").reset(seed=0)[0]
    assert amc.shape == (len(OBS_FEATURES),)
    assert make_env("resnet20", observation="amc+share").reset(seed=0)[0][:-1].tolist() == \
        amc.tolist()
    with pytest.raises(UserError, match="unknown observation 'depth'"):
        make_env("cnn", observation="depth")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    out = tmp_path_factory.mktemp("share") / "s"
    assert search.main(["--model", "resnet20", *BASE, "--budget", "0.3:0.6", "--episodes", "4",
                        "--observation", "amc+share", "--out", str(out)]) == 0
    return out


def test_the_policy_records_its_observation_and_apply_feeds_it_back(shared, tmp_path,
                                                                    capsys) -> None:
    policy = Policy.load(shared / "policy.json")
    assert policy.observation == "amc+share"
    assert apply.main(["--policy", str(shared / "policy.json"), "--model", "resnet32",
                       "--budget", "0.4", "--dataset", "synthetic", "--eval-size", "32",
                       "--no-progress", "--latency-time", "0.02",
                       "--out", str(tmp_path / "p.pt")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mode"] == "actor" and 0.35 <= summary["macs_ratio"] <= 0.4 + 1e-9
    # A policy written before the field existed reads as AMC's observation.
    data = json.loads((shared / "policy.json").read_text())
    del data["observation"]
    assert Policy.from_dict(data).observation == "amc"
    with pytest.raises(UserError, match="unknown observation"):
        Policy.from_dict({**data, "observation": "depth"})


def test_init_actor_with_another_observation_is_refused(shared, tmp_path, monkeypatch,
                                                        capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["amc-search", "--model", "resnet32", *BASE[:-4],
                                      "--episodes", "2", "--init-actor", str(shared),
                                      "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as exc:
        search.entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert "trained on the 'amc+share' observation; search with --observation amc+share" in err[0]
    assert not (tmp_path / "x").exists()
    out = tmp_path / "warm"
    assert search.main(["--model", "resnet32", *BASE[:-4], "--agent", "amc-ddpg", "--budget",
                        "0.4", "--episodes", "2", "--observation", "amc+share",
                        "--init-actor", str(shared), "--out", str(out)]) == 0
    assert Policy.load(out / "policy.json").observation == "amc+share"


def test_compare_runs_a_transferred_actor_on_its_own_observation(shared, tmp_path,
                                                                 capsys) -> None:
    from amc_agent.cli import compare

    assert apply.main(["--policy", str(shared / "policy.json"), "--model", "resnet32",
                       "--budget", "0.4", "--dataset", "synthetic", "--eval-size", "32",
                       "--no-progress", "--latency-time", "0.02",
                       "--out", str(tmp_path / "p.pt")]) == 0
    applied = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = tmp_path / "cmp"
    # The comparison's own searches see AMC's observation; the transferred actor its own.
    assert compare.main(["--model", "resnet32", *BASE[:-4], "--finetune-epochs", "0",
                         "--latency-time", "0.01", "--budget", "0.4", "--strategies",
                         "transfer,amc-ddpg", "--episodes", "2", "--transfer", str(shared),
                         "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["transfer_observation"] == "amc+share"
    transfer = results["strategies"]["transfer"]
    assert transfer["macs_kept"] == pytest.approx(applied["macs_ratio"])
    assert Policy.load(out / "search-amc-ddpg" / "policy.json").observation == "amc"
