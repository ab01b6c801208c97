"""Compare a learned policy against heuristic ratios at the same budget, measured the same way.

For each strategy a policy is produced (an agent's search, or a heuristic), applied to the same
checkpoint, fine-tuned with the same recipe and seed, and measured the same way: validation
accuracy before fine-tuning (the search's own signal), test accuracy after, MACs, params and
latency with its device, batch size and threads. ``scratch`` trains the first searched
architecture from freshly initialised weights (Liu et al., ICLR 2019, scratch-E).

Strategy names: any registered agent (``amc-ddpg``, ``td3``, ..., and ``random``, random search
with the same episode budget as the agents), the heuristics ``uniform``, ``sensitivity`` and
``global``, and ``scratch``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from agents import AGENTS
from agents.search import Search, SearchConfig
from agents.tracking import Tracker
from amc_env.datasets import DataSplits
from amc_env.env import ChannelPruningEnv, EnvConfig
from amc_env.errors import UserError
from amc_env.training import TrainConfig
from policies.artifact import Policy, fingerprint
from policies.finetune import finetune_or_diverged, interleaved_latency, measure, scratch_model
from policies.heuristics import HEURISTICS, play_ratios

HEURISTIC_STRATEGIES = ("uniform", "sensitivity", "global")


def strategy_names() -> list[str]:
    """Every valid strategy name."""
    return [*AGENTS.names(), *HEURISTIC_STRATEGIES, "scratch"]


def check_strategies(names: list[str]) -> None:
    """:class:`UserError` for unknown names (listing the valid ones) or a lone ``scratch``."""
    valid = strategy_names()
    for n in names:
        if n not in valid:
            raise UserError(f"unknown strategy {n!r}; valid names: {', '.join(valid)}")
    if not names:
        raise UserError("--strategies is empty")
    if "scratch" in names and not any(n in AGENTS for n in names):
        raise UserError("'scratch' trains a searched architecture: add an agent strategy")


@dataclass
class CompareConfig:
    """What one comparison runs."""

    strategies: list[str]
    episodes: int = 300
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, lr=0.01))
    scratch_epochs: int = 10
    seed: int = 0
    search_dir: Path | None = None
    wandb_mode: str = "offline"
    wandb_project: str = "amc"
    group: str = "compare"
    latency_time_s: float = 0.5
    progress: bool = True


def reusable_search(search_dir: Path, agent: str, env: ChannelPruningEnv) -> Policy:
    """The policy of a finished search folder, if it fits this comparison (else a UserError)."""
    policy = Policy.load(search_dir / "policy.json")
    reasons = []
    if policy.agent.get("name") != agent:
        reasons.append(f"it was searched by {policy.agent.get('name')!r}, not {agent!r}")
    if policy.fingerprint != fingerprint(env.units):
        reasons.append("it is for another model (unit structure differs)")
    if policy.target != env.cfg.target or abs(policy.budget - env.cfg.budget) > 1e-12:
        reasons.append(f"it targets {policy.target} at {policy.budget}, not {env.cfg.target} at "
                       f"{env.cfg.budget}")
    if policy.criterion != env.criterion.spec:
        reasons.append(f"it used criterion {policy.criterion!r}, not {env.criterion.spec!r}")
    if reasons:
        raise UserError(f"--search {search_dir} cannot be reused: {'; '.join(reasons)}")
    return policy


def run_compare(model: nn.Module, recipe: dict[str, Any], data: DataSplits, env_cfg: EnvConfig,
                cfg: CompareConfig, out: Path, device: str) -> dict[str, Any]:
    """Run every strategy; returns the ``results.json`` content (also written by the caller)."""
    check_strategies(cfg.strategies)
    env = ChannelPruningEnv(model, data, env_cfg)
    replay_env = ChannelPruningEnv(model, data, env_cfg, fill_budget=False)
    reused: Policy | None = None
    if cfg.search_dir is not None:
        agent = Policy.load(cfg.search_dir / "policy.json").agent.get("name")
        if agent not in cfg.strategies:
            raise UserError(f"--search {cfg.search_dir} was searched by {agent!r}, which is not "
                            "among --strategies")
        reused = reusable_search(cfg.search_dir, agent, env)
    out.mkdir(parents=True, exist_ok=True)
    original = measure(model, data, device, latency_batches=())
    models: dict[str, nn.Module] = {"original": model}
    results: dict[str, Any] = {"original": original, "strategies": {}, "curves": {}}
    first_agent: dict[str, Any] | None = None
    context = {"recipe": recipe, "criterion": str(env_cfg.criterion)}
    for name in cfg.strategies:
        if name == "scratch":
            continue
        curve = None
        if name in AGENTS:
            if reused is not None and reused.agent.get("name") == name:
                policy = reused
                curve = _curve(cfg.search_dir)
            else:
                folder = out / f"search-{name}"
                scfg = SearchConfig(agent=name, episodes=cfg.episodes, seed=cfg.seed,
                                    agent_kwargs=cfg.agent_kwargs if name != "random" else {},
                                    wandb_mode=cfg.wandb_mode, wandb_project=cfg.wandb_project,
                                    wandb_group=cfg.group, progress=cfg.progress)
                res = Search(env, scfg, folder, context).run()
                if res.policy is None:
                    raise UserError(f"strategy {name}: no episode met the budget")
                policy = res.policy
                curve = _curve(folder)
            ratios = policy.keep_ratios
        else:
            ratios = HEURISTICS.get(name)(replay_env, seed=cfg.seed)
        row, record, models[name] = _evaluate(name, ratios, replay_env, data, cfg, device)
        results["strategies"][name] = row
        if curve is not None:
            results["curves"][name] = curve
        if name in AGENTS and first_agent is None:
            first_agent = {"name": name, "record": record}
        _policy_file(out, name, replay_env, context, row, cfg)
    if "scratch" in cfg.strategies and first_agent is not None:
        scratch = scratch_model(recipe, first_agent["record"], cfg.seed).to(device)
        _, diverged = finetune_or_diverged(
            scratch, data, TrainConfig(epochs=cfg.scratch_epochs,
                                       batch_size=cfg.finetune.batch_size, seed=cfg.seed),
            device, cfg.progress)
        m = measure(scratch, data, device, latency_batches=())
        models["scratch"] = scratch
        results["strategies"]["scratch"] = {
            "strategy": "scratch", "architecture_of": first_agent["name"],
            "keep_ratios": results["strategies"][first_agent["name"]]["keep_ratios"],
            "val_acc_before_finetune": None, "test_acc": None if diverged else m["test_acc"],
            "test_acc_before_finetune": None, "macs": m["macs"], "params": m["params"],
            "epochs": cfg.scratch_epochs, "diverged": diverged}
    lat = interleaved_latency(models, data.spec.input_shape, device,
                              min_time_s=cfg.latency_time_s)
    original["latency"] = lat["original"]
    for name, row in results["strategies"].items():
        row["latency"] = lat[name]
    _track(results, cfg, env_cfg, out)
    return results


def _evaluate(name: str, ratios: dict[str, float], env: ChannelPruningEnv, data: DataSplits,
              cfg: CompareConfig, device: str
              ) -> tuple[dict[str, Any], dict[str, Any], nn.Module]:
    info = play_ratios(env, ratios)
    pruned = env.pruned_model()
    before = measure(pruned, data, device, latency_batches=())
    history, diverged = finetune_or_diverged(pruned, data, cfg.finetune, device, cfg.progress) \
        if cfg.finetune.epochs else ([], None)
    after = measure(pruned, data, device, latency_batches=()) \
        if cfg.finetune.epochs and diverged is None else before
    row = {"strategy": name, "keep_ratios": info["keep_ratios"],
           "val_acc_before_finetune": info["accuracy"],
           "test_acc_before_finetune": before["test_acc"],
           "test_acc": None if diverged else after["test_acc"],
           "macs": after["macs"], "params": after["params"], "finetune_history": history,
           "diverged": diverged}
    return row, info["pruning"], pruned


def _curve(folder: Path) -> dict[str, list[float]]:
    rows = [json.loads(ln) for ln in (folder / "episodes.jsonl").read_text().splitlines() if ln]
    return {"reward": [r["reward"] for r in rows],
            "best_reward": [r["best_reward"] for r in rows],
            "accuracy": [r["accuracy"] for r in rows]}


def _policy_file(out: Path, name: str, env: ChannelPruningEnv, context: dict[str, Any],
                 row: dict[str, Any], cfg: CompareConfig) -> None:
    Policy(model=context["recipe"], fingerprint=fingerprint(env.units),
           input_shape=list(env.data_spec.input_shape), dataset=env.data_spec.name,
           target=env.cfg.target, budget=env.cfg.budget, criterion=context["criterion"],
           round_to=env.cfg.round_to, lbound=env.cfg.lbound, keep_ratios=row["keep_ratios"],
           metrics={"val_accuracy": row["val_acc_before_finetune"], "macs": row["macs"],
                    "params": row["params"], "test_acc_after_finetune": row["test_acc"]},
           agent={"name": name, "seed": cfg.seed, "episodes": cfg.episodes},
           channels={u.name: u.channels for u in env.units},
           ).save(out / f"policy-{name}.json")


def _track(results: dict[str, Any], cfg: CompareConfig, env_cfg: EnvConfig, out: Path) -> None:
    """One wandb run per strategy in one group, plus a summary run with the table and charts."""
    base = {"budget": env_cfg.budget, "target": env_cfg.target,
            "criterion": str(env_cfg.criterion), "seed": cfg.seed,
            "finetune_epochs": cfg.finetune.epochs}
    for name, row in results["strategies"].items():
        t = Tracker(cfg.wandb_mode, out, cfg.wandb_project, name=f"strategy-{name}",
                    group=cfg.group, config={**base, "strategy": name}, job_type="strategy")
        t.summary({k: row[k] for k in ("val_acc_before_finetune", "test_acc", "macs", "params")
                   if row[k] is not None})
        t.log({k: v for k, v in (("test_acc", row["test_acc"]), ("macs", row["macs"]),
                                 ("params", row["params"]),
                                 ("latency_b1_ms", row["latency"]["b1"]["median_ms"]))
               if v is not None})
        names = list(row["keep_ratios"])
        t.bar("keep_ratios", names, [row["keep_ratios"][n] for n in names], "unit",
              "keep_ratio", f"{name}: keep ratio per unit")
        t.finish()
    t = Tracker(cfg.wandb_mode, out, cfg.wandb_project, name="summary", group=cfg.group,
                config=base, job_type="summary")
    t.table("comparison", TABLE_COLUMNS, table_rows(results))
    for name, curve in results["curves"].items():
        for i, (r, b) in enumerate(zip(curve["reward"], curve["best_reward"], strict=True)):
            t.log({f"{name}/reward": r, f"{name}/best_reward": b}, step=i)
    t.finish()


TABLE_COLUMNS = ["strategy", "val acc before FT", "test acc before FT", "test acc after FT",
                 "MACs (M)", "MACs kept", "params (k)", "latency b1 (ms)", "latency b64 (ms)",
                 "speed-up b1", "speed-up b64"]


def table_rows(results: dict[str, Any]) -> list[list[Any]]:
    """The comparison table (one row per strategy, original model first)."""
    o = results["original"]
    ob1, ob64 = o["latency"]["b1"]["median_ms"], o["latency"]["b64"]["median_ms"]
    rows = [["original", None, o["test_acc"], o["test_acc"], o["macs"] / 1e6, 1.0,
             o["params"] / 1e3, ob1, ob64, 1.0, 1.0]]
    for name, r in results["strategies"].items():
        b1, b64 = r["latency"]["b1"]["median_ms"], r["latency"]["b64"]["median_ms"]
        rows.append([name, r["val_acc_before_finetune"], r["test_acc_before_finetune"],
                     r["test_acc"], r["macs"] / 1e6, r["macs"] / o["macs"], r["params"] / 1e3,
                     b1, b64, ob1 / b1, ob64 / b64])
    return rows
