"""The checkpoint file (``.pt``): plain types only, loadable with ``torch.load(weights_only=True)``.

Layout (``"format": "amc-checkpoint/1"``)::

    recipe      {"name", "kwargs"}: rebuilds the original architecture (amc_env.models)
    state_dict  tensors of the (possibly pruned) model
    state_metadata  the state dict's per-module version numbers (some modules, e.g. MNASNet,
                refuse to load weights without them)
    pruning     None, or amc_env.surgery's record {"input_shape", "kept": {unit root module name:
                [kept channel indices]}}, replayed on the recipe's original architecture before
                loading state_dict
    dataset     name of the dataset the model was trained on
    split       the validation split it was trained with (amc_env.datasets.split_record:
                dataset, seed, val_size, train_size); every later command rebuilds it
    metrics     numbers (accuracies as fractions, MACs, params, latency dicts)
    train_state optimizer/scheduler/epoch for ``amc-train --resume`` (omitted when finished)
    versions    library versions that wrote it
"""

from __future__ import annotations

import platform
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch_pruning
import torchvision
from torch import nn

from amc_env import atomic
from amc_env.errors import UserError
from amc_env.models import build_model
from amc_env.surgery import apply_pruning_record

FORMAT = "amc-checkpoint/1"


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour a checkpoint depends on."""
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "torch_pruning": str(torch_pruning.__version__)}


def save_checkpoint(
    path: Path,
    model: nn.Module,
    recipe: dict[str, Any],
    dataset: str,
    metrics: dict[str, Any] | None = None,
    pruning: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
) -> None:
    """Atomically write a checkpoint for ``model`` (see the module docstring for the layout)."""
    state = model.state_dict()
    obj: dict[str, Any] = {
        "format": FORMAT,
        "recipe": recipe,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "state_metadata": {k: dict(v) for k, v in getattr(state, "_metadata", {}).items()},
        "pruning": pruning,
        "dataset": dataset,
        "split": split,
        "metrics": metrics or {},
        "versions": library_versions(),
    }
    if train_state is not None:
        obj["train_state"] = train_state
    atomic.torch_save(path, obj)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and validate a checkpoint; :class:`UserError` names what is wrong with a bad file."""
    obj = atomic.read_torch(Path(path), "checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise UserError(f"checkpoint {path} has format {found!r}, expected {FORMAT!r}")
    for key, typ in (("recipe", dict), ("state_dict", dict), ("dataset", str)):
        if not isinstance(obj.get(key), typ):
            raise UserError(f"checkpoint {path} is missing its {key!r} entry")
    return obj


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint holds: original architecture, pruning replayed, weights."""
    model = build_model(ckpt["recipe"])
    if ckpt.get("pruning"):
        apply_pruning_record(model, ckpt["pruning"])
    state = OrderedDict(ckpt["state_dict"])
    state._metadata = OrderedDict(ckpt.get("state_metadata") or {})  # type: ignore[attr-defined]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"checkpoint weights do not fit its recipe: {str(exc)[:200]}") from None
    return model
