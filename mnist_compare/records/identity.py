"""What a results file says about where it came from: its format's version, the tool's version and git
commit, and the SHA-256 of a user's net file, so that a baseline compared months later names what made it.

Not for: the machine the runs were timed on (machine.py) or writing the file (output/report.py).
"""

from __future__ import annotations

import hashlib
import inspect
import subprocess
from pathlib import Path
from typing import Any

import mnist_compare

# 1: format_version, tool_version, git_commit, git_dirty and net_file at the top level (schema/results.json).
# A file without format_version (written before 1.2.0) is read as version 0: the same runs, no identity.
FORMAT_VERSION = 1
SOURCE_DIR = Path(mnist_compare.__file__).resolve().parent.parent  # a clone's root, or site-packages
GIT_TIMEOUT_S = 5


def git(*args: str) -> str | None:
    """`git -C SOURCE_DIR args` stripped, or None when git is missing, slow, or SOURCE_DIR is not a clone."""
    try:
        done = subprocess.run(["git", "-C", str(SOURCE_DIR), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_identity() -> dict[str, Any]:
    """{"git_commit": HEAD's hash, "git_dirty": whether tracked files differ from it}; both None when the
    package does not run from a git clone (an installed wheel)."""
    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != SOURCE_DIR:  # site-packages inside some other repository
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": None if status is None else bool(status)}


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def net_file(net: type) -> dict[str, str] | None:
    """{"path", "sha256"} of the file that defines a user's net class; None for the built-in nets."""
    if net.__module__.startswith("mnist_compare."):
        return None
    try:
        path = inspect.getfile(net)
    except (TypeError, OSError):
        return None
    return {"path": path, "sha256": sha256_of(path)} if Path(path).is_file() else None


def identity(net: type) -> dict[str, Any]:
    """The top-level identity fields of a results file."""
    return {"format_version": FORMAT_VERSION, "tool_version": mnist_compare.__version__, **git_identity(),
            "net_file": net_file(net)}
