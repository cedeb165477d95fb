"""Python 3.10, the oldest supported (Gradescope's Ubuntu 22.04 image has it): the wheel installs into a 3.10
virtualenv under the lock that holds every dependency at its declared lower bound
(requirements-lock-py310.txt), its command runs from another directory, and the fast tests pass there (the
Gradescope autograder's among them, after its setup.sh). PyTorch is left out: its CPU build for 3.10 is not on PyPI.

The fast tests run from this clone, so they test its code (the wheel's, built from it) with 3.10's
interpreter and the oldest dependencies. One test, marked slow: about 2 minutes to install, 4 to test.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The fast modules: the original interface, both nets, the data, the command, the outputs, the packaging,
# the exact reference, grading with Gradescope's layout, the history and a Dask cluster on loopback. Left
# to 3.11's full run: --check's calibrated checks, the sandbox's hostile nets, the baseline's statistics
# and the reliability rounds (the slowest quarter of an hour), and the torch backend.
FAST = ["test_original_interface.py", "test_my_net.py", "test_keras_net.py", "test_read_mnist.py",
        "test_pixels.py", "test_modes.py", "test_timing.py", "test_structure.py", "test_packaging.py",
        "test_where_users_are.py", "test_exact.py", "test_grading.py", "test_cli.py", "test_history.py",
        "test_experiments.py", "test_threads.py", "test_cluster.py", "test_trackers.py"]


def python310() -> str | None:
    """A Python 3.10 interpreter: $PYTHON310, pyenv's, the system's (Ubuntu 22.04's python3.10)."""
    candidates = [os.environ.get("PYTHON310", ""), *sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/3.10*/bin/python3.10"))), "/usr/bin/python3.10", shutil.which("python3.10") or ""]
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == "(3, 10)":
            return candidate
    return None


def run(*args, cwd: Path = ROOT, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_wheel_installs_and_the_fast_tests_pass_on_python_310(tmp_path):
    interpreter = python310()
    if interpreter is None:
        if os.environ.get("CI"):
            pytest.fail("no Python 3.10 interpreter: CI's 3.10 leg needs one (set PYTHON310)")
        pytest.skip("no Python 3.10 interpreter here (set PYTHON310 to one)")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                tmp_path / "dist", ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("mnist_compare-*.whl")
    venv = tmp_path / "py310"
    assert run(interpreter, "-m", "venv", venv).returncode == 0
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", ROOT / "requirements-lock-py310.txt",
                    f"{wheel}[jax,dask,test]")
    assert installed.returncode == 0, installed.stderr[-3000:]
    setup = autograder_setup(venv, wheel, tmp_path / "autograder")
    assert setup.returncode == 0 and "mnist-compare" in run(venv / "bin" / "pip", "list").stdout, setup.stderr
    elsewhere = run(venv / "bin" / "mnist-compare", "--hidden_size", "8", "--number_epochs", "1", "--seed", "0",
                    "--compare_nets", "--quiet", cwd=tmp_path)
    assert elsewhere.returncode == 0 and "keras_net" in elsewhere.stdout, elsewhere.stderr
    tests = run(venv / "bin" / "python", "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                *(f"tests/{name}" for name in FAST))
    assert tests.returncode == 0, tests.stdout[-6000:]


def autograder_setup(venv: Path, wheel: Path, folder: Path) -> subprocess.CompletedProcess:
    """examples/gradescope/setup.sh as Gradescope runs it, with the venv's python3 (3.10) first on PATH and
    the wheel in the autograder's source/ folder."""
    (folder / "source").mkdir(parents=True)
    shutil.copy(wheel, folder / "source" / wheel.name)
    env = {**os.environ, "AUTOGRADER": str(folder), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(ROOT / "examples" / "gradescope" / "setup.sh")], capture_output=True,
                          text=True, timeout=900, env=env)
