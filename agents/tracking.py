"""wandb tracking with a safe fallback, and a reader for offline runs.

Offline by default (works without network; ``wandb sync`` uploads later). If wandb cannot start,
the run continues with tracking disabled and one warning: local artifacts (``episodes.jsonl``,
``policy.json``, reports) never depend on wandb. :func:`read_offline_run` decodes an offline
run's ``.wandb`` file (LevelDB-style log of protobuf records) so tests and users can check what
was logged without a server.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

MODES = ("offline", "online", "disabled")


class Tracker:
    """One wandb run, or nothing if ``mode`` is ``disabled`` or wandb fails to start."""

    def __init__(
        self,
        mode: str,
        directory: Path,
        project: str,
        name: str,
        group: str | None = None,
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
        job_type: str | None = None,
    ) -> None:
        self.run = None
        self.run_id = run_id
        if mode not in MODES:
            raise ValueError(f"wandb mode must be one of {MODES}, got {mode!r}")
        if mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            import wandb

            Path(directory).mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(mode=mode, dir=str(directory), project=project, name=name,
                                  group=group, config=config or {}, id=run_id,
                                  resume="allow" if run_id else None, job_type=job_type,
                                  reinit="create_new")
            self.run_id = self.run.id
        except Exception as exc:  # any failure to start must not cost the local results
            sys.stderr.write(f"warning: wandb could not start ({type(exc).__name__}: {exc}); "
                             "continuing with tracking disabled\n")
            self.run = None

    @property
    def active(self) -> bool:
        """Whether a wandb run is recording."""
        return self.run is not None

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        """Log scalars (and wandb objects) at ``step``."""
        if self.run is not None:
            self.run.log(data, step=step)

    def bar(self, key: str, labels: list[str], values: list[float], label: str, value: str,
            title: str, step: int | None = None) -> None:
        """A bar chart from a two-column table (e.g. keep ratio per unit)."""
        if self.run is None:
            return
        import wandb

        table = wandb.Table(columns=[label, value], data=[[a, b] for a, b in
                                                          zip(labels, values, strict=True)])
        self.run.log({key: wandb.plot.bar(table, label, value, title=title)}, step=step)

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Log a table."""
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def summary(self, data: dict[str, Any]) -> None:
        """Set summary values."""
        if self.run is not None:
            for k, v in data.items():
                self.run.summary[k] = v

    def finish(self) -> None:
        """Close the run (flushes the offline file)."""
        if self.run is not None:
            self.run.finish()
            self.run = None


def _records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    block, pos, buf, out = 32768, 7, b"", []  # 7-byte file header, then 32 KiB blocks
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            pos += left - 7
            continue
        buf += data[pos:pos + length]
        pos += length
        if kind in (1, 4):  # FULL or LAST fragment
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def read_offline_run(run_dir: Path, wait_s: float = 30.0) -> dict[str, Any]:
    """Decode ``wandb/offline-run-*/``: ``{"name", "group", "config", "history", "summary"}``
    with ``history`` a list of {key: value} dicts (keys of nested values joined by '/').

    wandb's writer process may still be flushing after ``finish()`` returns (seen on a loaded
    2-core machine: an empty file read back right after it): the file is read again until it
    holds the run's final ``exit`` record, for up to ``wait_s`` seconds."""
    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    out: dict[str, Any] = {"name": None, "group": None, "config": {}, "history": [],
                           "summary": {}}

    def key(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    deadline = time.monotonic() + wait_s
    records = _records(files[0])
    while not any(r.WhichOneof("record_type") == "exit" for r in records) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
        records = _records(files[0])
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["group"] = rec.run.display_name, rec.run.run_group
            for it in rec.run.config.update:
                out["config"][key(it)] = json.loads(it.value_json)
        elif kind == "config":
            for it in rec.config.update:
                out["config"][key(it)] = json.loads(it.value_json)
        elif kind == "history":
            out["history"].append({key(it): json.loads(it.value_json) for it in rec.history.item})
        elif kind == "summary":
            for it in rec.summary.update:
                out["summary"][key(it)] = json.loads(it.value_json)
    return out


def offline_runs(directory: Path) -> list[Path]:
    """The offline run folders under ``directory/wandb``, oldest first."""
    return sorted((Path(directory) / "wandb").glob("offline-run-*"))
