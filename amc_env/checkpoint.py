"""The checkpoint file (``.pt``): plain types only, loadable with ``torch.load(weights_only=True)``.

Layout (``"format": "amc-checkpoint/1"``)::

    recipe      {"name", "kwargs"}: rebuilds the original architecture (amc_agent.env.models)
    state_dict  tensors of the (possibly pruned) model
    state_metadata  the state dict's per-module version numbers (some modules, e.g. MNASNet,
                refuse to load weights without them)
    pruning     None, or amc_agent.env.surgery's record {"input_shape", "kept": {unit root module
    name:
                [kept channel indices]}}, replayed on the recipe's original architecture before
                loading state_dict
    dataset     name of the dataset the model was trained on
    split       the validation split it was trained with (amc_agent.env.datasets.split_record:
                dataset, seed, val_size, train_size); every later command rebuilds it
    metrics     numbers (accuracies as fractions, MACs, params, latency dicts)
    train_state optimizer/scheduler/epoch for ``amc-train --resume`` (omitted when finished)
    versions    library versions that wrote it

Every write first rebuilds the model from what it is about to write and checks that it computes
exactly what the model in memory does (:func:`verify_rebuild`), so a checkpoint always holds the
model that was trained.
"""

from __future__ import annotations

import hashlib
import platform
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch_pruning
import torchvision
from torch import nn

from amc_agent.env import atomic
from amc_agent.env.errors import UserError
from amc_agent.env.models import build_model, clone_model
from amc_agent.env.surgery import apply_pruning_record

FORMAT = "amc-checkpoint/1"


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """The SHA-256 (hex) over a state dict's tensors (names, dtypes, shapes, bytes, in order):
    which network this is, whatever the metadata beside the tensors says."""
    digest = hashlib.sha256()
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour a checkpoint depends on."""
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "torch_pruning": str(torch_pruning.__version__)}


def checkpoint_dict(
    model: nn.Module,
    recipe: dict[str, Any],
    dataset: str,
    metrics: dict[str, Any] | None = None,
    pruning: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint content for ``model`` (see the module docstring for the layout)."""
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
    return obj


def save_checkpoint(
    path: Path,
    model: nn.Module,
    recipe: dict[str, Any],
    dataset: str,
    metrics: dict[str, Any] | None = None,
    pruning: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    *,
    input_shape: Sequence[int],
) -> None:
    """Atomically write a checkpoint for ``model`` (:func:`checkpoint_dict`).

    ``input_shape`` is one input's (channels, height, width) in pixels. Before writing, the model
    rebuilt from what is about to be written must give bit-identical outputs on CPU to ``model``
    (:func:`verify_rebuild`); otherwise nothing is written and a :class:`UserError` names the
    first module whose output differs.
    """
    obj = checkpoint_dict(model, recipe, dataset, metrics, pruning, train_state, split)
    try:
        verify_rebuild(obj, model, input_shape)
    except UserError as exc:
        raise UserError(f"refusing to write {path}: {exc}") from None
    atomic.torch_save(path, obj)


def verify_rebuild(ckpt: dict[str, Any], model: nn.Module, input_shape: Sequence[int]) -> None:
    """Check that :func:`model_from_checkpoint` on ``ckpt`` gives exactly ``model``.

    Both run in eval mode on CPU copies (``model`` itself is untouched) on a fixed batch of two
    inputs of ``input_shape`` (channels, height, width in pixels); outputs must be bit-identical.
    A difference is a :class:`UserError` naming the first module, in forward order, whose output
    differs. The global torch RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        rebuilt = model_from_checkpoint(ckpt).eval()
        reference = clone_model(model).cpu().eval()
        x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
        expected = _run(reference, x)
        try:
            got = _run(rebuilt, x)
        except Exception as exc:  # the rebuilt model's own forward fails where the original ran
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UserError(f"the model rebuilt from recipe {ckpt['recipe']['name']!r} fails on "
                            f"the input ({type(exc).__name__}: {detail})") from None
        if _same(expected, got):
            return
        module = _first_difference(reference, rebuilt, x)
    where = "the model's own forward" if module == "" else f"module {module!r}"
    raise UserError(
        f"the model rebuilt from recipe {ckpt['recipe']['name']!r}"
        f"{' and its pruning record' if ckpt.get('pruning') else ''} differs from the model "
        f"trained, first at {where}; the architecture depends on something the recipe does not "
        "record (build the model only from its factory's arguments)"
    )


def _run(model: nn.Module, x: torch.Tensor) -> Any:
    """``model(x)`` on CPU without gradients; the CPU RNG is reseeded so random ops (if any)
    match between the two models (only the CPU generator: ``torch.manual_seed`` would also reset
    the CUDA generators a training run is using)."""
    torch.default_generator.manual_seed(0)
    with torch.no_grad():
        return model(x)


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors in a module output (a tensor, or tuples/lists/dicts of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return [t for item in out for t in _tensors(item)]
    return []


def _same(a: Any, b: Any) -> bool:
    """Whether two outputs are bit-identical (NaN equal to NaN; shapes and dtypes must match)."""
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(
        x.shape == y.shape and x.dtype == y.dtype and
        torch.allclose(x, y, rtol=0, atol=0, equal_nan=True)
        for x, y in zip(ta, tb, strict=True))


def _trace(model: nn.Module, x: torch.Tensor) -> list[tuple[str, list[torch.Tensor]]]:
    """Each module call of ``model(x)`` in the order calls finish: (module name, copies of its
    output tensors). Copied because an in-place op later in the forward would change them."""
    calls: list[tuple[str, list[torch.Tensor]]] = []

    def hook(name: str) -> Callable[..., None]:
        return lambda _m, _i, out: calls.append((name, [t.clone() for t in _tensors(out)]))

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
    try:
        _run(model, x)
    finally:
        for h in handles:
            h.remove()
    return calls


def _first_difference(reference: nn.Module, rebuilt: nn.Module, x: torch.Tensor) -> str:
    """The name of the first module (in the order calls finish, so inner layers before the blocks
    holding them) whose call differs between the two models: another module, or another
    output."""
    ref, new = _trace(reference, x), _trace(rebuilt, x)
    for (name, out), (other, out2) in zip(ref, new, strict=False):
        if name != other or not _same(out, out2):
            return name
    return ""  # every module call matches: the difference is in the top-level forward


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
