"""`--profile`: where one epoch of a net spends its time, by cProfile, so that a student sees "most of your
step is np.exp on float64" or "you copy the training set every batch".

The profiled epoch is an extra one, on a fresh net built from the run's spec after the timed runs: the
profiler's overhead (a few microseconds per Python call) never reaches Time(s). Functions are ranked by
cumulative time (the time inside them and everything they call), as `python -m cProfile -s cumulative`.
Not for: the timed runs (runner.py).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import mnist_compare
from mnist_compare.data.idx import Dataset
from mnist_compare.nets.contract import build_net
from mnist_compare.records.spec import RunSpec

TOP_FUNCTIONS = 12
PACKAGE_PARENT = Path(mnist_compare.__file__).resolve().parent.parent
PROFILER_FRAMES = ("<method 'disable' of '_lsprof.Profiler' objects>",)


def short_path(filename: str) -> str:
    """A function's file as a reader finds it: from site-packages on, or relative to the working directory."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    for root in (PACKAGE_PARENT, Path.cwd()):
        try:
            return str(Path(filename).resolve().relative_to(root))
        except ValueError:
            continue
    return filename


def function_name(key: tuple[str, int, str]) -> str:
    """`numpy/_core/fromnumeric.py:2255(sum)`, or `<built-in method numpy.exp>` as cProfile names built-ins."""
    filename, line, name = key
    if filename == "~":
        return name
    return f"{short_path(filename)}:{line}({name})"


def top_functions(profiler: cProfile.Profile, epoch_s: float, top: int = TOP_FUNCTIONS) -> list[dict[str, Any]]:
    """The `top` functions by cumulative time: calls, own time, cumulative time and its share of the epoch."""
    stats = pstats.Stats(profiler)
    rows = []
    for key, (_, calls, own, cumulative, _) in stats.stats.items():
        name = function_name(key)
        if name not in PROFILER_FRAMES:
            rows.append({"function": name, "calls": calls, "own_s": own, "cumulative_s": cumulative,
                         "share": cumulative / epoch_s if epoch_s > 0 else None})
    return sorted(rows, key=lambda row: row["cumulative_s"], reverse=True)[:top]


def profile_one_epoch(spec: RunSpec, data: Dataset) -> dict[str, Any]:
    """One epoch of spec's net (fresh, same seed and settings) under cProfile: {"net", "hyperparameters",
    "seed", "epoch_s", "functions": top_functions}."""
    X, y = data[0], data[1]
    one_epoch = replace(spec, number_epochs=1, eval_every_epoch=False, target_accuracy=None)
    net = build_net(one_epoch, X.shape[1])
    rng = np.random.default_rng(spec.seed) if spec.paired else None
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        net.fit(X, y, spec.batch_size, 1, rng, None)
    finally:
        profiler.disable()
    epoch_s = time.perf_counter() - started
    return {"net": spec.net_name, "hyperparameters": spec.hyperparameters(), "seed": spec.seed, "epoch_s": epoch_s,
            "python": sys.version.split()[0], "functions": top_functions(profiler, epoch_s)}
