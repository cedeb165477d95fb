"""The machine a run was timed on: BLAS library and kernel, thread settings, load, for the JSON metadata.

Not for: timing itself (runs/runner.py) or rendering (report.py).
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

THREAD_VARIABLE_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "TF_NUM_", "XLA_FLAGS")
AVX512_KERNELS = ("SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS")  # OpenBLAS core types that use AVX-512


def installed_versions(packages: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Each package's installed version (None when absent), read without importing it."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def install_hint(extra: str) -> str:
    """How to install an extra as this copy of the tool was installed: `pip install -r requirements-X.txt`
    in a clone (the file is beside the package), else `pip install 'mnist-compare[X]'`."""
    requirements = Path(__file__).resolve().parents[2] / f"requirements-{extra}.txt"
    if requirements.is_file():
        return f"pip install -r {requirements}"
    return f"pip install 'mnist-compare[{extra}]'"


def blas_libraries() -> list[dict[str, Any]]:
    """Each BLAS this process has loaded (NumPy's, scipy's): library, version, kernel, threads (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "architecture", "num_threads", "filepath")
    return [{key: info.get(key) for key in keys} for info in threadpool_info() if info.get("user_api") == "blas"]


def thread_environment() -> dict[str, str]:
    """The environment variables that set thread counts or pin BLAS kernels (OPENBLAS_*, OMP_*, MKL_*, ...)."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(THREAD_VARIABLE_PREFIXES)}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the machine was."""
    return [round(value, 2) for value in os.getloadavg()]


def tensorflow_threads() -> dict[str, int] | None:
    """TensorFlow's intra/inter-op thread settings (0: its default, one per core) if it is loaded here."""
    if "tensorflow" not in sys.modules:
        return None
    tf = sys.modules["tensorflow"]  # already imported by the runs: reading its settings costs nothing
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def machine_record(load_before: list[float]) -> dict[str, Any]:
    """What shaped the timings: BLAS libraries and kernels, thread settings, load before and after the runs."""
    return {"blas": blas_libraries(), "thread_environment": thread_environment(),
            "tensorflow_threads": tensorflow_threads(), "load_average_before": load_before,
            "load_average_after": load_average()}


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def kernel_pin_warning() -> str | None:
    """A sentence when OPENBLAS_CORETYPE pins a kernel without AVX-512 on a CPU that has it (this project's
    machines set Haswell: about half the GEMM rate); None otherwise."""
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    if not pinned or pinned.upper() in AVX512_KERNELS or "avx512f" not in cpu_flags():
        return None
    return (f"OPENBLAS_CORETYPE={pinned} pins OpenBLAS to a kernel without AVX-512 on a CPU that has it: my_net's "
            "products run at about half their speed (unset it, with OPENBLAS_L2_SIZE, to time as a user's machine)")
