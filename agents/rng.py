"""Capture and restore every random state a search uses, as plain types (``weights_only`` safe).

A resumed search must draw exactly what the uninterrupted one would have drawn: Python's
``random``, NumPy's global generator (SB3's replay buffers sample with it), torch's CPU (and CUDA)
generators, and any ``numpy.random.Generator`` objects.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import torch


def generator_state(rng: np.random.Generator) -> str:
    """A ``numpy.random.Generator``'s state as a JSON string (its ints exceed 64 bits)."""
    return json.dumps(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, state: str) -> None:
    """Restore :func:`generator_state`."""
    rng.bit_generator.state = json.loads(state)


def global_rng_state() -> dict[str, Any]:
    """Python, NumPy-global and torch generator states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": json.dumps(random.getstate()),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`."""
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
