"""Fault test: ``amc-search`` killed with SIGKILL mid-run, then ``--resume``d, ends exactly where an
uninterrupted run of the same command ends; ``policy.json`` is never seen half-written.

Unlike the in-process crash test in test_search.py, this kills a real process at an arbitrary
(seeded) moment, so a kill can land inside an episode, a checkpoint write or a policy write.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from amc_agent.agents.search import STATE_FILE

REPO = Path(__file__).resolve().parents[2]
EPISODES = 12
COMMAND = [sys.executable, "-m", "amc_agent.cli.search", "--model", "cnn", "--dataset", "synthetic",
           "--eval-size", "32", "--recalib-batches", "1", "--recalib-batch-size", "16",
           "--no-progress", "--wandb-mode", "disabled", "--threads", "1",
           "--agent", "amc-ddpg", "--agent-kwargs", "{warmup_episodes: 2, batch_size: 4}",
           "--episodes", str(EPISODES), "--checkpoint-every", "2", "--seed", "0"]
KILL_SEED = 7
ATTEMPTS = 4


def rows(out: Path) -> list[dict]:
    """episodes.jsonl without the wall-clock field (as test_search.rows)."""
    lines = (out / "episodes.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "seconds"} for ln in lines]


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_to_end(out: Path, *extra: str) -> None:
    proc = subprocess.run([*COMMAND, "--out", str(out), *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def kill_mid_run(cut: Path, kill_after_rows: int, extra_delay: float) -> int:
    """Start the search into ``cut``, SIGKILL it ``extra_delay`` s after ``kill_after_rows`` rows
    and a checkpoint exist; returns how many rows it had written. Asserts that every
    ``policy.json`` seen meanwhile parsed (it is written atomically)."""
    proc = subprocess.Popen([*COMMAND, "--out", str(cut)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parsed_policies = 0
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "the search ended before it could be killed"
            assert time.monotonic() < deadline, "the search made no progress"
            policy = cut / "policy.json"
            if policy.exists():
                json.loads(policy.read_text())  # never truncated: written atomically
                parsed_policies += 1
            if (cut / STATE_FILE).exists() and \
                    line_count(cut / "episodes.jsonl") >= kill_after_rows:
                break
            time.sleep(0.005)
        time.sleep(extra_delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert parsed_policies > 0
    assert json.loads((cut / "policy.json").read_text())
    return line_count(cut / "episodes.jsonl")


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path) -> None:
    full = tmp_path / "full"
    run_to_end(full)

    # An episode of this search takes ~15 ms, so a poller starved by a loaded machine can see
    # the kill point late enough that every row is already written; such a kill tests no resume,
    # so it is drawn again (earlier) rather than counted.
    rng = random.Random(KILL_SEED)
    for attempt in range(ATTEMPTS):
        cut = tmp_path / f"cut{attempt}"
        written = kill_mid_run(cut, rng.randint(2, EPISODES // 2), rng.uniform(0.0, 0.03))
        if written < EPISODES:
            break
    assert 0 < written < EPISODES, f"no kill in {ATTEMPTS} landed before the last row"

    run_to_end(cut, "--resume")
    assert rows(cut) == rows(full)
    assert json.loads((cut / "policy.json").read_text()) == \
        json.loads((full / "policy.json").read_text())
