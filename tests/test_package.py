"""What gets installed: one import package, ``amc_agent``, built from the repository's folders. Its
wheel works in a fresh virtual environment (console script, a search, the Python API example),
with the repository not on the path, beside distributions that own top-level ``agents`` and
``scripts`` packages."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("amc_agent", "amc_env", "agents", "policies", "scripts")
"""What the wheel is built from (pyproject's package-dir)."""
OLD_NAMES = {"amc_env", "agents", "policies", "scripts"}


def test_no_module_imports_a_repository_folder_as_a_top_level_package() -> None:
    # With the repository on the path, `import agents` would load a second copy of a module
    # (two registries, failing isinstance checks); everything imports amc_agent.*.
    bad = []
    for folder in (*FOLDERS, "bench", "tests", "examples"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                bad += [f"{path.relative_to(REPO)}: {n}" for n in names
                        if n.split(".")[0] in OLD_NAMES]
    assert not bad


def _run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(WANDB_MODE="disabled", PYTHONNOUSERSITE="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          **kw)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _wheel(src: Path, out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", str(out), str(src)], cwd=src)
    [wheel] = out.glob("*.whl")
    return wheel


def _standin(root: Path, package: str) -> Path:
    """A tiny distribution owning top-level ``package`` (as unrelated index projects do)."""
    src = root / f"standin-{package}"
    (src / package).mkdir(parents=True)
    (src / package / "__init__.py").write_text(f"OWNER = 'standin-{package}'\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "standin-{package}"\nversion = "1.0"\n'
        f'[tool.setuptools]\npackages = ["{package}"]\n')
    return _wheel(src, root / f"dist-{package}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, fresh venv with the wheel and the stand-ins installed)."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"
    for name in FOLDERS:
        shutil.copytree(REPO / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    wheel = _wheel(src, tmp / "dist")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    site = Path(_run([str(venv / "bin" / "python"), "-c",
                      "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp).stdout.strip())
    # The locked dependencies from this test environment as plain path lines, so their .pth
    # files (the repository's editable install) are not processed in the new environment.
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "locked_deps.pth").write_text("".join(f"{p}\n" for p in deps))
    for whl in (wheel, _standin(tmp, "agents"), _standin(tmp, "scripts")):
        _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
              "-q", "--no-deps", "--no-index", "--ignore-installed", str(whl)], cwd=tmp)
    return wheel, venv


def test_the_wheel_holds_one_top_level_package(installed) -> None:
    wheel, _ = installed
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"amc_agent", wheel.name.split("-py3")[0] + ".dist-info"}


def test_console_script_and_api_work_beside_other_owners_of_the_names(installed,
                                                                     tmp_path) -> None:
    _, venv = installed
    py, bin_dir = str(venv / "bin" / "python"), venv / "bin"
    out = _run([str(bin_dir / "amc-search"), "--help"], cwd=tmp_path).stdout
    assert out.startswith("usage: amc-search")
    _run([str(bin_dir / "amc-search"), "--model", "cnn", "--dataset", "synthetic",
          "--eval-size", "32", "--recalib-batches", "1", "--recalib-batch-size", "16",
          "--no-progress", "--wandb-mode", "disabled", "--agent", "random", "--episodes", "2",
          "--out", str(tmp_path / "search")], cwd=tmp_path)
    assert json.loads((tmp_path / "search" / "policy.json").read_text())["keep_ratios"]
    probe = ("import agents, scripts, amc_agent, amc_agent.agents as a\n"
             "print(agents.OWNER, scripts.OWNER, amc_agent.__file__, 'amc-ddpg' in a.AGENTS)")
    owners = _run([py, "-c", probe], cwd=tmp_path).stdout.split()
    assert owners[:2] == ["standin-agents", "standin-scripts"]
    assert owners[2].startswith(str(venv)) and owners[3] == "True"  # the wheel, not the repo


def test_api_example_prunes_a_users_model(installed, tmp_path) -> None:
    _, venv = installed
    script = tmp_path / "prune_my_model.py"  # run from a copy: the repository is not on the path
    shutil.copy(REPO / "examples" / "prune_my_model.py", script)
    _run([str(venv / "bin" / "python"), str(script), "--episodes", "6", "--epochs", "3",
          "--out", str(tmp_path / "out")], cwd=tmp_path)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["macs_kept"] <= 0.5 and summary["macs_pruned"] < summary["macs"]
    assert summary["test_acc"] > 0.5 and summary["test_acc_pruned"] > 0.5  # 4 classes
    assert (tmp_path / "out" / "pruned.onnx").stat().st_size > 0
    assert (tmp_path / "out" / "search" / "policy.json").is_file()


def test_starting_a_command_loads_no_library_it_does_not_use() -> None:
    """Every CLI call, local or Ray worker and torchrun rank pays the package's import time: the
    libraries only some paths need (scipy for DDPG's noise and the latency line, matplotlib for
    plots, timm for ``timm:NAME`` models, wandb for tracking) load on first use, not at start-up;
    timm still loads on demand afterwards."""
    code = (
        "import sys\n"
        "import amc_agent.cli.compare, amc_agent.cli.search, amc_agent.cli.apply\n"
        "import amc_agent.agents.workers\n"
        "print(sorted(m for m in ('scipy', 'matplotlib', 'timm', 'wandb') if m in sys.modules))\n"
        "import timm\n"  # still importable on demand (the start-up hides it only while loading)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
