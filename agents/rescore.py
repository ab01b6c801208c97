"""Re-scoring a search's best policies on held-out images before the winner is declared.

A search keeps the best of hundreds of episodes, each scored on the same ``--eval-size`` images:
the winner's score is a maximum over noisy estimates and so optimistic (and the ranking among the
top few is partly noise). The top ``K`` distinct eligible policies are therefore replayed and
scored again on validation images no episode saw (the rest of the checkpoint's held-out split);
the best on those is the search's result. Its score there is still the best of ``K`` estimates, a
smaller bias than the best of every episode's: over the amc-compare results, a winner chosen on
them right after pruning scored +0.31 +- 0.19 points more there (relative to the test split)
than the heuristics of the same comparison did (BENCHMARKS.md, selection bias); the test split,
scored after the choice, is the unbiased figure.

A pruned network is kept after fine-tuning, and the accuracy right after pruning need not rank
policies the way fine-tuned accuracy does. With :class:`ShortFinetune` each re-scored policy is
first fine-tuned briefly (one pass over the same seeded training images for every candidate,
NetAdapt's short-term fine-tune, Yang et al., ECCV 2018) and the winner is the best on the
held-out images after it; both figures are recorded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from amc_agent.env.datasets import make_loader
from amc_agent.env.env import ChannelPruningEnv
from amc_agent.env.errors import UserError
from amc_agent.env.evaluation import accuracy
from amc_agent.env.models import clone_model
from amc_agent.env.training import Diverged, TrainConfig, fit

DEFAULT_TOP = 5
DEFAULT_FINETUNE_IMAGES = 2000
"""Training images of the default short fine-tune (about 15 s per search on 2 CPU cores). Chosen
because users keep the fine-tuned network (NetAdapt ranks proposals the same way); measured on
ResNet-20 at 20% and 30% MACs over amc-ddpg, random and tpe, 2 search seeds (BENCHMARKS.md,
difficulty ladder), its effect on accuracy after the final fine-tune is mixed, between -1.6
and +0.8 points per search and about zero on average."""


def resolve_top(requested: int | None, env: ChannelPruningEnv) -> int:
    """How many policies to re-score: ``requested``, or by default :data:`DEFAULT_TOP` where
    the split has validation images the episodes never score (else 0)."""
    if requested is None:
        return DEFAULT_TOP if env.heldout_size else 0
    return requested


def resolve_finetune(requested: int | None, top: int, train: Dataset) -> int:
    """Training images for the short fine-tune before re-scoring: ``requested``, or by default
    :data:`DEFAULT_FINETUNE_IMAGES` (at most the whole training split) whenever policies are
    re-scored (0, off, when ``top`` is 0 or there is no training image)."""
    if requested is not None:
        return requested
    n = len(train)  # type: ignore[arg-type]
    return min(DEFAULT_FINETUNE_IMAGES, n) if top > 0 else 0


def top_distinct(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` highest-reward rows that met the budget with finite scores, one per distinct
    policy (a search often revisits the same keep ratios)."""
    eligible = sorted((r for r in rows if r["finite"] and r["meets_budget"]),
                      key=lambda r: (-r["reward"], r["episode"]))
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in eligible:
        key = json.dumps(r["keep_ratios"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            picked.append(r)
        if len(picked) == k:
            break
    return picked


def rescore_candidates(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The rows a search re-scores: the ``k`` best distinct eligible policies
    (:func:`top_distinct`), then every eligible seed policy's episode (``--seed-policies``,
    ``--init-actor``) not among them. A seed is what a user would pick instead (uniform pruning,
    Torch-Pruning's global ranking, a transferred actor); re-scoring it the same way, after the
    same short fine-tune, lets the search declare it where the searched policies recover worse
    than it, instead of losing to it after fine-tuning (ResNet-20, onnxruntime batch 64,
    latency 0.5: every top-5 policy cut the last stage to 16 of 64 channels and finished 2-4
    points behind uniform; BENCHMARKS.md, equal measured latency)."""
    picked = top_distinct(rows, k)
    seen = {json.dumps(r["keep_ratios"], sort_keys=True) for r in picked}
    for r in rows:
        key = json.dumps(r["keep_ratios"], sort_keys=True)
        if "seed_policy" in r and r["finite"] and r["meets_budget"] and key not in seen:
            seen.add(key)
            picked.append(r)
    return picked


@dataclass(frozen=True)
class ShortFinetune:
    """A short fine-tune of each re-scored policy: one pass of SGD (cosine from ``lr``) over
    ``images`` training images drawn with ``seed``, the same images for every candidate."""

    images: int
    """Training images in the pass (>= 1)."""
    lr: float = 0.01
    """Peak learning rate (the fine-tune recipe of amc-compare and amc-apply)."""
    batch_size: int = 128
    """Images per SGD step."""
    seed: int = 0
    """Picks the images and seeds their order and augmentation."""

    def check(self, train: Dataset) -> None:
        """:class:`UserError` unless ``images`` is in [1, size of ``train``]."""
        n = len(train)  # type: ignore[arg-type]
        if not 1 <= self.images <= n:
            raise UserError(f"--rescore-finetune must be in [1, {n}] training images for this "
                            f"split, got {self.images}")

    def run(self, model: nn.Module, train: Dataset, device: str) -> nn.Module | None:
        """A fine-tuned copy of ``model`` (``model`` is untouched); ``None`` if it diverged."""
        pick = torch.randperm(len(train),  # type: ignore[arg-type]
                              generator=torch.Generator().manual_seed(self.seed))[:self.images]
        loader = make_loader(Subset(train, pick.tolist()), self.batch_size, shuffle=True,
                             seed=self.seed)
        tuned = clone_model(model)
        cfg = TrainConfig(epochs=1, lr=self.lr, batch_size=self.batch_size, seed=self.seed)
        with torch.random.fork_rng(devices=[]):  # the search's own RNG stream stays in step
            try:
                fit(tuned, loader, cfg, device, progress=False)
            except Diverged:
                return None
        return tuned.eval()

    def to_dict(self) -> dict[str, Any]:
        """Plain-type view for ``rescore.json`` and policy artifacts."""
        return asdict(self)


def rescore(env: ChannelPruningEnv, rows: list[dict[str, Any]], images: int | None,
            episode_seed: Callable[[int], int],
            short: ShortFinetune | None = None) -> list[dict[str, Any]]:
    """Replay each row's policy (same criterion seed as its episode, BN recalibrated the same
    way) and score it on up to ``images`` held-out validation images; returns, best first, one
    record per row with ``episode``, ``search_accuracy``, ``rescored_accuracy`` (fractions),
    ``rescored_reward`` and ``images``.

    With ``short`` each policy's pruned model is also fine-tuned (:class:`ShortFinetune`, on
    ``env.train_split``) and scored on the same held-out images: ``finetuned_accuracy`` and
    ``finetuned_reward`` (NaN for a diverged fine-tune, ranked last) decide the order.
    """
    batches = env.heldout_batches(images)
    n = sum(len(y) for _, y in batches)
    out = []
    for r in rows:
        info = env.play(r["keep_ratios"], seed=episode_seed(r["episode"]))
        acc = accuracy(env.pruned_model(), batches)
        rec = {"episode": r["episode"], "search_reward": r["reward"],
               "search_accuracy": r["accuracy"], "rescored_accuracy": acc,
               "rescored_reward": float(env.reward_fn({**info, "accuracy": acc})),
               "images": n, "keep_ratios": r["keep_ratios"]}
        if short is not None:
            tuned = short.run(env.pruned_model(), env.train_split, env.cfg.device)
            ft = math.nan if tuned is None else accuracy(tuned, batches)
            rec.update(finetuned_accuracy=ft, finetune=short.to_dict(),
                       finetuned_reward=math.nan if tuned is None else
                       float(env.reward_fn({**info, "accuracy": ft})))
        out.append(rec)
    key = "rescored_reward" if short is None else "finetuned_reward"
    return sorted(out, key=lambda o: (-o[key] if math.isfinite(o[key]) else math.inf,
                                      o["episode"]))
