"""Compare a learned policy against heuristic ratios at the same budget, measured the same way.

For each strategy a policy is produced (an agent's search, or a heuristic), applied to the same
checkpoint, fine-tuned with the same recipe and seeds, and measured the same way: validation
accuracy before fine-tuning on the search's images (its own signal) and on held-out validation
images no episode saw, test accuracy before and after fine-tuning (mean and standard deviation over
``finetune_seeds`` seeds), MACs, params and latency with its spread, device, batch size and threads.
``scratch`` trains the first searched architecture from freshly initialised weights (Liu et al.,
ICLR 2019, scratch-E), with the same seeds.

Every strategy spends the same budget: agents through the filling action wall, heuristics
completed through it (amc_agent.policies.heuristics); each row records the cost it kept and whether
it is within one rounding step of the budget (``budget_ok``), and the report flags a row that
is not.

Strategy names: any registered agent (``amc-ddpg``, ``td3``, ..., the black-box ``tpe`` and
``cmaes``, and ``random``, random search, all with the same episode budget), the heuristics
``uniform``, ``sensitivity`` and ``global``, Torch-Pruning's own pruning ``tp-uniform`` and
``tp-global`` (amc_agent.policies.peers: its default importance chooses their channels whatever
``--criterion`` says, because that is what a Torch-Pruning user gets), and ``scratch``. Each row
records the criterion that chose its channels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import Subset

from amc_agent.agents import AGENTS
from amc_agent.agents.rescore import ShortFinetune, resolve_finetune, resolve_top
from amc_agent.agents.rng import global_rng_state, set_global_rng_state
from amc_agent.agents.search import STATE_FILE, Search, SearchConfig
from amc_agent.agents.tracking import Tracker
from amc_agent.agents.workers import EpisodePool
from amc_agent.env import distributed
from amc_agent.env.checkpoint import state_digest
from amc_agent.env.cost import measure_cost
from amc_agent.env.datasets import DataSplits
from amc_agent.env.env import ChannelPruningEnv, EnvConfig
from amc_agent.env.errors import UserError
from amc_agent.env.evaluation import accuracy
from amc_agent.env.models import clone_model
from amc_agent.env.training import TrainConfig
from amc_agent.policies.apply import check_in_range, run_actor
from amc_agent.policies.artifact import Policy, fingerprint
from amc_agent.policies.finetune import (
    finetune_or_diverged,
    interleaved_latency,
    measure,
    scratch_model,
)
from amc_agent.policies.heuristics import HEURISTICS
from amc_agent.policies.peers import PEER_CRITERION, PEER_STRATEGIES
from amc_agent.policies.stats import difference, mean_std

HEURISTIC_STRATEGIES = ("uniform", "sensitivity", "global", *PEER_STRATEGIES)


TRANSFER = "transfer"
"""The strategy that runs a trained actor (``--transfer POLICY``, e.g. a search on other models
or a budget-conditioned one) over this model at this budget: zero-shot policy transfer."""


def strategy_names() -> list[str]:
    """Every valid strategy name."""
    return [*AGENTS.names(), *HEURISTIC_STRATEGIES, TRANSFER, "scratch"]


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


def transfer_ratios(source: Path, env: ChannelPruningEnv) -> dict[str, float]:
    """Keep ratios of the actor saved with the policy ``source`` (policy.json or its folder)
    run noise-free over ``env``'s model under its wall (amc_agent.policies.apply)."""
    path = source / "policy.json" if source.is_dir() else source
    policy = Policy.load(path)
    if policy.actor is None:
        raise UserError(f"--transfer {source}: the policy carries no actor to run on this model")
    check_in_range(policy, env.cfg.budget)
    return dict(run_actor(policy, path.parent, env)["keep_ratios"])


def transfer_origin(source: Path) -> dict[str, Any]:
    """Where the actor of ``source`` (policy.json or its folder) was trained, for the results:
    its search's checkpoints (from the search's ``config.yaml``, ``[]`` if absent) and budget
    range (``None``: one budget, ``transfer_budget``), its episode count and observation set."""
    path = source / "policy.json" if source.is_dir() else source
    policy = Policy.load(path)
    config = path.parent / "config.yaml"
    trained_on = (yaml.safe_load(config.read_text()) or {}).get("checkpoint") \
        if config.is_file() else None
    return {"transfer": str(source), "transfer_trained_on": [str(c) for c in trained_on or []],
            "transfer_budget_range": policy.budget_range, "transfer_budget": policy.budget,
            "transfer_episodes": policy.agent.get("episodes"),
            "transfer_observation": policy.observation}


@dataclass
class CompareConfig:
    """What one comparison runs."""

    strategies: list[str]
    episodes: int = 300
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    """Agent settings: ``{agent name: settings}`` for each agent (e.g. ``{amc-ddpg:
    {warmup_episodes: 50}, tpe: {n_startup_trials: 20}}``), or one flat mapping for every
    searched strategy but ``random`` (see :func:`settings_for`)."""
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, lr=0.01))
    scratch_epochs: int = 10
    seed: int = 0
    finetune_seeds: int = 1
    """Fine-tune (and scratch-train) every strategy with seeds ``seed .. seed + N - 1``."""
    finetune_images: int = 0
    """Fine-tune on this many training images, one subset drawn with ``seed`` and shared by
    every strategy and fine-tune seed (a short fine-tune, as NetAdapt's per-proposal one);
    0: the whole training split. ``scratch`` always trains on the whole split."""
    rescore_top: int | None = None
    """Searched strategies: re-score this many best policies on held-out images
    (amc_agent.agents.rescore; ``None``: its default where the split has such images)."""
    rescore_images: int | None = None
    """Held-out validation images for re-scoring and for every row's held-out accuracy."""
    rescore_finetune: int | None = None
    """Searched strategies: fine-tune each re-scored policy on this many training images (one
    pass at the fine-tune learning rate) before its held-out score (amc_agent.agents.rescore);
    ``None``: its default whenever policies are re-scored; 0: off."""
    resume: bool = False
    """Continue the searches a previous run of this comparison left in ``out`` (from their last
    checkpoint; a finished one plays no episode) and redo what follows them: the winners'
    selection under this config's re-scoring flags, the fine-tunes and the report."""
    seed_policies: tuple[str, ...] = ()
    """Heuristics whose policies every searched strategy plays first (SearchConfig)."""
    search_dir: Path | None = None
    transfer: Path | None = None
    """The policy whose actor the ``transfer`` strategy runs (:func:`transfer_ratios`)."""
    wandb_mode: str = "offline"
    wandb_project: str = "amc"
    group: str = "compare"
    latency_time_s: float = 0.5
    latency_backend: str | None = None
    """amc_agent.env.latency.BACKENDS (default: cudagraph on CUDA, eager on CPU)."""
    progress: bool = True


def settings_for(agent_kwargs: dict[str, Any], agent: str) -> dict[str, Any]:
    """The settings ``agent`` gets: its own entry when every key of ``agent_kwargs`` names an
    agent, else the flat mapping (which ``random``, taking none, never gets)."""
    if agent_kwargs and all(k in AGENTS for k in agent_kwargs):
        value = agent_kwargs.get(agent, {})
        if not isinstance(value, dict):
            raise UserError(f"--agent-kwargs for {agent!r} must be a mapping, got {value!r}")
        return value
    return {} if agent == "random" else agent_kwargs


def reusable_search(search_dir: Path, agent: str, env: ChannelPruningEnv,
                    flag: str = "--search") -> Policy:
    """The policy of a finished search folder, if it fits this comparison (else a UserError
    naming ``flag``)."""
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
        raise UserError(f"{flag} {search_dir} cannot be reused: {'; '.join(reasons)}")
    return policy


def resumable_search(folder: Path, agent: str, env: ChannelPruningEnv, episodes: int) -> bool:
    """Whether ``folder`` holds a checkpointed search of ``agent`` that this comparison can
    continue (a UserError if it belongs to another setting). A folder a search left before its
    first checkpoint is removed: that search starts again."""
    state = folder / STATE_FILE
    if not state.exists():
        if folder.exists():
            shutil.rmtree(folder)
        return False
    if (folder / "policy.json").exists():
        reusable_search(folder, agent, env, flag="--resume:")
    done = sum(1 for ln in (folder / "episodes.jsonl").read_text().splitlines() if ln.strip()) \
        if (folder / "episodes.jsonl").exists() else 0
    if done > episodes:
        raise UserError(f"{folder} already ran {done} episodes, more than --episodes {episodes}; "
                        "resume with at least as many")
    return True


def run_compare(model: nn.Module, recipe: dict[str, Any], data: DataSplits, env_cfg: EnvConfig,
                cfg: CompareConfig, out: Path, device: str,
                pool: EpisodePool | None = None) -> dict[str, Any] | None:
    """Run every strategy; returns the ``results.json`` content (also written by the caller).
    ``pool``: workers every search scores its episodes on (built from the same model, data and
    ``env_cfg``; amc_agent.agents.workers). Under torchrun (amc_agent.env.distributed) rank 0
    searches and measures, every process fine-tunes, and the others return ``None``."""
    check_strategies(cfg.strategies)
    if (TRANSFER in cfg.strategies) != (cfg.transfer is not None):
        raise UserError("the transfer strategy and --transfer POLICY go together")
    env = ChannelPruningEnv(model, data, env_cfg)
    # Before anything runs or is written (a bad --transfer is one line), and without moving the
    # global generators the searches and fine-tunes draw from.
    rng = global_rng_state()
    transferred = transfer_ratios(cfg.transfer, env) if cfg.transfer is not None else None
    set_global_rng_state(rng)
    # Replays must not move the wall the heuristics are completed through (a latency wall
    # recalibrates on every timed episode): it is fixed, at the searches' final aim below.
    replay_env = ChannelPruningEnv(model, data, env_cfg, fill_budget=False, latency_margin=0.0)
    peer_env = replay_env.with_criterion(PEER_CRITERION)
    reused: Policy | None = None
    if cfg.search_dir is not None:
        agent = Policy.load(cfg.search_dir / "policy.json").agent.get("name")
        if agent not in cfg.strategies:
            raise UserError(f"--search {cfg.search_dir} was searched by {agent!r}, which is not "
                            "among --strategies")
        reused = reusable_search(cfg.search_dir, agent, env)
    context = {"recipe": recipe, "criterion": str(env_cfg.criterion)}
    top = resolve_top(cfg.rescore_top, env)
    tune = resolve_finetune(cfg.rescore_finetune, top, env.train_split)
    # Every agent is built (its settings checked) before anything is written.
    searches = {} if not distributed.is_main() else {name: Search(env, SearchConfig(
        agent=name, episodes=cfg.episodes, seed=cfg.seed,
        agent_kwargs=settings_for(cfg.agent_kwargs, name), wandb_mode=cfg.wandb_mode,
        wandb_project=cfg.wandb_project, wandb_group=cfg.group, progress=cfg.progress,
        rescore_top=top, rescore_images=cfg.rescore_images,
        rescore_finetune=ShortFinetune(tune, lr=cfg.finetune.lr, seed=cfg.seed)
        if tune else None, seed_policies=cfg.seed_policies),
        out / f"search-{name}", context, pool=pool)
        for name in cfg.strategies
        if name in AGENTS and (reused is None or reused.agent.get("name") != name)}
    resumed = {name: resumable_search(s.out, name, env, cfg.episodes) if cfg.resume else False
               for name, s in searches.items()}
    ft_data = finetune_subset(data, cfg.finetune_images, cfg.seed)
    main = distributed.is_main()
    if main:
        out.mkdir(parents=True, exist_ok=True)
    original = measure(model, data, device, latency_batches=())
    original["test_images"] = len(data.test)  # type: ignore[arg-type]
    # Under torchrun rank 0 alone searches (the others wait for its plan) and every process
    # then fine-tunes the same pruned models data-parallel.
    plan = _plan(cfg, searches, resumed, reused, transferred, env, replay_env, peer_env) \
        if main else None
    plan = distributed.broadcast(plan)
    replay_env.wall.budget = plan["wall_budget"]
    models: dict[str, nn.Module] = {"original": model}
    results: dict[str, Any] = {"original": original, "strategies": {}, "curves": plan["curves"]}
    first_agent: dict[str, Any] | None = None
    tuned: dict[str, Tuned] = {}
    for name, (ratios, extra) in plan["strategies"].items():
        row, record, models[name] = _evaluate(
            name, ratios, peer_env if name in PEER_STRATEGIES else replay_env, ft_data, cfg,
            device, tuned)
        row.update(extra)
        results["strategies"][name] = row
        if name in AGENTS and first_agent is None:
            first_agent = {"name": name, "record": record}
        if main:
            _policy_file(out, name, replay_env, context, row, cfg)
    if "scratch" in cfg.strategies and first_agent is not None:
        results["strategies"]["scratch"], models["scratch"] = _scratch(
            first_agent, results["strategies"][first_agent["name"]], recipe, data, cfg, device)
    if not main:
        return None
    lat = interleaved_latency(models, data.spec.input_shape, device,
                              min_time_s=cfg.latency_time_s, backend=cfg.latency_backend)
    original["latency"] = lat["original"]
    for name, row in results["strategies"].items():
        row["latency"] = lat[name]
    results["differences"] = differences(results)
    results["selection"] = {"rescore_top": top, "rescore_finetune": tune}
    _track(results, cfg, env_cfg, out)
    return results


def _plan(cfg: CompareConfig, searches: dict[str, Search], resumed: dict[str, bool],
          reused: Policy | None, transferred: dict[str, float] | None, env: ChannelPruningEnv,
          replay_env: ChannelPruningEnv, peer_env: ChannelPruningEnv) -> dict[str, Any]:
    """Run the searches and the heuristics: ``{"strategies": {name: (keep ratios, extra row
    fields)}, "curves": {name: search curve}, "wall_budget": where the heuristics aimed}``, in
    ``cfg.strategies`` order (``scratch`` follows from the first agent's row)."""
    searched = {name: search.run(resume=resumed[name]) for name, search in searches.items()}
    # Heuristics aim where the searches' wall ended: for a latency target that is the budget
    # less the margin learnt from measured episodes (the nominal budget for MACs and params).
    replay_env.wall.budget = env.wall.budget
    plan: dict[str, Any] = {"strategies": {}, "curves": {}, "wall_budget": env.wall.budget}
    for name in cfg.strategies:
        if name == "scratch":
            continue
        extra: dict[str, Any] = {}
        if name in AGENTS:
            warmup = None
            if name not in searches:
                policy = reused  # type: ignore[assignment]
                plan["curves"][name] = _curve(cfg.search_dir)  # type: ignore[arg-type]
            else:
                search, res = searches[name], searched[name]
                warmup = getattr(search.agent, "warmup", None)
                if res.policy is None:
                    raise UserError(f"strategy {name}: no episode met the budget")
                policy = res.policy
                plan["curves"][name] = _curve(search.out)
            ratios = policy.keep_ratios
            found, seeds = policy.agent.get("found_at_episode"), \
                policy.agent.get("seed_policies") or []
            extra = {"found_at_episode": found, "warmup_episodes": warmup,
                     "seed_policy": seeds[found] if found is not None and found < len(seeds)
                     else None,
                     "rescore_finetune_images": (policy.metrics.get("rescore_finetune")
                                                 or {}).get("images", 0)}
        elif name == TRANSFER:
            ratios = transferred  # type: ignore[assignment]
        else:
            ratios = HEURISTICS.get(name)(peer_env if name in PEER_STRATEGIES else replay_env,
                                          seed=cfg.seed)
        plan["strategies"][name] = (dict(ratios), extra)
    return plan


def finetune_subset(data: DataSplits, images: int, seed: int) -> DataSplits:
    """``data`` with its (augmented) training split cut to ``images`` seeded images (all of
    them for 0); :class:`UserError` for more than the split holds."""
    n = len(data.train)  # type: ignore[arg-type]
    if images < 0 or images > n:
        raise UserError(f"--finetune-images must be in [0, {n}] for this split, got {images}")
    if not images or images == n:
        return data
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:images]
    return dataclasses.replace(data, train=Subset(data.train, pick.tolist()))


def _seeds(cfg: CompareConfig) -> list[int]:
    return [cfg.seed + i for i in range(cfg.finetune_seeds)]


def train_seeds(model: nn.Module, data: DataSplits, train: TrainConfig, seeds: list[int],
                device: str, progress: bool) -> tuple[dict[str, Any], nn.Module]:
    """Train a copy of ``model`` once per seed; returns the accuracy record (per seed, mean,
    std; ``None`` for a diverged seed) and the first seed's trained model."""
    accs: list[float | None] = []
    histories: list[list[dict[str, Any]]] = []
    diverged: list[str] = []
    first: nn.Module | None = None
    for seed in seeds:
        m = clone_model(model)
        history, div = finetune_or_diverged(m, data, dataclasses.replace(train, seed=seed),
                                            device, progress)
        histories.append(history)
        accs.append(None if div else measure(m, data, device, latency_batches=())["test_acc"])
        if div:
            diverged.append(f"seed {seed}: {div}")
        first = m if first is None else first
    assert first is not None
    done = [a for a in accs if a is not None]
    mean, std = mean_std(done) if done else (None, None)
    return {"test_acc": mean, "test_acc_std": std, "test_acc_seeds": accs, "seeds": seeds,
            "finetune_histories": histories, "diverged": "; ".join(diverged) or None}, first


def _scratch(first_agent: dict[str, Any], agent_row: dict[str, Any], recipe: dict[str, Any],
             data: DataSplits, cfg: CompareConfig, device: str
             ) -> tuple[dict[str, Any], nn.Module]:
    """The first searched architecture, re-initialised and trained for ``scratch_epochs`` with
    each fine-tune seed (the initialisation follows the seed too)."""
    train = TrainConfig(epochs=cfg.scratch_epochs, batch_size=cfg.finetune.batch_size)
    accs: list[float | None] = []
    diverged: list[str] = []
    model: nn.Module | None = None
    for seed in _seeds(cfg):
        init = scratch_model(recipe, first_agent["record"], seed).to(device)
        rec, trained = train_seeds(init, data, train, [seed], device, cfg.progress)
        accs += rec["test_acc_seeds"]
        diverged += [rec["diverged"]] if rec["diverged"] else []
        model = trained if model is None else model
    assert model is not None
    done = [a for a in accs if a is not None]
    mean, std = mean_std(done) if done else (None, None)
    m = measure_cost(model, data.spec.input_shape)  # test accuracy is already per seed
    return {"strategy": "scratch", "architecture_of": first_agent["name"],
            "keep_ratios": agent_row["keep_ratios"], "val_acc_before_finetune": None,
            "val_acc_heldout": None, "test_acc_before_finetune": None,
            "test_acc": mean, "test_acc_std": std, "test_acc_seeds": accs, "seeds": _seeds(cfg),
            "macs": m.macs, "params": m.params, "macs_kept": agent_row["macs_kept"],
            "cost_kept": agent_row["cost_kept"], "budget_ok": agent_row["budget_ok"],
            "epochs": cfg.scratch_epochs,
            "diverged": "; ".join(diverged) or None}, model


def differences(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each strategy's test accuracy after fine-tuning against the best strategy's (highest
    mean): the difference of means and whether it exceeds the seed spread
    (amc_agent.policies.stats)."""
    rows = {n: [a for a in r.get("test_acc_seeds", []) if a is not None]
            for n, r in results["strategies"].items()}
    rows = {n: v for n, v in rows.items() if v}
    if not rows:
        return {}
    best = max(rows, key=lambda n: sum(rows[n]) / len(rows[n]))
    return {n: {"versus": best, **difference(v, rows[best])} for n, v in rows.items()
            if n != best}


@dataclass
class Tuned:
    """A pruned network already fine-tuned in this comparison: the first strategy that chose
    it, its fine-tune record and its first seed's fine-tuned model."""

    strategy: str
    record: dict[str, Any]
    model: nn.Module


def network_key(model: nn.Module) -> str:
    """Which network ``model`` is: its architecture (the module tree) and every tensor's bytes.
    Two strategies whose pruned models share it are one network, and fine-tuning it again with
    the same seeds and images would repeat the same computation."""
    return hashlib.sha256(f"{model!r}|{state_digest(model.state_dict())}".encode()).hexdigest()


def _evaluate(name: str, ratios: dict[str, float], env: ChannelPruningEnv, data: DataSplits,
              cfg: CompareConfig, device: str, tuned: dict[str, Tuned]
              ) -> tuple[dict[str, Any], dict[str, Any], nn.Module]:
    """Play ``ratios`` in ``env`` and measure the pruned network before and after fine-tuning
    with every seed. A network an earlier strategy already chose (the same channels, e.g.
    Torch-Pruning's global ranking and ours) is not fine-tuned again: its row takes the first
    one's record and says so (``same_network_as``), one network measured once."""
    info = env.play(ratios)
    pruned = env.pruned_model()
    key = network_key(pruned)
    heldout = env.heldout_batches(cfg.rescore_images) if env.heldout_size else []
    before = measure(pruned, data, device, latency_batches=())
    counts = [info["kept_channels"][u.name] for u in env.units]
    full_cost = env.budget_abs / env.cfg.budget
    row: dict[str, Any] = {
        "strategy": name, "criterion": env.criterion.spec, "keep_ratios": info["keep_ratios"],
        "val_acc_before_finetune": info["accuracy"],
        "val_acc_heldout": accuracy(pruned, heldout) if heldout else None,
        "heldout_images": sum(len(y) for _, y in heldout),
        "test_acc_before_finetune": before["test_acc"],
        "macs": before["macs"], "params": before["params"],
        "macs_kept": before["macs"] / env.cost.original["flops"],
        "cost_kept": float(env.wall.cost(np.array([counts], dtype=np.float64))[0] / full_cost),
        "budget_ok": env.wall.within_one_step(counts),
    }
    model = pruned
    if key in tuned:
        row.update(tuned[key].record, same_network_as=tuned[key].strategy)
        model = tuned[key].model
    elif cfg.finetune.epochs:
        record, model = train_seeds(pruned, data, cfg.finetune, _seeds(cfg), device,
                                    cfg.progress)
        row.update(record)
        tuned[key] = Tuned(name, record, model)
    else:
        row.update(test_acc=before["test_acc"], test_acc_std=None,
                   test_acc_seeds=[before["test_acc"]], seeds=[], diverged=None)
    return row, info["pruning"], model


def _curve(folder: Path) -> dict[str, list[float]]:
    rows = [json.loads(ln) for ln in (folder / "episodes.jsonl").read_text().splitlines() if ln]
    return {"reward": [r["reward"] for r in rows],
            "best_reward": [r["best_reward"] for r in rows],
            "accuracy": [r["accuracy"] for r in rows]}


def _policy_file(out: Path, name: str, env: ChannelPruningEnv, context: dict[str, Any],
                 row: dict[str, Any], cfg: CompareConfig) -> None:
    Policy(model=context["recipe"], fingerprint=fingerprint(env.units),
           input_shape=list(env.data_spec.input_shape), dataset=env.data_spec.name,
           target=env.cfg.target, budget=env.cfg.budget, criterion=row["criterion"],
           round_to=env.cfg.round_to, strict_round=env.cfg.strict_round, lbound=env.cfg.lbound,
           keep_ratios=row["keep_ratios"],
           metrics={"val_accuracy": row["val_acc_before_finetune"],
                    "val_accuracy_heldout": row["val_acc_heldout"], "macs": row["macs"],
                    "params": row["params"], "test_acc_after_finetune": row["test_acc"],
                    "test_acc_after_finetune_std": row["test_acc_std"],
                    "finetune_seeds": row["seeds"]},
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
        t.summary({k: row[k] for k in ("val_acc_before_finetune", "val_acc_heldout",
                                       "test_acc_before_finetune", "test_acc", "test_acc_std",
                                       "macs", "params", "cost_kept", "budget_ok")
                   if row.get(k) is not None})
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


TABLE_COLUMNS = ["strategy", "val acc search (%)", "val acc held-out (%)",
                 "test acc before FT (%)", "test acc after FT (%)", "std after FT (%)",
                 "fine-tune seeds", "MACs (M)", "MACs kept", "cost kept", "within one step",
                 "params (k)", "latency b1 (ms)", "IQR b1 (ms)", "latency b64 (ms)",
                 "IQR b64 (ms)", "speed-up b1", "speed-up b64"]


def _pct(v: float | None) -> float | None:
    return None if v is None else 100 * v


def table_rows(results: dict[str, Any]) -> list[list[Any]]:
    """The comparison table as numbers (accuracies in percent; one row per strategy, the
    original model first), for wandb and the report."""
    o = results["original"]
    ol = o["latency"]
    rows = [["original", None, None, _pct(o["test_acc"]), _pct(o["test_acc"]), None, None,
             o["macs"] / 1e6, 1.0, 1.0, None, o["params"] / 1e3, ol["b1"]["median_ms"],
             ol["b1"]["iqr_ms"], ol["b64"]["median_ms"], ol["b64"]["iqr_ms"], 1.0, 1.0]]
    for name, r in results["strategies"].items():
        lat = r["latency"]
        rows.append([name, _pct(r["val_acc_before_finetune"]), _pct(r.get("val_acc_heldout")),
                     _pct(r["test_acc_before_finetune"]), _pct(r["test_acc"]),
                     _pct(r.get("test_acc_std")), len(r.get("test_acc_seeds") or []),
                     r["macs"] / 1e6, r["macs"] / o["macs"], r.get("cost_kept"),
                     r.get("budget_ok"), r["params"] / 1e3, lat["b1"]["median_ms"],
                     lat["b1"]["iqr_ms"], lat["b64"]["median_ms"], lat["b64"]["iqr_ms"],
                     speedup(ol["b1"], lat["b1"]), speedup(ol["b64"], lat["b64"])])
    return rows


def speedup(original: dict[str, Any], pruned: dict[str, Any]) -> float:
    """The median over round-robin rounds of original / pruned latency (each round timed both
    back to back; amc_agent.policies.finetune.interleaved_latency)."""
    if "round_ms" not in original or "round_ms" not in pruned:  # results from before rounds
        return original["median_ms"] / pruned["median_ms"]
    return statistics.median(o / p for o, p in zip(original["round_ms"], pruned["round_ms"],
                                                    strict=True))
