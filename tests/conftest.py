"""Shared fixtures: the real bundled MNIST (loaded once) and small helpers for IDX files."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_compare.cli import main
from mnist_compare.data import idx as read_mnist


@pytest.fixture(scope="session")
def mnist() -> tuple[np.ndarray, ...]:
    """X_train (60000, 784) float32, y_train, X_test (10000, 784), y_test from the bundled files."""
    return read_mnist.load_data()


@pytest.fixture(scope="session")
def mnist_subset(mnist) -> tuple[np.ndarray, ...]:
    """The first 6,000 training and 2,000 test images: 47 batches of 128 and a partial one of 112."""
    X_train, y_train, X_test, y_test = mnist
    return X_train[:6000], y_train[:6000], X_test[:2000], y_test[:2000]


def mnist_compare_command(*args, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m mnist_compare ARGS` in a process of its own, from the repository root, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "mnist_compare", *map(str, args)], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=timeout, env=env)


def run_cli(*args: str):
    """main.py's command in-process, with stdout and stderr kept apart."""
    return CliRunner().invoke(main.main, list(args), catch_exceptions=False)


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """The IDX encoding of `array`: magic (0, 0, dtype code, ndim), big-endian uint32 dims, data."""
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    content = idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return path


def write_dataset(directory: Path, n_train: int = 12, n_test: int = 5, compress: bool = False,
                  seed: int = 0) -> tuple[np.ndarray, ...]:
    """Write a tiny MNIST-format data set (random pixels and labels) and return its arrays."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(stems, arrays, strict=True):
        write_idx(directory / stem, array, compress)
    return arrays


def run_on_a_dumb_terminal(*args: str, timeout: float = 300) -> tuple[int, bytes]:
    """main.py with TERM=dumb and its stderr on a real pseudo-terminal (one that would show bars), stdout
    discarded: (exit code, what reached the terminal)."""
    import os
    import pty
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "main.py", *args], cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=terminal, env={**os.environ, "TERM": "dumb"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=timeout)
    os.close(controller)
    return process.returncode, b"".join(chunks)
