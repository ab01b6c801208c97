"""Reliability counts: the fault tests and the bad-input table, run and counted.

    python -m bench.bench_reliability

Runs the test files that exercise faults (SIGKILL during a search and during artifact writes,
resume, diverged training) and the bad-input table with pytest, and records how many cases of
each passed, plus the table itself (case, command, the error line it must produce). These tests
also run in ``make test``; this puts their counts into ``BENCHMARKS.md``.
Writes ``bench/results/reliability.json``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bench.common import write_result

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {
    "bad input (every command)": ["tests/scripts/test_bad_input.py"],
    "SIGKILL + resume of a search": ["tests/agents/test_kill_resume.py",
                                     "tests/agents/test_search.py::"
                                     "test_kill_and_resume_gives_the_same_episodes"],
    "crash while writing an artifact": ["tests/amc_env/test_atomic.py"],
    "training resume after a crash": ["tests/scripts/test_train_cli.py::"
                                      "test_resume_matches_uninterrupted_run"],
    "diverged (NaN/inf) training": ["tests/amc_env/test_training.py::"
                                    "test_a_nan_loss_stops_training_at_that_step",
                                    "tests/scripts/test_train_cli.py::"
                                    "test_diverged_training_exits_1_and_writes_nothing",
                                    "tests/policies/test_compare.py::"
                                    "test_diverged_finetune_is_reported_not_scored"],
    "NaN action rejected, NaN episode never best": [
        "tests/amc_env/test_env.py::test_bad_input",
        "tests/agents/test_search.py::test_nan_accuracy_is_reported_never_best"],
}


def run_group(targets: list[str]) -> dict[str, Any]:
    """Run pytest on ``targets``; passed/failed/skipped counts from its JUnit XML."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={xml}", *targets], cwd=ROOT, capture_output=True)
        suite = ET.parse(xml).getroot()
        cases = suite.iter("testcase")
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for c in cases:
            if c.find("failure") is not None or c.find("error") is not None:
                counts["failed"] += 1
            elif c.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    return counts


def main() -> None:
    """Run every group, list the bad-input table, write the result file."""
    sys.path.insert(0, str(ROOT))
    from tests.scripts.test_bad_input import CASES  # the table lives with its test

    groups = {}
    for name, targets in GROUPS.items():
        groups[name] = {"targets": targets, **run_group(targets)}
        print(name, groups[name], flush=True)
    table = [{"case": cid, "command": prog, "error_pattern": pattern}
             for cid, prog, _, pattern in CASES]
    print(f"wrote {write_result('reliability', {'groups': groups, 'bad_input_cases': table})}")


if __name__ == "__main__":
    main()
