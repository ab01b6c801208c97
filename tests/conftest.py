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
# Latency tables and other caches go to a scratch folder per test process, never the home folder.
os.environ["AMC_CACHE_DIR"] = tempfile.mkdtemp(prefix="amc-test-cache-")
atexit.register(shutil.rmtree, os.environ["AMC_CACHE_DIR"], True)
# Under pytest-xdist (make test runs two workers) each worker gets one of the two cores.
torch.set_num_threads(1 if "PYTEST_XDIST_WORKER" in os.environ
                      else min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
