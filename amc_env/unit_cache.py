"""Discovered units cached per architecture fingerprint.

Unit discovery traces the model, searches Torch-Pruning's dependency groups and tries each unit on
a scratch copy: seconds for a ResNet, minutes for a large DenseNet or a hybrid transformer, and
every command (search, apply, compare, each benchmark) repeats it on the same architecture. The
result, with the warning naming what was left unpruned, is cached as JSON under
``$AMC_CACHE_DIR/units`` (default ``~/.cache/amc``), keyed by a fingerprint of everything that
decides it:

- the model's ``repr`` and every parameter's and buffer's name and shape (not their values: units
  depend on the architecture only);
- the source code of every module class in the model (an edited ``forward`` is a new key), and
  of this project's discovery code and the Torch-Pruning/PyTorch versions;
- the example input's shape and the ``include``/``exclude`` patterns.

A model whose classes have no retrievable source (defined in a notebook cell) is not cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn

from amc_agent.env import atomic

FORMAT = 1


def cache_dir() -> Path:
    """``$AMC_CACHE_DIR/units`` (default ``~/.cache/amc/units``)."""
    return Path(os.environ.get("AMC_CACHE_DIR", Path.home() / ".cache" / "amc")) / "units"


def fingerprint(model: nn.Module, example: torch.Tensor, include: Sequence[str],
                exclude: Sequence[str], code: Sequence[Callable | type]) -> str | None:
    """A hex digest of what decides ``model``'s units (see the module docstring), or None when a
    module class has no source to hash. ``code``: the discovery functions/modules to hash."""
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, list(example.shape), list(include), list(exclude),
                         tp.__version__, torch.__version__]).encode())
    h.update(repr(model).encode())
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        h.update(f"{name}:{tuple(t.shape)};".encode())
    if any("forward" in vars(m) for m in model.modules()):
        return None  # a forward patched on an instance: its code is not in the class
    classes = {type(m) for m in model.modules()}
    try:
        for cls in sorted(classes, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
            h.update(inspect.getsource(cls).encode())
        for obj in code:
            h.update(inspect.getsource(obj).encode())
    except (OSError, TypeError):
        return None
    return h.hexdigest()


def load(key: str, unit_type: type) -> list | None:
    """The cached units for ``key`` (re-emitting the cached warning), or None on a miss."""
    path = cache_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_text())
        units = [unit_type(**{k: _tuples(v) for k, v in u.items()}) for u in data["units"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("warning"):
        warnings.warn(data["warning"], stacklevel=3)
    return units


def store(key: str, units: Sequence, warning: str | None) -> None:
    """Cache ``units`` and the warning discovery gave for ``key`` (best effort: a read-only
    cache folder only costs the next run the discovery time)."""
    with contextlib.suppress(OSError):
        atomic.write_json(cache_dir() / f"{key}.json",
                          {"units": [dataclasses.asdict(u) for u in units], "warning": warning})


def _tuples(value: object) -> object:
    """JSON lists back to the tuples the dataclass holds."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
