"""``amc-compare`` end to end on a tiny model: report, plots, results, wandb group, bad input."""

from __future__ import annotations

import json
import sys

import pytest

from amc_agent.agents.tracking import offline_runs, read_offline_run
from amc_agent.cli import compare, search

BASE = ["--model", "cnn", "--dataset", "synthetic", "--criterion", "l1", "--eval-size", "32",
        "--recalib-batches", "1", "--recalib-batch-size", "16", "--no-progress", "--latency-time",
        "0.01",
        "--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}", "--episodes", "3",
        "--finetune-epochs", "1", "--scratch-epochs", "1"]
ALL = "amc-ddpg,random,uniform,sensitivity,global,tp-uniform,tp-global,scratch"


def test_compare_writes_report_results_and_one_wandb_group(tmp_path) -> None:
    out = tmp_path / "cmp"
    assert compare.main([*BASE, "--strategies", ALL, "--out", str(out),
                         "--wandb-mode", "offline"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["strategies"]) == ALL.split(",")
    for name, row in results["strategies"].items():
        assert 0 <= row["test_acc"] <= 1 and row["macs"] <= 0.5 * results["original"]["macs"]
        assert row["latency"]["b1"]["median_ms"] > 0 and row["latency"]["b64"]["batch_size"] == 64
        if name != "scratch":
            # Torch-Pruning's strategies choose channels by its default importance.
            crit = "group-l2" if name.startswith("tp-") else "l1"
            assert row["criterion"] == crit
            assert json.loads((out / f"policy-{name}.json").read_text())["criterion"] == crit
    assert set(results["curves"]) == {"amc-ddpg", "random"}
    report = (out / "report.md").read_text()
    for png in ("accuracy_vs_macs.png", "keep_ratios.png", "search_curves.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in report
    assert all(f"| {n} |" in report for n in ALL.split(","))
    runs = [read_offline_run(r) for r in offline_runs(out)]
    strategy_runs = {r["name"]: r for r in runs if r["name"].startswith("strategy-")}
    assert set(strategy_runs) == {f"strategy-{n}" for n in ALL.split(",")}
    assert {r["group"] for r in runs} == {"compare-cmp"}
    for name, run in strategy_runs.items():
        assert run["config"]["strategy"] == name.removeprefix("strategy-")
        assert run["config"]["budget"] == 0.5 and run["config"]["criterion"] == "l1"
        s = results["strategies"][name.removeprefix("strategy-")]
        assert run["summary"]["test_acc"] == s["test_acc"]
    (summary,) = [r for r in runs if r["name"] == "summary"]
    nrows = [h["comparison/nrows"] for h in summary["history"] if "comparison/nrows" in h]
    assert nrows == [len(ALL.split(",")) + 1]  # every strategy plus the original


def test_same_seed_same_finetune_results(tmp_path) -> None:
    accs = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        assert compare.main([*BASE, "--strategies", "uniform,global", "--out", str(out),
                             "--wandb-mode", "disabled"]) == 0
        res = json.loads((out / "results.json").read_text())
        accs.append({k: (v["test_acc"], v["finetune_histories"][0][-1]["train_loss"])
                     for k, v in res["strategies"].items()})
    assert accs[0] == accs[1]


def test_finetune_seeds_give_mean_std_and_equal_budgets(tmp_path) -> None:
    out = tmp_path / "seeds"
    assert compare.main([*BASE, "--strategies", "amc-ddpg,uniform,global,scratch",
                         "--finetune-seeds", "2", "--seed", "3", "--out", str(out),
                         "--wandb-mode", "offline"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["finetune_seeds"] == 2
    runs = {r["name"]: r for r in map(read_offline_run, offline_runs(out))}
    for name, row in results["strategies"].items():
        a, b = row["test_acc_seeds"]
        assert row["seeds"] == [3, 4]
        assert row["test_acc"] == pytest.approx((a + b) / 2)
        assert row["test_acc_std"] == pytest.approx(abs(a - b) / 2 ** 0.5)
        if name != "scratch":  # two fine-tunes, not one run recorded twice
            h0, h1 = row["finetune_histories"]
            assert h0[-1]["train_loss"] != h1[-1]["train_loss"]
        assert row["budget_ok"] and row["cost_kept"] <= 0.5 + 1e-9
        summary = runs[f"strategy-{name}"]["summary"]
        assert summary["test_acc"] == pytest.approx(row["test_acc"])
        assert summary["test_acc_std"] == pytest.approx(row["test_acc_std"])
    agent = results["strategies"]["amc-ddpg"]
    assert agent["warmup_episodes"] == 2 and 0 <= agent["found_at_episode"] < 3
    # The searched strategy's winner was re-scored on held-out images the episodes never saw.
    rescored = json.loads((out / "search-amc-ddpg" / "rescore.json").read_text())
    assert rescored and rescored[0]["images"] == 128 - 32
    best = max(results["strategies"], key=lambda n: results["strategies"][n]["test_acc"])
    assert set(results["differences"]) == set(results["strategies"]) - {best}
    assert all(d["two_se"] is not None for d in results["differences"].values())
    report = (out / "report.md").read_text()
    assert "± " in report and "(n=2)" in report and "not within one step" not in report


def test_a_winner_that_is_its_seed_policy_is_named(tmp_path) -> None:
    out = tmp_path / "seeded"
    argv = [a for a in BASE if a not in ("--episodes", "3")]
    assert compare.main([*argv, "--episodes", "1", "--seed-policies", "uniform",
                         "--strategies", "amc-ddpg,uniform", "--finetune-epochs", "0",
                         "--out", str(out), "--wandb-mode", "disabled"]) == 0
    results = json.loads((out / "results.json").read_text())
    row, uni = results["strategies"]["amc-ddpg"], results["strategies"]["uniform"]
    assert row["found_at_episode"] == 0 and row["seed_policy"] == "uniform"
    assert row["keep_ratios"] == pytest.approx(uni["keep_ratios"])
    assert results["config"]["seed_policies"] == ["uniform"]
    assert "the uniform policy it was seeded with" in (out / "report.md").read_text()


def test_wandb_failure_falls_back_and_keeps_the_report(tmp_path, monkeypatch, capsys) -> None:
    import wandb

    def broken(*_, **__):
        raise RuntimeError("no wandb here")

    monkeypatch.setattr(wandb, "init", broken)
    out = tmp_path / "c"
    assert compare.main([*BASE, "--strategies", "uniform", "--out", str(out),
                         "--wandb-mode", "offline"]) == 0
    assert "wandb could not start" in capsys.readouterr().err
    assert (out / "report.md").is_file() and (out / "results.json").is_file()


def _run_entry(monkeypatch, capsys, argv):
    monkeypatch.setattr(sys, "argv", ["amc-compare", *argv])
    with pytest.raises(SystemExit) as exc:
        compare.entry()
    return exc.value.code, capsys.readouterr().err.strip().splitlines()


def test_unknown_strategy_lists_names(tmp_path, monkeypatch, capsys) -> None:
    code, err = _run_entry(monkeypatch, capsys, [*BASE, "--strategies", "uniform,magic",
                                                  "--out", str(tmp_path / "o")])
    assert code == 2 and len(err) == 1
    assert "unknown strategy 'magic'; valid names: " in err[0] and "sensitivity" in err[0]
    assert not (tmp_path / "o").exists()


def test_search_folder_for_another_budget_is_refused(tmp_path, monkeypatch, capsys) -> None:
    s = tmp_path / "s"
    assert search.main(["--model", "cnn", "--dataset", "synthetic", "--eval-size", "32",
                        "--agent", "random", "--episodes", "2", "--budget", "0.7",
                        "--no-progress", "--wandb-mode", "disabled", "--out", str(s)]) == 0
    code, err = _run_entry(monkeypatch, capsys, [*BASE, "--strategies", "random,uniform",
                                                  "--search", str(s), "--out",
                                                  str(tmp_path / "o"), "--wandb-mode",
                                                  "disabled"])
    assert code == 2 and len(err) == 1
    assert "cannot be reused" in err[0] and "at 0.7, not flops at 0.5" in err[0]
    assert not (tmp_path / "o").exists()


def test_diverged_finetune_is_reported_not_scored(tmp_path) -> None:
    # A learning rate this large sends the loss to inf/NaN within the first steps.
    out = tmp_path / "div"
    assert compare.main([*BASE, "--strategies", "uniform,global", "--finetune-lr", "1e12",
                         "--out", str(out), "--wandb-mode", "offline"]) == 0
    results = json.loads((out / "results.json").read_text())
    for row in results["strategies"].values():
        assert row["test_acc"] is None
        assert "training diverged" in row["diverged"]
        assert 0 <= row["test_acc_before_finetune"] <= 1  # the pruned model's own figure stays
    report = (out / "report.md").read_text()
    assert report.count("training diverged") == 2
    assert (out / "accuracy_vs_macs.png").stat().st_size > 1000
    runs = {r["name"]: r for r in map(read_offline_run, offline_runs(out))}
    assert "test_acc" not in runs["strategy-uniform"]["summary"]


def test_bad_agent_setting_is_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                 capsys) -> None:
    argv = [*BASE, "--strategies", "uniform,amc-ddpg", "--agent-kwargs", "{no_such: 1}",
            "--out", str(tmp_path / "o"), "--wandb-mode", "disabled"]
    code, err = _run_entry(monkeypatch, capsys, argv)
    assert code == 2 and len(err) == 1 and "no_such" in err[0]
    assert not (tmp_path / "o").exists()


def test_short_finetune_uses_one_seeded_subset(tmp_path, monkeypatch, capsys) -> None:
    from amc_agent.policies.compare import finetune_subset
    from tests.amc_env.helpers import synthetic

    data = synthetic()
    a, b, c = (finetune_subset(data, 40, s) for s in (0, 0, 1))
    assert len(a.train) == 40 and a.train.indices == b.train.indices != c.train.indices
    assert finetune_subset(data, 0, 0) is data
    out = tmp_path / "short"
    assert compare.main([*BASE, "--strategies", "uniform", "--finetune-images", "40",
                         "--out", str(out), "--wandb-mode", "disabled"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["finetune_images"] == 40
    assert "1 epoch(s) on 40 training images" in (out / "report.md").read_text()
    code, err = _run_entry(monkeypatch, capsys, [*BASE, "--strategies", "uniform",
                                                  "--finetune-images", "100000", "--out",
                                                  str(tmp_path / "o"), "--wandb-mode",
                                                  "disabled"])
    assert code == 2 and len(err) == 1 and "--finetune-images must be in [0, " in err[0]
    assert not (tmp_path / "o").exists()


def test_black_box_strategies_with_per_agent_settings(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "bb"
    argv = [a for a in BASE if a not in ("--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}")]
    per_agent = "{amc-ddpg: {warmup_episodes: 2, batch_size: 4}, tpe: {n_startup_trials: 2}}"
    assert compare.main([*argv, "--agent-kwargs", per_agent, "--finetune-epochs", "0",
                         "--strategies", "amc-ddpg,tpe,cmaes,uniform", "--out", str(out),
                         "--wandb-mode", "disabled"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["strategies"]
    assert rows["amc-ddpg"]["warmup_episodes"] == 2 and rows["tpe"]["warmup_episodes"] == 2
    assert rows["cmaes"]["warmup_episodes"] == 1
    assert set(results["curves"]) == {"amc-ddpg", "tpe", "cmaes"}
    assert all(r["budget_ok"] for r in rows.values())
    # A flat DDPG setting handed to TPE is refused before anything is written.
    code, err = _run_entry(monkeypatch, capsys, [*BASE, "--strategies", "amc-ddpg,tpe",
                                                  "--out", str(tmp_path / "o")])
    assert code == 2 and len(err) == 1 and "agent 'tpe' rejects settings" in err[0]
    assert not (tmp_path / "o").exists()


def test_resume_continues_searches_and_redoes_the_selection(tmp_path, monkeypatch,
                                                             capsys) -> None:
    out = tmp_path / "cmp"
    first = [*BASE, "--strategies", "random,uniform", "--wandb-mode", "disabled",
             "--rescore-finetune", "0", "--out", str(out)]
    assert compare.main(first) == 0
    episodes = (out / "search-random" / "episodes.jsonl").read_text()
    before = json.loads((out / "results.json").read_text())
    assert before["config"]["rescore_finetune"] == 0
    assert before["strategies"]["random"]["rescore_finetune_images"] == 0
    # A finished search plays no episode again; the winner is chosen again under the new flags.
    assert compare.main([*first[:-4], "--rescore-finetune", "64", "--resume",
                         "--out", str(out)]) == 0
    assert (out / "search-random" / "episodes.jsonl").read_text() == episodes
    after = json.loads((out / "results.json").read_text())
    assert after["config"]["rescore_finetune"] == 64
    assert after["strategies"]["random"]["rescore_finetune_images"] == 64
    assert after["strategies"]["uniform"] == before["strategies"]["uniform"] | {
        "latency": after["strategies"]["uniform"]["latency"]}
    records = json.loads((out / "search-random" / "rescore.json").read_text())
    assert all(r["finetune"]["images"] == 64 for r in records)
    # More episodes continue the search from its checkpoint: the first ones are kept as they were.
    assert compare.main([*first[:-4], "--episodes", "5", "--resume", "--out", str(out)]) == 0
    grown = (out / "search-random" / "episodes.jsonl").read_text().splitlines()
    assert len(grown) == 5 and "\n".join(grown[:3]) + "\n" == episodes
    # Another budget cannot continue these searches: one line, exit 2, nothing touched.
    code, err = _run_entry(monkeypatch, capsys, [*first[:-2], "--budget", "0.7", "--resume",
                                                  "--out", str(out)])
    assert code == 2 and len(err) == 1
    assert "--resume:" in err[0] and "at 0.5, not flops at 0.7" in err[0]
    assert (out / "search-random" / "episodes.jsonl").read_text().splitlines() == grown
    code, err = _run_entry(monkeypatch, capsys, [*first[:-2], "--out", str(out)])
    assert code == 2 and "use --resume" in err[0]


def test_a_network_two_strategies_chose_is_fine_tuned_once(tmp_path, monkeypatch) -> None:
    """With criterion group-l2 Torch-Pruning's uniform and global pruning keep the same channels
    as ours on this model: each network is fine-tuned once, its second row says whose network it
    is, and the figures are exactly those a second fine-tune of it gives."""
    from amc_agent.policies import compare as compare_module
    argv = [*[a if a != "l1" else "group-l2" for a in BASE], "--strategies",
            "uniform,tp-uniform,global,tp-global", "--finetune-seeds", "2",
            "--wandb-mode", "disabled"]
    calls = []
    real = compare_module.train_seeds

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_module, "train_seeds", counted)
    assert compare.main([*argv, "--out", str(tmp_path / "once")]) == 0
    once = json.loads((tmp_path / "once" / "results.json").read_text())["strategies"]
    assert len(calls) == 2
    assert once["tp-uniform"]["same_network_as"] == "uniform"
    assert once["tp-global"]["same_network_as"] == "global"
    assert "same_network_as" not in once["uniform"] and "same_network_as" not in once["global"]
    report = (tmp_path / "once" / "report.md").read_text()
    assert "tp-global chose the same network as global" in report
    keys = iter(range(100))
    monkeypatch.setattr(compare_module, "network_key", lambda model: str(next(keys)))
    assert compare.main([*argv, "--out", str(tmp_path / "twice")]) == 0
    twice = json.loads((tmp_path / "twice" / "results.json").read_text())["strategies"]
    assert len(calls) == 6
    for name in ("tp-uniform", "tp-global"):
        assert "same_network_as" not in twice[name]
        for field in ("test_acc_seeds", "test_acc", "test_acc_std", "finetune_histories"):
            assert once[name][field] == twice[name][field]
