"""Shared fixtures: tests never touch the network and never log to wandb online."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ["WANDB_SILENT"] = "true"
# Module-scoped fixtures run before the per-test cache folder below exists: give them one too.
os.environ["AMC_CACHE_DIR"] = tempfile.mkdtemp(prefix="amc-test-cache-")
atexit.register(shutil.rmtree, os.environ["AMC_CACHE_DIR"], True)
# Under pytest-xdist (make test runs two workers) each worker gets one of the two cores.
torch.set_num_threads(1 if "PYTEST_XDIST_WORKER" in os.environ
                      else min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    """Caches (discovered units, latency tables) in a folder of the test's own, never the home
    folder, and never shared between tests (a test that patches discovery must not read
    another test's result)."""
    # Not under tmp_path: tests check that bad input writes nothing there.
    monkeypatch.setenv("AMC_CACHE_DIR", str(tmp_path_factory.mktemp("amc-cache")))
