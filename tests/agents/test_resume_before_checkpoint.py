"""``amc-search --resume`` on a folder a search left before its first checkpoint (killed early:
config.yaml, episodes.jsonl, maybe a policy and a stray temp file) starts the search again,
where it used to be refused both with and without ``--resume``."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from amc_agent.agents.search import STATE_FILE
from amc_agent.cli.search import prepare_out
from amc_agent.env.errors import UserError
from tests.agents.test_kill_resume import COMMAND, REPO, line_count, rows, run_to_end

EPISODES = 3
# No checkpoint before the last episode, so a kill after the first row finds none.
EXTRA = ["--episodes", str(EPISODES), "--checkpoint-every", str(EPISODES)]
EARLY = [*COMMAND, *EXTRA]


def _leftovers(out: Path) -> None:
    out.mkdir()
    (out / "config.yaml").write_text("model: cnn\n")
    (out / "episodes.jsonl").write_text("")
    (out / ".config.yaml.k3j2.tmp").write_text("mod")


def test_resume_restarts_a_folder_without_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / "s"
    _leftovers(out)
    assert prepare_out(out, resume=True) is False  # start from episode 0
    assert list(out.iterdir()) == []
    assert "stopped before its first checkpoint; starting the search again" in \
        capsys.readouterr().err


def test_resume_still_refuses_a_folder_with_foreign_files(tmp_path) -> None:
    out = tmp_path / "s"
    _leftovers(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="nothing to resume"):
        prepare_out(out, resume=True)
    assert (out / "notes.txt").exists() and (out / "config.yaml").exists()


def test_sigkill_before_first_checkpoint_then_resume(tmp_path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = subprocess.Popen([*EARLY, "--out", str(cut)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while line_count(cut / "episodes.jsonl") < 1:
            assert proc.poll() is None, "the search ended before it could be killed"
            assert time.monotonic() < deadline, "the search made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (cut / STATE_FILE).exists() and (cut / "config.yaml").exists()

    resumed = subprocess.run([*EARLY, "--out", str(cut), "--resume"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "starting the search again" in resumed.stderr
    run_to_end(full, *EXTRA)
    assert rows(cut) == rows(full)
