"""The result record that every net's run returns, so that report code never asks which net made a row.

Not for: rendering (see report.py) or training (see runs/runner.py).
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import numpy as np

from mnist_compare.records.spec import NUM_CLASSES, RunSpec

EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with the 0-based epoch index and that epoch's logs (loss, accuracy, ...)."""

OK, DIVERGED, INTERRUPTED, ERROR = "ok", "diverged", "interrupted", "error"


class TrainingDiverged(ArithmeticError):
    """A loss or weight became non-finite in (1-based) epoch `epoch`."""

    def __init__(self, epoch: int):
        super().__init__(f"training diverged at epoch {epoch}")
        self.epoch = epoch


OUT_OF_MEMORY = "out of memory"  # how an error row that ran out of memory begins (its own exit code)


def is_out_of_memory(err: BaseException) -> bool:
    """A refused allocation (MemoryError, ENOMEM), or a library that could not be mapped into memory (the
    dynamic loader's words under a memory limit, e.g. `ulimit -v`)."""
    if isinstance(err, MemoryError) or getattr(err, "errno", None) == errno.ENOMEM:
        return True
    text = str(err)
    return isinstance(err, ImportError | OSError) and ("Cannot allocate memory" in text or "failed to map" in text)


class RunFailed(RuntimeError):
    """A run stopped by an error of its own (a worker that died, a user's net that raised); the message is
    "<ExceptionType>: <message>" and becomes the row's `error: ...`."""


@dataclass
class RunResult:
    """One training run of one net. Accuracies are fractions in [0, 1]; times are seconds.

    `train_time_s` covers training only (data loaded, model built); final metrics are computed on the
    full train and test sets after training; `initial_train_loss` on the train set before it.
    `history` maps metric name -> one value per epoch.
    """

    spec: RunSpec
    status: str = OK
    train_time_s: float = math.nan
    test_accuracy: float = math.nan
    test_loss: float = math.nan
    train_accuracy: float = math.nan
    train_loss: float = math.nan
    initial_train_loss: float = math.nan
    first_epoch_s: float = math.nan  # the first epoch's wall time: Keras' tracing or compilation is in it
    steady_epoch_s: float = math.nan  # the median of epochs 2..n (NaN with one epoch)
    target_epoch: int | None = None  # the first epoch (1-based) whose test accuracy reached --target_accuracy
    time_to_target_s: float | None = None  # training time to the end of that epoch
    others_cores: float | None = None  # cores other processes held on average while it trained (/proc/stat)
    time_distorted: bool = False  # others held a core and the net's threads did not follow: its time is inflated
    history: dict[str, list[float]] = field(default_factory=dict)
    diverged_epoch: int | None = None
    confusion: list[list[int]] | None = None
    net_info: dict[str, Any] = field(default_factory=dict)  # e.g. Keras' backend, versions, effective settings
    error: str | None = None  # why a run that raised (status "error") stopped: "<ExceptionType>: <message>"

    @property
    def name(self) -> str:
        return self.spec.net_name

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.spec.hyperparameters()

    @property
    def finished(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """The run as results files record it: name, hyperparameters, seed, then every measured field."""
        measured = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spec"}
        return {"name": self.name, "hyperparameters": self.hyperparameters, "seed": self.seed, **measured}

    def mark_diverged(self, epoch: int) -> RunResult:
        """Record that training diverged at (1-based) `epoch`; the finished epochs stay in history."""
        self.status, self.diverged_epoch = DIVERGED, epoch
        return self

    def mark_interrupted(self) -> RunResult:
        self.status = INTERRUPTED
        return self

    def mark_error(self, message: str) -> RunResult:
        """Record that training raised: `message` is "<ExceptionType>: <message>"."""
        self.status, self.error = ERROR, message
        return self

    def final_loss_rose(self) -> bool:
        """True when the final training loss is above the loss before training (e.g. dead ReLUs)."""
        return self.train_loss > self.initial_train_loss


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(c, c) int64 counts: row = true class, column = predicted class."""
    flat = y_true.astype(np.intp) * num_classes + y_pred.astype(np.intp)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` and rename it onto `path` only when the block succeeds,
    so a crash or a full disk never leaves a half-written file behind."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode_for(target))  # mkstemp makes 0600; results are meant to be read by others
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise



def mode_for(target: Path) -> int:
    """The permission bits a written file gets: the existing file's, else 0666 less the umask (as open())."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
