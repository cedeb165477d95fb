"""The project as a package: a wheel that adds one top-level name, ships the bundled MNIST, installs the
`mnist-compare` command, and records the version the command prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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
    assert "Requires-Dist: numpy>=2.2" in metadata and 'extra == "dask"' in metadata


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


def test_the_wheel_declares_ranges_its_license_and_the_mnist_notice(wheel):
    info = f"mnist_compare-{__version__}.dist-info"
    metadata = wheel.read(f"{info}/METADATA").decode()
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert requires and not [r for r in requires if "==" in r.split(";")[0]], requires  # ranges, not pins
    assert "License-Expression: MIT" in metadata and "Requires-Python: >=3.10" in metadata
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Classifier: Programming Language :: Python :: {version}" in metadata
    assert "Classifier: Typing :: Typed" in metadata and "mnist_compare/py.typed" in wheel.namelist()
    notice = wheel.read(f"{info}/licenses/NOTICE").decode()
    assert wheel.read(f"{info}/licenses/LICENSE").decode().startswith("MIT License")
    assert "Yann LeCun, Corinna Cortes and Christopher J. C. Burges" in notice and "CC BY-SA 3.0" in notice


def declared() -> dict[str, Requirement]:
    """pyproject.toml's runtime dependencies and extras (but the project's own), by name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {(req := Requirement(line)).name: req for line in listed if not line.startswith("mnist-compare")}


def locked(name: str) -> dict[str, str]:
    """The exact versions a lock file pins, by name."""
    pins = [line.split(" ;")[0].split("==") for line in (ROOT / name).read_text().splitlines() if "==" in line]
    return {package.lower(): version for package, version in pins}


@pytest.mark.parametrize("lock", ["requirements-lock.txt", "requirements-lock-py310.txt"])
def test_every_locked_version_lies_in_its_declared_range(lock):
    pins = locked(lock)
    checked = [name for name in declared() if name in pins]
    assert {"numpy", "scipy", "tensorflow", "keras", "jax", "dask", "pytest"} <= set(checked)
    for name in checked:
        assert declared()[name].specifier.contains(pins[name], prereleases=True), (lock, name, pins[name])


def test_the_python_310_lock_tests_each_runtime_lower_bound():
    """The lower bounds are what CI's 3.10 leg installs: each bound's minor release, newest patch."""
    pins = locked("requirements-lock-py310.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is not None:
            continue  # tomli, for 3.10 only: no bound to test
        bound = next(spec.version for spec in requirement.specifier if spec.operator == ">=")
        assert pins[requirement.name].startswith(bound.rstrip(".0") if bound.count(".") > 1 else bound), (
            requirement.name, bound, pins[requirement.name])


def test_ci_installs_from_the_lock():
    assert (ROOT / "requirements-dev.txt").read_text().splitlines()[2:] == ["-c requirements-lock.txt", "-e .[dev]"]
    assert "pip install -r requirements-dev.txt" in (ROOT / ".ci" / "run").read_text()


def test_pip_keeps_another_numpy_and_scipy_that_fit_the_ranges(tmp_path):
    """pip's own resolver, asked to install the project where numpy 2.3.5 and scipy 1.16.3 are wanted (on
    Python 3.10, whose last minor releases are the lower bounds, other patches of those), keeps them (its dry
    run reads PyPI's metadata, installs nothing); the same run in a fresh virtualenv is in the README."""
    numpy, scipy = ("2.3.5", "1.16.3") if sys.version_info >= (3, 11) else ("2.2.5", "1.15.2")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-build-isolation",
                           "--report", str(report), str(ROOT), f"numpy=={numpy}", f"scipy=={scipy}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["numpy"] == numpy and chosen["scipy"] == scipy and "mnist-compare" in chosen
