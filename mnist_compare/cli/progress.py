"""Progress on stderr while runs train: tqdm bars, and with --verbose a summary line per epoch.

Not for: training (runs/runner.py) or results (report.py).
"""

from __future__ import annotations

import math
import os
import sys

from tqdm import tqdm

from mnist_compare.records.results import EpochCallback
from mnist_compare.records.spec import RunSpec


class Progress:
    """One bar over all runs (when there are several), one over each run's epochs; with `verbose`, a
    summary line per epoch. Bars hide when stderr is not a terminal or when quiet."""

    def __init__(self, total_runs: int, quiet: bool = False, verbose: bool = False, unit: str = "run"):
        dumb = os.environ.get("TERM") == "dumb"  # a terminal without cursor movement: no bars, plain lines
        self.disable = True if quiet or dumb else None  # None: tqdm hides itself when stderr is not a TTY
        self.plain_lines = not quiet and (dumb or not sys.stderr.isatty())
        self.verbose = verbose and not quiet
        self.overall = tqdm(total=total_runs, desc=f"{unit}s", unit=unit, file=sys.stderr,
                            disable=True if quiet or dumb or total_runs < 2 else None, position=0)
        self.bar: tqdm | None = None
        self.spec: RunSpec | None = None

    def note(self, message: str) -> None:
        """A line on stderr with --verbose (none for an empty message)."""
        if self.verbose and message:
            print(message, file=sys.stderr, flush=True)

    def start(self, spec: RunSpec) -> EpochCallback:
        """Open the epoch bar of spec's run; returns the callback that advances it."""
        self.spec = spec
        self.bar = tqdm(total=spec.number_epochs, desc=spec.describe(), unit="epoch", file=sys.stderr,
                        disable=self.disable, leave=False, position=1 if self.overall.total > 1 else 0)
        return self.on_epoch_end

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        accuracy = logs.get("accuracy", math.nan)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{100 * accuracy:.2f}%", refresh=False)
        self.bar.update(1)
        if self.verbose:
            tqdm.write(f"{self.spec.describe()} epoch {epoch + 1}/{self.spec.number_epochs}: "
                       f"loss {logs['loss']:.4f}, accuracy {100 * accuracy:.2f}%, "
                       f"{logs['epoch_time_s']:.2f}s", file=sys.stderr)

    def finish(self, spec: RunSpec) -> None:
        """Close spec's bar; name the finished run on stderr when no bar shows it (verbose, or not a TTY)."""
        self.bar.close()
        self.overall.update(1)
        if self.verbose or self.plain_lines:
            print(f"finished {spec.describe()}", file=sys.stderr, flush=True)

    def job_done(self, description: str) -> None:
        """One more job of a cluster run finished (they finish in any order)."""
        self.overall.update(1)
        if self.verbose or self.plain_lines:
            print(f"finished {description}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.overall.close()
