"""`pip install .` then `lookalike demo`: the wheel carries everything the demo needs.

The wheel is installed into a fresh venv that sees this venv's
site-packages through a plain path line in a ``.pth`` file. Python adds
that folder to ``sys.path`` without processing the ``.pth`` files inside
it, so the dev checkout's editable-install finder stays off and only the
wheel's own files (code, templates, migrations, the sample collection)
are importable. The build runs on a copy of the checkout, so it writes
no ``build/`` or ``*.egg-info`` into it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# bench/out can hold a million generated files (bench/scale.py): the wheel needs none of bench/.
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", ".hypothesis", ".pytest_cache", "__pycache__",
                                    "*.egg-info", "build", "dist", "lookalike-data", "bench")


def _run(args: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH or data dir leaking in from the test run; no index for pip to ask."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("LOOKALIKE_")}
    env["PIP_NO_INDEX"] = "1"
    return env


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", wheels, source], timeout=120, env=_clean_env())
    (wheel,) = wheels.glob("lookalike-*.whl")
    return wheel


def _venv_with_our_dependencies(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    python = venv / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                timeout=30).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "lookalike-test-deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout (bin/) and the shell script are POSIX")
def test_installed_wheel_runs_the_demo(tmp_path):
    wheel = _build_wheel(tmp_path)
    venv = _venv_with_our_dependencies(tmp_path)
    python, env = venv / "bin" / "python", _clean_env()
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
         timeout=120, env=env)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    where = _run([python, "-c", "import indexer, web; print(indexer.__file__); print(web.__file__)"],
                 timeout=60, cwd=cwd, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    data = tmp_path / "data"
    demo = _run([venv / "bin" / "lookalike", "--data-dir", data, "demo", "--epochs", "1"],
                timeout=300, cwd=cwd, env=env)
    assert "indexed the sample: added 400" in demo.stdout
    hits = re.findall(r"^\s*\d+\s+-?\d+\.\d{4}\s+\S+\.png$", demo.stdout, re.MULTILINE)
    assert len(hits) == 8, demo.stdout  # the demo's default k
    assert (data / "demo-results.png").stat().st_size > 0
