"""Applying policies (same architecture, transfer through the actor), export and amc-apply."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from amc_agent.cli import apply, search
from amc_agent.env.checkpoint import load_checkpoint, model_from_checkpoint
from amc_agent.env.errors import UserError
from amc_agent.policies.artifact import Policy

BASE = ["--dataset", "synthetic", "--eval-size", "32", "--recalib-batches", "1",
        "--recalib-batch-size", "16", "--no-progress", "--wandb-mode", "disabled"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "s"
    assert search.main(["--model", "resnet20", *BASE, "--agent", "amc-ddpg", "--agent-kwargs",
                        "{warmup_episodes: 2, batch_size: 4}", "--episodes", "3",
                        "--out", str(out)]) == 0
    return out


def _apply(*argv: str) -> dict:
    return apply.main([*argv, "--dataset", "synthetic", "--eval-size", "32", "--no-progress",
                       "--latency-time", "0.02"])


def test_same_architecture_applies_ratios_and_exports(searched, tmp_path, capsys) -> None:
    out = tmp_path / "p.pt"
    assert _apply("--policy", str(searched / "policy.json"), "--model", "resnet20",
                  "--out", str(out)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mode"] == "ratios"
    policy = Policy.load(searched / "policy.json")
    ckpt = load_checkpoint(out)
    assert ckpt["metrics"]["keep_ratios"] == pytest.approx(policy.keep_ratios)
    assert summary["macs_ratio"] == pytest.approx(policy.metrics["macs_ratio"])
    # Export round trip: rebuilt from recipe + record, bit-identical outputs.
    raw = torch.load(out, weights_only=True)
    rebuilt = model_from_checkpoint(load_checkpoint(out)).eval()
    x = torch.randn(2, 3, 16, 16)
    from amc_agent.env.models import build_model
    from amc_agent.env.surgery import apply_pruning_record

    direct = apply_pruning_record(build_model(raw["recipe"]), raw["pruning"])
    direct.load_state_dict(raw["state_dict"])
    with torch.no_grad():
        assert torch.equal(rebuilt(x), direct.eval()(x))


def test_actor_transfers_to_a_deeper_resnet(searched, tmp_path, capsys) -> None:
    out = tmp_path / "deep.pt"
    assert _apply("--policy", str(searched / "policy.json"), "--model", "resnet32",
                  "--out", str(out), "--budget", "0.5") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mode"] == "actor"
    assert 0.45 <= summary["macs_ratio"] <= 0.5
    ratios = load_checkpoint(out)["metrics"]["keep_ratios"]
    assert "layer1.4.conv1" in ratios  # a unit resnet20 does not have


def test_finetune_and_scratch_report_accuracy(searched, tmp_path, capsys) -> None:
    out = tmp_path / "ft.pt"
    assert _apply("--policy", str(searched / "policy.json"), "--model", "resnet20", "--out",
                  str(out), "--finetune-epochs", "1", "--scratch-epochs", "1") == 0
    m = load_checkpoint(out)["metrics"]
    assert 0 <= m["after_finetune"]["test_acc"] <= 1 and 0 <= m["scratch"]["test_acc"] <= 1
    assert m["after_finetune"]["macs"] == m["before_finetune"]["macs"] == m["scratch"]["macs"]
    assert m["before_finetune"]["latency"]["b64"]["batch_size"] == 64


def test_speedups_are_round_robin_ratios(searched, tmp_path, capsys, monkeypatch) -> None:
    # Round 2 of the pruned model is hit by load: the speed-up is the median of per-round ratios
    # (2.0), not the ratio of the two medians (12/20 = 0.6) that a burst of load would give.
    from amc_agent.env.latency import Latency
    from amc_agent.policies import finetune

    ms = {0: [10.0, 40.0, 12.0], 1: [5.0, 20.0, 30.0]}  # per round: original, pruned
    seen: list[int] = []  # model identities in measuring order
    order: list[tuple[int, int]] = []

    def fake(m, input_shape, batch_size=1, device="cpu", **_):
        if id(m) not in seen:
            seen.append(id(m))
        who = seen.index(id(m))
        order.append((who, batch_size))
        return Latency(ms[who][sum(o == (who, batch_size) for o in order) - 1], 0.0, 5,
                       batch_size, 1, device)

    monkeypatch.setattr(finetune, "measure_latency", fake)
    out = tmp_path / "p.pt"
    assert _apply("--policy", str(searched / "policy.json"), "--model", "resnet20",
                  "--out", str(out)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert order == [(0, 1), (0, 64), (1, 1), (1, 64)] * 3  # alternating, round by round
    assert summary["speedup_b1"] == summary["speedup_b64"] == 2.0
    m = load_checkpoint(out)["metrics"]
    assert m["original"]["latency"]["b1"]["round_ms"] == ms[0]
    assert m["before_finetune"]["latency"]["b64"]["round_ms"] == ms[1]
    assert m["original"]["params"] > m["before_finetune"]["params"]  # 0 is the original


def test_ratios_only_policy_on_another_model_is_refused(searched, tmp_path, monkeypatch,
                                                        capsys) -> None:
    data = json.loads((searched / "policy.json").read_text())
    data["actor"] = None
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(data))
    out = tmp_path / "x.pt"
    monkeypatch.setattr(sys, "argv", ["amc-apply", "--policy", str(bare), "--model", "resnet32",
                                      "--dataset", "synthetic", "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        apply.entry()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert "does not fit this model" in err[0] and "layer1.3.conv1 (not in the policy)" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON"), ('{"format": "x"}', "expected 'amc-policy/1'")])
def test_bad_policy_files(tmp_path, monkeypatch, capsys, text, message) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(text)
    monkeypatch.setattr(sys, "argv", ["amc-apply", "--policy", str(bad), "--model", "resnet20",
                                      "--dataset", "synthetic", "--out", str(tmp_path / "o.pt")])
    with pytest.raises(SystemExit) as exc:
        apply.entry()
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()


def test_reconstructing_search_replays_with_the_refit(tmp_path, capsys) -> None:
    """``--reconstruct`` is part of the policy's criterion, so amc-apply refits the consumers
    exactly as the search did: same validation accuracy, weights unlike a plain cut."""
    out = tmp_path / "s"
    # amc-apply evaluates with the default recalibration and calibration sizes: search with them.
    assert search.main(["--model", "cnn", "--dataset", "synthetic", "--eval-size", "32",
                        "--no-progress", "--wandb-mode", "disabled", "--agent", "random",
                        "--episodes", "2", "--criterion", "l1", "--reconstruct",
                        "--out", str(out)]) == 0
    policy = Policy.load(out / "policy.json")
    assert policy.criterion == "l1+reconstruct"
    pruned = tmp_path / "p.pt"
    assert _apply("--policy", str(out / "policy.json"), "--model", "cnn", "--out",
                  str(pruned)) == 0
    ckpt = load_checkpoint(pruned)
    assert ckpt["metrics"]["val_acc_before_finetune"] == policy.metrics["val_accuracy"]
    from amc_agent.env.models import build_model
    from amc_agent.env.surgery import apply_pruning_record

    torch.manual_seed(0)
    plain = apply_pruning_record(build_model(ckpt["recipe"]), ckpt["pruning"]).state_dict()
    refit = [k for k, v in ckpt["state_dict"].items()
             if k.endswith("weight") and v.dim() > 1 and not torch.equal(v, plain[k])]
    assert refit  # at least one consumer layer was refitted


def test_strict_rounding_travels_with_the_policy(tmp_path, capsys) -> None:
    """A ``--strict-round`` search records it in policy.json, and amc-apply cuts the same grid:
    every convolution of the applied ResNet-20 keeps a multiple of 8 channels (by default its
    16-channel units step by 2)."""
    out = tmp_path / "s"
    assert search.main(["--model", "resnet20", *BASE, "--agent", "random", "--episodes", "2",
                        "--strict-round", "--out", str(out)]) == 0
    policy = Policy.load(out / "policy.json")
    assert policy.strict_round
    pruned = tmp_path / "p.pt"
    assert _apply("--policy", str(out / "policy.json"), "--model", "resnet20", "--out",
                  str(pruned)) == 0
    convs = [m for m in model_from_checkpoint(load_checkpoint(pruned)).modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    data = policy.to_dict()
    del data["strict_round"]  # a policy from before the field: the adaptive steps
    assert not Policy.from_dict(data).strict_round
    with pytest.raises(UserError, match="strict_round"):
        Policy.from_dict({**data, "strict_round": "yes"})
