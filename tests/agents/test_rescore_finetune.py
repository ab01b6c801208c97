"""Re-scoring after a short fine-tune (NetAdapt's short-term fine-tune): the records hold both
held-out figures, the order follows the one after fine-tuning, a diverged fine-tune ranks last,
and what a search records is exactly what an independent replay computes."""

from __future__ import annotations

import json
import math

import pytest

from amc_agent.agents import rescore as rescore_module
from amc_agent.agents.rescore import (
    DEFAULT_FINETUNE_IMAGES,
    ShortFinetune,
    rescore,
    resolve_finetune,
)
from amc_agent.cli import search
from amc_agent.env.errors import UserError
from amc_agent.env.evaluation import accuracy
from amc_agent.policies.artifact import Policy
from tests.agents.test_search import BASE, rows
from tests.amc_env.helpers import make_env

RANDOM = ["--agent", "random", "--episodes", "4"]


def test_search_ranks_by_the_score_after_the_short_finetune(tmp_path, capsys) -> None:
    plain, tuned = tmp_path / "plain", tmp_path / "tuned"
    assert search.main([*BASE, *RANDOM, "--rescore-top", "3", "--rescore-finetune", "0",
                        "--out", str(plain)]) == 0
    assert "finetune" not in json.loads((plain / "rescore.json").read_text())[0]
    assert search.main([*BASE, *RANDOM, "--rescore-top", "3", "--rescore-finetune", "96",
                        "--out", str(tuned)]) == 0
    assert rows(plain) == rows(tuned)  # the fine-tune comes after the episodes, never in them
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records = json.loads((tuned / "rescore.json").read_text())
    assert summary["finetuned_val_accuracy"] == records[0]["finetuned_accuracy"]
    before = {r["episode"]: r["rescored_accuracy"]
              for r in json.loads((plain / "rescore.json").read_text())}
    assert {r["episode"] for r in records} == set(before)
    assert all(r["rescored_accuracy"] == before[r["episode"]] for r in records)
    after = [r["finetuned_reward"] for r in records]
    assert after == sorted(after, reverse=True)
    assert all(r["finetune"] == {"images": 96, "lr": 0.01, "batch_size": 128, "seed": 0}
               for r in records)
    policy = Policy.load(tuned / "policy.json")
    assert policy.metrics["finetuned_val_accuracy"] == records[0]["finetuned_accuracy"]
    assert policy.keep_ratios == records[0]["keep_ratios"]
    # An independent replay gives the recorded figure exactly (same images, seeds, recipe).
    env = make_env("cnn", val_size=32)
    env.play(records[0]["keep_ratios"], seed=records[0]["episode"])
    replayed = ShortFinetune(96).run(env.pruned_model(), env.train_split, "cpu")
    assert accuracy(replayed, env.heldout_batches()) == records[0]["finetuned_accuracy"]


def test_rescoring_fine_tunes_by_default_on_at_most_the_training_split(tmp_path) -> None:
    out = tmp_path / "default"
    assert search.main([*BASE, *RANDOM, "--rescore-top", "2", "--out", str(out)]) == 0
    records = json.loads((out / "rescore.json").read_text())
    # The synthetic split has 384 training images, fewer than the default's 2000.
    assert [r["finetune"]["images"] for r in records] == [384, 384]
    assert Policy.load(out / "policy.json").metrics["rescore_finetune"]["images"] == 384
    env = make_env("cnn", val_size=32)
    assert resolve_finetune(None, 5, env.train_split) == 384
    assert resolve_finetune(None, 0, env.train_split) == 0
    assert resolve_finetune(None, 5, list(range(5000))) == DEFAULT_FINETUNE_IMAGES == 2000
    assert resolve_finetune(0, 5, env.train_split) == 0


def test_order_follows_the_finetuned_score_and_divergence_ranks_last(monkeypatch) -> None:
    env = make_env("cnn", val_size=32)
    ratios = {u.name: 0.5 for u in env.units}
    cands = [{"episode": e, "reward": 0.9, "accuracy": 0.9, "keep_ratios": ratios}
             for e in range(3)]
    # Before the fine-tune episode 0 leads; after it episode 1 does; episode 2's diverges.
    scores = iter([0.9, 0.6, 0.5, 0.8, 0.7])
    monkeypatch.setattr(rescore_module, "accuracy", lambda model, batches: next(scores))
    tuned = iter([object(), object(), None])
    monkeypatch.setattr(ShortFinetune, "run", lambda self, m, t, d: next(tuned))
    out = rescore(env, cands, None, lambda e: e, ShortFinetune(8))
    assert [o["episode"] for o in out] == [1, 0, 2]
    assert [o["rescored_accuracy"] for o in out] == [0.5, 0.9, 0.7]
    assert out[0]["finetuned_accuracy"] == 0.8 and math.isnan(out[2]["finetuned_accuracy"])


def test_short_finetune_leaves_the_model_alone_and_checks_its_size() -> None:
    env = make_env("cnn", val_size=32)
    env.play({u.name: 0.5 for u in env.units})
    model = env.pruned_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = ShortFinetune(64).run(model, env.train_split, "cpu")
    assert all((model.state_dict()[k] == v).all() for k, v in before.items())
    assert any(not (tuned.state_dict()[k] == v).all() for k, v in before.items()
               if v.is_floating_point())
    with pytest.raises(UserError, match=r"--rescore-finetune must be in \[1, 384\]"):
        ShortFinetune(385).check(env.train_split)
