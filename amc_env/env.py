"""The Gymnasium channel-pruning environment (AMC, He et al., ECCV 2018, section 3)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from amc_agent.env.cost import count_macs, count_params
from amc_agent.env.costmodel import CostModel
from amc_agent.env.criteria import Criterion, UnitContext, make_criterion
from amc_agent.env.datasets import DataSplits
from amc_agent.env.errors import UserError
from amc_agent.env.evaluation import (
    accuracy,
    channels_last,
    fold_plan,
    inference_copy,
    recalibrate_bn,
    take_batches,
)
from amc_agent.env.latency import measure_latency
from amc_agent.env.latency_model import LatencyModel, calibrate_latency
from amc_agent.env.latency_table import LatencyTable, build_latency_table
from amc_agent.env.reconstruction import Calibrator
from amc_agent.env.rewards import Reward, make_reward
from amc_agent.env.surgery import Surgeon, full_group
from amc_agent.env.units import Unit, build_graph, discover_units
from amc_agent.env.wall import ActionWall, allowed_counts, round_channels, undominated_counts

TARGETS = ("flops", "params", "latency")
OBS_FEATURES = ("t", "channels", "in_channels", "height", "width", "stride", "kernel", "macs",
                "members", "reduced", "rest", "prev_action", "budget", "target_params",
                "target_latency")
"""AMC's state (unit features normalised over the model, the MACs already cut and still
cuttable, the previous keep ratio) plus the episode's budget and target kind, so one actor can
serve several budgets (a budget-conditioned search, ``EnvConfig.budget_range``)."""
OBSERVATIONS: dict[str, tuple[str, ...]] = {
    "amc": OBS_FEATURES,
    "amc+share": (*OBS_FEATURES, "share"),
}
"""Observation sets by name (``EnvConfig.observation``). ``amc+share`` appends the unit's share
of the model's MACs, not min-max normalised: AMC's features are normalised over the model, so a
unit of a 9-block stage looks the same as one of a 3-block stage although cutting it saves a
third as much; the raw share tells an actor trained across models how deep the network is
(stage-1 inner units: 11.6% of ResNet-20's MACs, 6.9% of ResNet-32's, 3.8% of ResNet-56's)."""


@dataclass
class EnvConfig:
    """Settings of one search; defaults follow AMC where it gives one."""

    target: str = "flops"
    """What the budget limits: ``flops`` (MACs), ``params`` or measured ``latency``."""
    budget: float = 0.5
    """Fraction of the original model's target cost to keep, in (0, 1]."""
    observation: str = "amc"
    """Which observation set the agent sees (``OBSERVATIONS``): ``amc`` (AMC's state) or
    ``amc+share`` (with each unit's raw share of the MACs, for actors meant for other depths)."""
    budget_range: tuple[float, float] | None = None
    """A budget-conditioned search: each episode seeded by :meth:`ChannelPruningEnv.reset` draws
    its budget uniformly from ``[low, high]`` (MACs or params targets; ``budget`` is then the
    range's midpoint, where the search declares its policy)."""
    lbound: float = 0.2
    """Smallest keep ratio an action may ask for (AMC: 0.2)."""
    round_to: int = 8
    """Kept channels are multiples of this where a unit is wide enough (see amc_agent.env.wall)."""
    strict_round: bool = False
    """Every unit steps by ``round_to``, narrow ones too (amc_agent.env.wall): for latency
    budgets, where an off-grid channel count runs no faster than the next multiple."""
    criterion: str | Criterion = "group-l2"
    """Which channels go: a registered name (amc_agent.env.criteria) or a Criterion object. The
    default, ``group-l2`` (Torch-Pruning's default importance), kept 85% validation accuracy
    where ``l1`` kept 68% at the same channel counts (ResNet-20, 50% MACs; BENCHMARKS.md)."""
    reward: str | Reward = "acc"
    """A registered reward name (amc_agent.env.rewards) or a callable on the final ``info``."""
    val_size: int = 1000
    """Validation images (held out from the training split) scored per episode."""
    eval_batch: int = 250
    """Batch size of the validation pass."""
    recalibrate: bool = True
    """Re-estimate BN statistics on training batches before evaluating (EagleEye)."""
    recalib_batches: int = 4
    """Training batches used for BN recalibration and as calibration data for criteria."""
    recalib_batch_size: int = 128
    """Size of each of those batches."""
    calib_images: int = 256
    """Training images whose consumer inputs/outputs ThiNet, LASSO and ``+reconstruct`` sample."""
    calib_points: int = 10
    """Output positions sampled per image and consumer layer (AMC: 10)."""
    fill_budget: bool = True
    """Two-sided wall: also force the budget to be used (see amc_agent.env.wall). Off whatever this
    says with reward ``acc_log_flops``, which trades accuracy against MACs: forcing MACs to the
    budget would make its log(MACs) term a constant."""
    include: Sequence[str] = ()
    """Only prune units whose root module name matches one of these shell patterns."""
    exclude: Sequence[str] = ()
    """Never prune units whose root module name matches one of these shell patterns."""
    device: str = "cpu"
    """Where the model is evaluated and latency measured."""
    latency_batch: int = 1
    """Batch size of latency measurements (target ``latency``)."""
    latency_min_time_s: float = 0.2
    """Seconds each CPU latency measurement runs for at least."""
    latency_backend: str | None = None
    """How latency is measured (amc_agent.env.latency.BACKENDS; default: cudagraph on CUDA, eager on
    CPU)."""
    latency_margin: float = 0.95
    """Latency targets: the wall aims below the budget by this quantile of measured / predicted
    latency over the last ``LATENCY_WINDOW`` timed episodes (calibrated online, so the
    predictor's bias and the machine's drift are absorbed), so about ``1 - latency_margin`` of
    episodes land over the *measured* budget; an unbiased predictor walled to the budget itself
    puts about half of them over (seen on an H200: 93% at budget 0.9, batch 1). 0.95 rather
    than 0.9 because the share over budget varies from search to search: on 2 CPU cores
    (ResNet-20, batch 64, eager 0.6 and onnxruntime 0.5/0.7, 100 episodes) 0.9 put 5-17% over
    (at most 10% in 10 of 22 searches), 0.95 put 7-14% over (at most 10% in 4 of 5), at the
    price of a wall aimed a little lower. 0 turns the online calibration off (margin and
    ``latency_refit``): the wall trusts the predictor as built."""
    latency_refit: bool = True
    """Latency targets: refit a latency table on the search's own timed episodes
    (``LatencyTable.refit``, from the ``LATENCY_REFIT``-th on) before the margin is taken."""
    latency_drop_dominated: bool = False
    """Latency targets: each unit may keep only counts no larger count of it matches in
    predicted latency (amc_agent.env.wall.undominated_counts), so a cut never pays for channels
    it does not keep. Off by default: on 2 CPU cores (ResNet-20, onnxruntime, batch 64, latency
    0.5, search seeds 0 and 1) it did not pay: the latency search's policy finished 81.7% and
    83.2% after fine-tuning at equal measured latency, against 84.2% and 84.3% without it
    (BENCHMARKS.md, equal measured latency, grid "undominated")."""
    latency_predictor: str = "table"
    """What the wall predicts latency with: ``table`` (per-layer latency tables,
    amc_agent.env.latency_table) or ``line`` (a + b x MACs, amc_agent.env.latency_model)."""
    data_seed: int = 0
    """Seeds which training images form the recalibration batches."""
    fast_scoring: bool = True
    """Score episodes on an inference copy (BN folded into convolutions, channels-last layout;
    :func:`amc_agent.env.evaluation.inference_copy`): the same network up to float rounding, checked
    on the original model when the env is built (falls back to plain scoring where the copy
    fails or disagrees)."""
    cache: bool = True
    """Serve a repeated policy's accuracy, MACs and params from a cache keyed by the kept
    channel counts instead of recalibrating and evaluating again (where that is exact: a
    deterministic criterion without reconstruction; see ``ChannelPruningEnv.cacheable``)."""
    reuse_prefix: bool = True
    """Criteria that sample consumer inputs (ThiNet, LASSO, ``+reconstruct``): each capture in
    an episode reuses the outputs of blocks nothing changed since the last one instead of
    running the calibration images through them again (the same rows, bit for bit;
    amc_agent.env.reconstruction.PrefixCache)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings carried into ``info`` (e.g. run names)."""


LATENCY_WINDOW = 20
"""Timed episodes whose measured / predicted latency ratios set the latency wall's margin."""
LATENCY_REFIT = 10
"""Timed episodes after which a latency table is refitted on them (and after each later one)."""
LATENCY_REFIT_WINDOW = 50
"""The most recent timed episodes a refit uses (the region a search explores moves)."""
LatencyState = tuple[list[tuple[tuple[int, ...], float]],
                     tuple[float, float, float, float] | None, float]
"""Timed episodes, the latency table's calibration (None: no table) and the wall's aim."""


class ChannelPruningEnv(gym.Env):
    """Walks a CNN's prunable units; each action is that unit's keep ratio.

    ## Episode
    One episode prunes a fresh copy of the model: step ``t`` decides unit ``t`` (units in forward
    order, see :mod:`amc_agent.env.units`). The episode ends (``terminated``) after the last unit;
    it is never truncated.

    ## Action space
    ``Box(lbound, 1, (1,), float32)``: the fraction of the unit's channels to keep. The action
    wall (:mod:`amc_agent.env.wall`) clips it so the budget stays reachable (and used), then it is
    rounded to the unit's channel step; ``info["keep_ratios"]`` holds what was applied.

    ## Observation space
    ``Box(0, 1, (15,), float32)`` (``OBS_FEATURES``), AMC's layer embedding for the unit about
    to be pruned: index t, channels n, root-layer input channels c, input height h and width w,
    stride, kernel size k, MACs of the layers the unit touches, number of member layers (each
    min-max normalised over units), then ``reduced`` (fraction of the original target cost
    already removed), ``rest`` (fraction still removable by later units), the previous action,
    the episode's budget and the target kind (params, latency flags). ``reduced`` and ``rest``
    are both measured in the target's own cost (MACs for flops and latency, parameters for
    params). ``EnvConfig.observation = "amc+share"`` appends the unit's raw share of the MACs
    (16 features).

    ## Reward
    0 at every step but the last, which gets ``reward(info)`` (:mod:`amc_agent.env.rewards`),
    computed from validation accuracy after optional BN recalibration on a fixed subset.

    ## Info at episode end
    ``accuracy``, ``macs``, ``params`` (recounted on the pruned model) and their predictions,
    ``keep_ratios`` and ``kept_channels`` by unit name, ``pruning`` (the replayable record),
    for latency targets ``latency_ratio`` (the model's measured latency over the original's,
    timed back to back), ``latency_ms`` (that ratio in the predictor's milliseconds, what
    ``budget_latency_ms`` and ``predicted_latency_ms`` are in) and ``wall_latency_ms`` (what the
    wall aimed at), and
    ``timings`` (seconds spent in surgery, criterion, recalibration, evaluation and recounting
    MACs and parameters on the pruned model). Every step's
    ``info["applied"]`` is the keep ratio actually applied to the unit just cut.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        model: nn.Module,
        data: DataSplits,
        config: EnvConfig | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        cfg = dataclasses.replace(config or EnvConfig(), **overrides)
        if cfg.reward == "acc_log_flops":
            cfg = dataclasses.replace(cfg, fill_budget=False)
        self.cfg = cfg
        self._check_config(cfg)
        self.criterion = make_criterion(cfg.criterion)
        self.reward_fn: Callable[[dict[str, Any]], float] = make_reward(cfg.reward)
        self.model = model.to(cfg.device).eval()
        self.data_spec = data.spec
        self.example = torch.zeros(1, *data.spec.input_shape, device=cfg.device)
        self.units: list[Unit] = discover_units(self.model, self.example, cfg.include,
                                                cfg.exclude)
        self.cost = CostModel(self.model, self.units, self.example)
        self._orig_graph = build_graph(self.model, self.example)
        self._orig_groups: dict[str, Any] = {}
        options = [allowed_counts(u.channels, cfg.round_to, cfg.lbound, u.channel_groups,
                                  cfg.strict_round) for u in self.units]
        self.latency_model: LatencyModel | LatencyTable | None = None
        if cfg.target == "latency":
            if cfg.latency_predictor == "table":
                table = build_latency_table(self.model, self.units, self.example, options,
                                            cfg.device, cfg.latency_batch, cfg.latency_backend)
                self.latency_model, self._predict_latency = table, table.predict_rows
            else:
                line = calibrate_latency(
                    self.model, self.units, self.cost, self.example, cfg.device,
                    cfg.latency_batch, min_time_s=cfg.latency_min_time_s,
                    backend=cfg.latency_backend)
                self.latency_model = line
                self._predict_latency = lambda rows: line.predict(self.cost.batch("flops", rows))
            self.budget_abs = cfg.budget * self.latency_model.original_ms
            if cfg.latency_drop_dominated:
                options = undominated_counts(options, self._predict_latency,
                                             self.latency_model.original_ms)
            self.wall = ActionWall(self._predict_latency, options, self.budget_abs,
                                   cfg.fill_budget, monotone=False)
        else:
            self.budget_abs = cfg.budget * self.cost.original[cfg.target]
            self.wall = ActionWall(lambda rows: self.cost.batch(cfg.target, rows), options,
                                   self.budget_abs, cfg.fill_budget)
        self.budget = cfg.budget
        """This episode's budget (fraction of the original cost)."""
        self._check_feasible(cfg.budget_range[0] if cfg.budget_range else cfg.budget)
        self.val_batches = take_batches(data.val, cfg.val_size, cfg.eval_batch, cfg.device)
        if not self.val_batches:
            raise UserError("the validation split is empty; raise --val-size")
        self._fold_plan = fold_plan(self.model) if cfg.fast_scoring else []
        self.fast_scoring = cfg.fast_scoring and self._fast_scoring_agrees()
        self._scored_batches = [(channels_last(x), y) for x, y in self.val_batches] \
            if self.fast_scoring else self.val_batches
        self._heldout = data.val
        self.train_split = data.train
        """The (augmented) training split: for fine-tunes of candidate policies."""
        self.calib_batches = take_batches(data.train_plain,
                                          cfg.recalib_batches * cfg.recalib_batch_size,
                                          cfg.recalib_batch_size, cfg.device, seed=cfg.data_seed)
        self.calibrator: Calibrator | None = None
        if self.criterion.reconstruct or self.criterion.uses_consumers:
            owners = {m: u.name for u in self.units for m in u.members}
            batches = take_batches(data.train_plain, cfg.calib_images, cfg.recalib_batch_size,
                                   cfg.device, seed=cfg.data_seed)
            self.calibrator = Calibrator(self.model, batches, cfg.calib_images,
                                         cfg.calib_points, owners, seed=cfg.data_seed,
                                         reuse_prefix=cfg.reuse_prefix)
        self._static = self._static_features()
        self._measure = "params" if cfg.target == "params" else "flops"
        self._orig_measure = self.cost.original[self._measure]
        self._set_observation(cfg.observation)
        self.action_space = gym.spaces.Box(np.float32(cfg.lbound), np.float32(1.0), (1,),
                                           np.float32)
        self._rng = torch.Generator().manual_seed(0)
        self._surgeon: Surgeon | None = None
        self._cache: dict[tuple[int, ...], dict[str, Any]] = {}
        self._timed: deque[tuple[tuple[int, ...], float]] = deque(maxlen=LATENCY_REFIT_WINDOW)
        """Latency targets: (kept counts, measured ms) of the recent timed episodes."""
        self._stale_bn = False
        self._chosen: list[int] = []
        self._actions: list[float] = []
        self._timings: dict[str, float] = {}
        self._wall_on = True
        self._dry = False

    # ----------------------------------------------------------------------------- set-up

    @staticmethod
    def _check_config(cfg: EnvConfig) -> None:
        if cfg.target not in TARGETS:
            raise UserError(f"unknown target {cfg.target!r}; valid targets: {', '.join(TARGETS)}")
        if not (isinstance(cfg.budget, int | float) and 0 < cfg.budget <= 1):
            raise UserError(f"--budget must be a fraction in (0, 1], got {cfg.budget!r}")
        if cfg.budget_range is not None:
            low, high = cfg.budget_range
            if not 0 < low < high <= 1:
                raise UserError(f"--budget LOW:HIGH must satisfy 0 < LOW < HIGH <= 1, got "
                                f"{low}:{high}")
            if cfg.target == "latency":
                raise UserError("a budget range (--budget LOW:HIGH) is for flops or params "
                                "targets; a latency budget is searched one at a time")
        if cfg.observation not in OBSERVATIONS:
            raise UserError(f"unknown observation {cfg.observation!r}; valid: "
                            f"{', '.join(OBSERVATIONS)}")
        if not 0 < cfg.lbound <= 1:
            raise UserError(f"--lbound must be in (0, 1], got {cfg.lbound!r}")
        if cfg.round_to < 1:
            raise UserError(f"--round-to must be at least 1, got {cfg.round_to!r}")
        if cfg.latency_predictor not in ("table", "line"):
            raise UserError(f"--latency-predictor must be table or line, got "
                            f"{cfg.latency_predictor!r}")
        if not 0 <= cfg.latency_margin < 1:
            raise UserError(f"--latency-margin must be a quantile in [0, 1), got "
                            f"{cfg.latency_margin!r}")
        if cfg.val_size < 1 or cfg.eval_batch < 1:
            raise UserError("--val-size and the evaluation batch must be at least 1")
        if cfg.calib_images < 1 or cfg.calib_points < 1:
            raise UserError("--calib-images and --calib-points must be at least 1")

    def _check_feasible(self, budget: float) -> None:
        smallest = self.wall.smallest_cost()
        full = self.latency_model.original_ms if self.latency_model else \
            self.cost.original[self.cfg.target]
        if smallest > budget * full + 1e-6:
            raise UserError(
                f"budget {budget} is infeasible for target {self.cfg.target}: with every "
                f"unit at lbound {self.cfg.lbound} the model keeps {smallest / full:.3f} of it; "
                f"use --budget {math.ceil(smallest / full * 1000) / 1000} or more, or a lower "
                "--lbound"
            )

    @torch.no_grad()
    def _fast_scoring_agrees(self) -> bool:
        """Whether the inference copy of the original model runs on the validation input and
        gives its logits up to float rounding (1e-4 of the largest logit)."""
        x = self.val_batches[0][0]
        try:
            fast = inference_copy(self.model, self._fold_plan)(channels_last(x))
        except Exception as e:
            warnings.warn(f"fast scoring off ({type(e).__name__}: {e})", stacklevel=3)
            return False
        ref = self.model(x)
        scale = max(1.0, ref.abs().max().item())
        return bool(torch.allclose(fast, ref, rtol=0.0, atol=1e-4 * scale))

    def _static_features(self) -> np.ndarray:
        unit_macs = self.cost.unit_macs()
        rows = [[u.index, u.channels, u.in_channels, u.height, u.width, u.stride, u.kernel,
                 unit_macs[u.index], len(u.members)] for u in self.units]
        feats = np.array(rows, dtype=np.float64)
        lo, hi = feats.min(0), feats.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        return (feats - lo) / span

    def _set_observation(self, name: str) -> None:
        """The per-unit features ``name`` appends to AMC's (``_extra``, one row per unit) and
        the observation space they make."""
        self._extra = np.zeros((len(self.units), 0))
        if name == "amc+share":
            share = np.array(self.cost.unit_macs(), dtype=np.float64) / self.cost.original["flops"]
            self._extra = np.clip(share, 0.0, 1.0)[:, None]
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(OBSERVATIONS[name]),), np.float32)

    def use_observation(self, name: str) -> None:
        """Switch the observation set (``OBSERVATIONS``), e.g. to run an actor trained on
        another one over this environment; nothing else about the env changes."""
        cfg = dataclasses.replace(self.cfg, observation=name)
        self._check_config(cfg)
        self.cfg = cfg
        self._set_observation(name)

    # ----------------------------------------------------------------------------- gym API

    @property
    def n_units(self) -> int:
        """Number of steps per episode."""
        return len(self.units)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a fresh copy of the model; ``seed`` seeds the random criterion
        and the action space. ``options={"wall": False}`` applies this episode's actions as
        given (only rounded), for replaying policies and probing single units.
        ``options={"dry": True}`` walks without cutting or scoring: the wall, the observations
        and the applied ratios only, the final step's info holding ``kept_channels`` and a
        reward of 0; a worker then scores those counts (:meth:`evaluate_counts`,
        amc_agent.agents.workers)."""
        super().reset(seed=seed)
        self._wall_on = bool((options or {}).get("wall", True))
        self._dry = bool((options or {}).get("dry", False))
        if seed is not None:
            self._rng.manual_seed(seed)
            self.action_space.seed(seed)
        if (options or {}).get("budget") is not None:
            self.set_budget(float(options["budget"]))  # type: ignore[index]
        elif self.cfg.budget_range is not None and seed is not None:
            low, high = self.cfg.budget_range
            # Its own stream: the draw leaves the criterion's and the agent's generators alone.
            self.set_budget(low + (high - low) * float(np.random.default_rng([seed, 7]).random()))
        t0 = time.perf_counter()
        self._surgeon = None if self._dry else Surgeon(self.model, self.example)
        self._stale_bn = False
        self._chosen, self._actions = [], []
        self._timings = {"surgery": time.perf_counter() - t0, "criterion": 0.0,
                         "recalibration": 0.0, "evaluation": 0.0, "recount": 0.0}
        return self._obs(0), {"unit": self.units[0].name}

    def rounded(self, unit: Unit, keep_ratio: float) -> int:
        """The channel count this env's rounding gives ``unit`` for ``keep_ratio`` (before the
        wall): the nearest of its allowed counts (amc_agent.env.wall.round_channels)."""
        return round_channels(unit.channels, keep_ratio, self.cfg.round_to, self.cfg.lbound,
                              unit.channel_groups, self.cfg.strict_round)

    def step(
        self, action: np.ndarray | Sequence[float] | float
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Prune the current unit to the (walled, rounded) keep ratio ``action``."""
        if (self._surgeon is None and not self._dry) or len(self._chosen) >= self.n_units:
            raise RuntimeError("call reset() before step() (the episode has ended)")
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not math.isfinite(a):
            raise ValueError(f"action must be a finite keep ratio, got {a}")
        a = min(1.0, max(self.cfg.lbound, a))
        t = len(self._chosen)
        unit = self.units[t]
        wanted = self.rounded(unit, a)
        k = self.wall.clip(t, self._chosen, wanted) if self._wall_on else wanted
        if not self._dry:
            self._cut(unit, k)
        self._chosen.append(k)
        self._actions.append(a)
        applied = k / unit.channels
        if len(self._chosen) < self.n_units:
            return self._obs(t + 1), 0.0, False, False, {"unit": self.units[t + 1].name,
                                                         "applied": applied}
        if self._dry:
            return self._obs(t), 0.0, True, False, {
                "applied": applied, "kept_channels": {u.name: c for u, c in
                                                      zip(self.units, self._chosen, strict=True)},
                "actions": list(self._actions), "budget": self.budget}
        info = self._finish()
        info["applied"] = applied
        return self._obs(t), float(info["reward"]), True, False, info

    def evaluate_counts(self, counts: Sequence[int], seed: int, budget: float) -> dict[str, Any]:
        """The final ``info`` of an episode that keeps ``counts`` channels per unit (as a walk
        chose them: no wall, no rounding) under environment seed ``seed`` and ``budget``: what
        :meth:`step` would have returned at the last unit of that walk. For workers scoring
        episodes a learner walked dry."""
        if len(counts) != self.n_units:
            raise ValueError(f"{len(counts)} counts for {self.n_units} units")
        target_budget = None if self.cfg.target == "latency" else budget
        self.reset(seed=seed, options={"wall": False, "budget": target_budget})
        for unit, k in zip(self.units, counts, strict=True):
            self._cut(unit, int(k))
            self._chosen.append(int(k))
            self._actions.append(int(k) / unit.channels)
        return self._finish()

    def _cut(self, unit: Unit, k: int) -> None:
        """Keep ``k`` of ``unit``'s channels in this episode's copy (criterion, surgery and any
        reconstruction; timed)."""
        s = self._surgeon
        assert s is not None
        t0 = time.perf_counter()
        if k < unit.channels:
            ctx = self.unit_context(unit)
            keep = self.criterion.select(ctx, k)
            if self.criterion.reconstruct:
                ctx.consumer_samples()  # sampled before the cut, while every channel is there
            t1 = time.perf_counter()
            s.prune(unit.name, keep)
            t2 = time.perf_counter()
            if self.criterion.reconstruct and self.calibrator is not None:
                self.calibrator.reconstruct(unit, s.model, keep)
            t3 = time.perf_counter()
            self._timings["criterion"] += (t1 - t0) + (t3 - t2)
            self._timings["surgery"] += t2 - t1
        else:
            s.kept[unit.name] = list(range(unit.channels))

    @property
    def heldout_size(self) -> int:
        """Validation images the episodes never score (the split beyond ``val_size``)."""
        return max(0, len(self._heldout) - self.cfg.val_size)  # type: ignore[arg-type]

    def heldout_batches(self, n: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """In-memory batches of up to ``n`` (default: all) validation images that no episode's
        reward saw: for re-scoring a search's best policies without its selection bias."""
        n = self.heldout_size if n is None else min(n, self.heldout_size)
        rest = Subset(self._heldout, range(self.cfg.val_size, self.cfg.val_size + n))
        return take_batches(rest, n, self.cfg.eval_batch, self.cfg.device)

    def play(self, ratios: dict[str, float], seed: int = 0) -> dict[str, Any]:
        """One whole episode applying ``ratios`` (keep ratios by unit name) as given, only
        rounded, without the action wall; returns the final ``info``. For replaying policies
        and probing units. The budget stays the current one (a budget range draws none)."""
        self.reset(seed=seed, options={"wall": False,
                                       "budget": None if self.cfg.target == "latency"
                                       else self.budget})
        info: dict[str, Any] = {}
        for u in self.units:
            _, _, done, _, info = self.step(np.array([ratios[u.name]], dtype=np.float32))
        assert done
        return info

    def with_criterion(self, spec: str | Criterion) -> ChannelPruningEnv:
        """This env choosing channels with another criterion: the same model, units, cost
        model, wall and budget (a latency budget is not measured again, so strategies played on
        either spend the same), data and settings. For criteria without calibration rows."""
        crit = make_criterion(spec)
        if (crit.reconstruct or crit.uses_consumers) and self.calibrator is None:
            raise UserError(f"criterion {crit.spec!r} needs calibration rows; build an env "
                            "with it instead")
        other = copy.copy(self)
        other.cfg = dataclasses.replace(self.cfg, criterion=crit)
        other.criterion = crit
        other._rng = torch.Generator().manual_seed(0)
        other._surgeon, other._chosen, other._actions, other._timings = None, [], [], {}
        other._cache, other._stale_bn = {}, False  # episodes scored with another criterion
        return other

    # ----------------------------------------------------------------------------- internals

    def unit_context(self, unit: Unit) -> UnitContext:
        """The criterion's view of ``unit`` in the current episode (the original model before
        any ``reset``)."""
        if self._surgeon is None:
            self._surgeon = Surgeon(self.model, self.example)
        s = self._surgeon
        if unit.name not in self._orig_groups:
            self._orig_groups[unit.name] = full_group(self._orig_graph, self.model, unit.name)
        return UnitContext(unit=unit, model=s.model, graph=s.graph, group=s.group(unit.name),
                           original=self.model, original_group=self._orig_groups[unit.name],
                           calibration=self.calib_batches, rng=self._rng,
                           calibrator=self.calibrator, kept=dict(s.kept))

    def set_budget(self, budget: float) -> None:
        """Make ``budget`` (fraction of the original MACs or params) this and later episodes'
        budget; a UserError if no policy can meet it."""
        if self.cfg.target == "latency":
            raise UserError("the budget of a latency search is fixed when the env is built")
        if not 0 < budget <= 1:
            raise UserError(f"--budget must be a fraction in (0, 1], got {budget!r}")
        self._check_feasible(budget)
        self.budget = budget
        self.budget_abs = budget * self.cost.original[self.cfg.target]
        self.wall.budget = self.budget_abs

    def _obs(self, t: int) -> np.ndarray:
        chosen = self._chosen[:t]
        full = [u.channels for u in self.units]
        rows = np.array([full, full], dtype=np.float64)
        rows[:, :t] = chosen
        rows[1, t + 1:] = self.wall.min_kept[t + 1:]
        now, least = self.cost.batch(self._measure, rows)
        reduced = (self._orig_measure - now) / self._orig_measure
        rest = (now - least) / self._orig_measure
        # The previous unit's keep ratio as applied after the wall, as in AMC's code and as the
        # replay buffer stores it (the request would tell the agent something that did not happen).
        prev = self._chosen[t - 1] / self.units[t - 1].channels if 0 < t <= len(self._chosen) \
            else 1.0
        dyn = np.clip([reduced, rest, prev, self.budget], 0.0, 1.0)
        kind = [float(self.cfg.target == "params"), float(self.cfg.target == "latency")]
        return np.concatenate([self._static[t], dyn, kind, self._extra[t]]).astype(np.float32)

    @property
    def cacheable(self) -> bool:
        """Whether an episode's outcome is a function of its kept channel counts alone, so the
        cache is exact: the criterion is deterministic and nothing is refitted (the consumer
        sampling of ThiNet, LASSO and ``+reconstruct`` draws from a generator shared across
        episodes)."""
        c = self.criterion
        return self.cfg.cache and c.deterministic and not c.reconstruct and not c.uses_consumers

    def _measure_final(self, model: nn.Module) -> dict[str, Any]:
        """Accuracy, MACs and params of the finished episode's model (recalibrated first), or
        the cached figures of the same counts, in which case recalibration waits for
        :meth:`pruned_model`."""
        key = tuple(self._chosen)
        if self.cacheable and key in self._cache:
            self._stale_bn = self.cfg.recalibrate
            return {**self._cache[key], "cached": True}
        t0 = time.perf_counter()
        if self.cfg.recalibrate:
            recalibrate_bn(model, self.calib_batches)
        t1 = time.perf_counter()
        acc = accuracy(inference_copy(model, self._fold_plan) if self.fast_scoring else model,
                       self._scored_batches)
        t2 = time.perf_counter()
        self._timings["recalibration"] += t1 - t0
        self._timings["evaluation"] += t2 - t1
        shape = self.data_spec.input_shape
        out = {"accuracy": acc, "macs": count_macs(model, shape), "params": count_params(model)}
        self._timings["recount"] += time.perf_counter() - t2
        if self.cacheable and math.isfinite(acc):  # a broken evaluation is never served again
            self._cache[key] = out
        return {**out, "cached": False}

    def _finish(self) -> dict[str, Any]:
        s = self._surgeon
        assert s is not None
        model = s.model
        shape = self.data_spec.input_shape
        info: dict[str, Any] = {
            **self._measure_final(model),
            "predicted_macs": self.cost.macs(self._chosen),
            "predicted_params": self.cost.params(self._chosen),
            "original_macs": self.cost.original["flops"],
            "original_params": self.cost.original["params"],
            "target": self.cfg.target,
            "budget": self.budget,
            "keep_ratios": {u.name: k / u.channels for u, k in zip(self.units, self._chosen,
                                                                   strict=True)},
            "kept_channels": {u.name: k for u, k in zip(self.units, self._chosen, strict=True)},
            "actions": list(self._actions),
            "pruning": s.record(),
            "timings": dict(self._timings),
            **self.cfg.extra,
        }
        if self.latency_model is not None:
            # The original is timed back to back with the episode's model and the latency kept
            # as their ratio (in the predictor's milliseconds): a change in machine load since
            # the predictor was built then hits both and cancels.
            ref, lat = (measure_latency(m, shape, batch_size=self.cfg.latency_batch,
                                        device=self.cfg.device,
                                        min_time_s=self.cfg.latency_min_time_s,
                                        backend=self.cfg.latency_backend)
                        for m in (self.model, model))
            ratio = lat.median_ms / ref.median_ms
            latency_ms = ratio * self.latency_model.original_ms
            predicted = float(self._predict_latency(np.asarray([self._chosen],
                                                               dtype=np.float64))[0])
            info.update(latency_ms=latency_ms, latency_ratio=ratio, latency=lat.to_dict(),
                        reference_latency=ref.to_dict(), predicted_latency_ms=predicted,
                        budget_latency_ms=self.budget_abs, wall_latency_ms=self.wall.budget,
                        original_latency_ms=self.latency_model.original_ms)
            self.record_latency(self._chosen, latency_ms)
        info["reward"] = float(self.reward_fn(info))
        return info

    def record_latency(self, kept: Sequence[int], latency_ms: float) -> None:
        """Learn from one timed episode (kept channel counts per unit; measured latency in the
        predictor's ms): from the ``LATENCY_REFIT``-th on, refit a latency table on the recent
        ones (``latency_refit``), then aim the wall at ``budget / q``, q the ``latency_margin``
        quantile of their measured / predicted ratios (never below what the smallest allowed
        model costs). Off with ``latency_margin`` 0."""
        if not (self.cfg.latency_margin > 0 and math.isfinite(latency_ms) and latency_ms > 0):
            return
        self._timed.append((tuple(int(k) for k in kept), float(latency_ms)))
        rows = np.asarray([k for k, _ in self._timed], dtype=np.float64)
        ms = np.asarray([m for _, m in self._timed])
        if self.cfg.latency_refit and isinstance(self.latency_model, LatencyTable) \
                and len(ms) >= LATENCY_REFIT:
            self.latency_model.refit(rows, ms)
        recent = slice(-LATENCY_WINDOW, None)
        ratios = ms[recent] / self._predict_latency(rows[recent])
        q = float(np.quantile(ratios, self.cfg.latency_margin))
        self.wall.budget = max(self.budget_abs / q, self.wall.smallest_cost())

    def latency_state(self) -> LatencyState:
        """What :meth:`record_latency` changes (for :meth:`restore_latency_state`)."""
        table = self.latency_model.calibration() \
            if isinstance(self.latency_model, LatencyTable) else None
        return list(self._timed), table, self.wall.budget

    def restore_latency_state(self, state: LatencyState) -> None:
        """Put back a :meth:`latency_state`: e.g. after a walk whose timing must not count."""
        timed, table, aim = state
        self._timed.clear()
        self._timed.extend(timed)
        if table is not None:
            assert isinstance(self.latency_model, LatencyTable)
            self.latency_model.set_calibration(table)
        self.wall.budget = aim

    def pruned_model(self) -> nn.Module:
        """The current episode's (partially) pruned model (BN recalibrated as the episode's
        score assumed, also when the score came from the cache)."""
        if self._surgeon is None:
            raise RuntimeError("call reset() first")
        if self._stale_bn:
            recalibrate_bn(self._surgeon.model, self.calib_batches)
            self._stale_bn = False
        return self._surgeon.model
