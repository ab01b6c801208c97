"""A CPU latency measurement does not depend on the process's heap history: in a fresh process
glibc maps and faults in every activation buffer of a batch anew on every call (counted here as
minor page faults, which do not depend on timing noise); once a measurement has run, the buffers
are reused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from amc_agent.env.allocator import steady_heap

SCRIPT = """
import resource, sys, torch
from amc_agent.env.latency import measure_latency
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU()).eval()
x = torch.randn(64, 1, 28, 28)  # each activation: 3.2 MB, far above glibc's first thresholds
if sys.argv[1] == "measured":
    measure_latency(torch.nn.Conv2d(1, 1, 1), (1, 4, 4), min_time_s=0.01, warmup=1)
with torch.no_grad():
    for _ in range(3):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        net(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not steady_heap(), reason="this libc has no mallopt (not glibc)")
def test_a_measurement_fixes_the_heap_regime() -> None:
    fresh, measured = _faults("fresh"), _faults("measured")
    assert fresh > 1000  # the slow regime exists: pages faulted in on every call
    assert measured < 100  # after any CPU measurement the buffers are reused
