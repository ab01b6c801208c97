"""File I/O for artifacts: crash-safe writes (temp file beside the target, fsync, rename) and
checked ``torch.load`` reads.

A reader never sees a half-written checkpoint, policy or report; a crash leaves either the old
file or the new one. A missing or unreadable file is a :class:`~amc_agent.env.errors.UserError` that
names the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from amc_agent.env.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    _atomic(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def torch_save(path: Path, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path``."""
    _atomic(path, lambda f: torch.save(obj, f))


def read_torch(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; ``what`` names the file in errors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except Exception as exc:
        raise UserError(f"{what} {path} is corrupt or unreadable ({type(exc).__name__})") from None
