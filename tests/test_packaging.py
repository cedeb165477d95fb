"""The project as a package: a wheel that adds one top-level name, ships the bundled MNIST, installs the
`mnist-compare` command, and records the version the command prints."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mnist_compare import __version__

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The project's wheel, built here from the working tree (no download: setuptools is a test requirement)."""
    directory = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(directory), str(ROOT)], check=True, capture_output=True, timeout=300)
    (path,) = directory.glob("mnist_compare-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_adds_exactly_one_top_level_import_name(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"mnist_compare", f"mnist_compare-{__version__}.dist-info"}
    assert wheel.read(f"mnist_compare-{__version__}.dist-info/top_level.txt").split() == [b"mnist_compare"]


def test_the_wheel_ships_the_bundled_mnist_with_its_manifest(wheel):
    names = set(wheel.namelist())
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("mnist_compare/data/mnist/")}
    assert shipped == {path.name for path in (ROOT / "mnist_compare" / "data" / "mnist").iterdir()}
    manifest = wheel.read("mnist_compare/data/mnist/SHA256SUMS.uncompressed")
    assert manifest == (ROOT / "mnist_compare" / "data" / "mnist" / "SHA256SUMS.uncompressed").read_bytes()


def test_the_wheel_installs_the_command_and_records_the_version_it_prints(wheel):
    info = f"mnist_compare-{__version__}.dist-info"
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert "mnist-compare = mnist_compare.__main__:main" in entry_points
    metadata = wheel.read(f"{info}/METADATA").decode()
    assert f"Version: {__version__}" in metadata
    assert "Requires-Dist: numpy==2.4.6" in metadata and 'extra == "dask"' in metadata


def test_the_version_is_defined_once_and_printed_by_every_entry_point():
    script = Path(sys.executable).parent / "mnist-compare"  # the console script, beside this interpreter
    for command in ([sys.executable, "-m", "mnist_compare", "--version"], [str(script), "--version"]):
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")
        assert out.returncode == 0 and out.stdout.strip() == f"mnist-compare, version {__version__}", out.stderr


def test_an_installed_wheel_hints_at_its_extras_not_at_a_clone_s_requirements_files(wheel, tmp_path):
    wheel.extractall(tmp_path / "site")
    code = ("from mnist_compare.system.machine import install_hint; import mnist_compare; "
            "print(install_hint('dask')); print(mnist_compare.__file__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    hint, where = done.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site")) and hint == "pip install 'mnist-compare[dask]'", done.stderr
