"""A saved results file read back (a baseline, either side of `compare`), validated whole before anything
uses it: a file that holds anything a results file cannot hold is refused with one line naming the file and
the first bad value, never half-used after the training it was meant to judge.

    the file:    a regular file of at most RESULTS_LIMIT bytes, UTF-8 JSON nested at most 64 levels
                 (system/reading.py)
    the record:  an object with a list of runs and an integer format_version this tool reads; `machine` an
                 object (with a list of BLAS objects), `cpu` a string, `cpu_count` an integer, when present
    each run:    name a string, hyperparameters an object, status a string, seed an integer; a finished run
                 ("ok") has test_accuracy a fraction in [0, 1] (not percent) and train_time_s > 0, finite
    the runs:    one finished run per net, setting and seed (a copy would count one measurement twice)

Not for: judging one file against another (output/baseline.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_compare.records.identity import FORMAT_VERSION
from mnist_compare.system.reading import MIB, FileRefused, display_path, read_json

RESULTS_LIMIT = 256 * MIB  # a sweep of 1,000 runs with 100 epochs of history is ~10 MiB
REQUIRED_RUN_FIELDS = ("name", "hyperparameters", "status", "test_accuracy", "train_time_s")
EXIT_USAGE, EXIT_DATA = 2, 4


class ResultsFileError(Exception):
    """A file that cannot be compared, with the exit code it earns: 2 (usage) or 4 (data)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class SavedRuns:
    """The finished runs of one results file (or of the run just made), grouped by (net, setting)."""

    label: str
    meta: dict[str, Any]
    groups: dict[tuple, list[dict[str, Any]]]

    @property
    def version(self) -> int:
        return int(self.meta.get("format_version") or 0)


def read_results(path: str | Path) -> SavedRuns:
    """A results .json file as SavedRuns; ResultsFileError (exit 4) when it is truncated, not JSON, not a
    results file or holds a value no results file holds, (exit 2) when the path is not a readable file, it
    is a --check file or a newer format than this tool reads."""
    try:
        data = read_json(path, "the results file", RESULTS_LIMIT)
    except FileRefused as err:
        raise ResultsFileError(str(err), EXIT_USAGE if err.usage else EXIT_DATA) from None
    return saved_runs(display_path(path), data)


def saved_runs(label: str, data: Any) -> SavedRuns:
    """Results data (a results file's JSON, or the run just made) as SavedRuns, checked whole (module
    docstring); ResultsFileError naming `label` and the first value that is wrong."""
    if isinstance(data, dict) and "checks" in data and "runs" not in data:
        raise ResultsFileError(f"{label} holds --check results, not training runs: compare two training runs",
                               EXIT_USAGE)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ResultsFileError(f"{label} is not an mnist-compare results file (no list of runs)", EXIT_DATA)
    version = data.get("format_version", 0)
    if not is_integer(version) or version < 0:
        raise ResultsFileError(f"{label} has format_version {short(version)}, not a version number", EXIT_DATA)
    if version > FORMAT_VERSION:
        raise ResultsFileError(f"{label} has format_version {short(version)}; this mnist-compare reads up to "
                               f"{FORMAT_VERSION}: upgrade it to compare", EXIT_USAGE)
    problem = meta_problem(data)
    if problem:
        raise ResultsFileError(f"{label} is not a results file this tool wrote: {problem}", EXIT_DATA)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    seen: dict[tuple, int] = {}
    for index, run in enumerate(data["runs"], start=1):
        problem = run_problem(run)
        if problem:
            raise ResultsFileError(f"{label}: run {index} {problem}", EXIT_DATA)
        if run["status"] != "ok":
            continue
        key = group_key(run)
        if (key, run["seed"]) in seen:
            raise ResultsFileError(f"{label}: run {index} repeats run {seen[key, run['seed']]} ({run['name']}, "
                                   f"the same setting and seed {run['seed']}): a results file holds one run per "
                                   "net, setting and seed, and a copy would count one measurement twice", EXIT_DATA)
        seen[key, run["seed"]] = index
        groups.setdefault(key, []).append(run)
    return SavedRuns(label, data, groups)


def meta_problem(data: dict[str, Any]) -> str:
    """What is wrong with the record's machine fields ("" when nothing is)."""
    machine = data.get("machine")
    if machine is not None and not isinstance(machine, dict):
        return f"its machine is {short(machine)}, not an object"
    blas = (machine or {}).get("blas")
    if blas is not None and not (isinstance(blas, list) and all(isinstance(b, dict) for b in blas)):
        return f"its machine's blas is {short(blas)}, not a list of objects"
    if data.get("cpu") is not None and not isinstance(data["cpu"], str):
        return f"its cpu is {short(data['cpu'])}, not a string"
    if data.get("cpu_count") is not None and not is_integer(data["cpu_count"]):
        return f"its cpu_count is {short(data['cpu_count'])}, not an integer"
    return ""


def run_problem(run: Any) -> str:
    """What is wrong with one run's record ("" when nothing is): the words after "run N"."""
    if not isinstance(run, dict):
        return f"is {short(run)}, not an object"
    missing = [key for key in REQUIRED_RUN_FIELDS if key not in run]
    if missing:
        return f"lacks {', '.join(missing)}"
    types = (("name", str, "a string"), ("hyperparameters", dict, "an object"), ("status", str, "a string"))
    for key, kind, words in types:
        if not isinstance(run[key], kind):
            return f"has {key} {short(run[key])}, not {words}"
    if run.get("seed") is not None and not is_integer(run["seed"]):
        return f"has seed {short(run['seed'])}, not an integer"
    if run["status"] != "ok":
        return ""
    if run.get("seed") is None:
        return "has no seed"
    return measured_problem(run["test_accuracy"], run["train_time_s"])


def measured_problem(accuracy: Any, seconds: Any) -> str:
    """A finished run's accuracy (a fraction) and training time (seconds > 0), checked."""
    if not is_number(accuracy):
        return f"has test_accuracy {short(accuracy)}, not a finite number"
    if not 0 <= accuracy <= 1:
        hint = " (saved in percent? this tool saves accuracies as fractions)" if 1 < accuracy <= 100 else ""
        return f"has test_accuracy {short(accuracy)}, not a fraction in [0, 1]{hint}"
    if not is_number(seconds) or seconds <= 0:
        return f"has train_time_s {short(seconds)}, not a finite number of seconds > 0"
    return ""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def short(value: Any, most: int = 40) -> str:
    """A value as JSON, cut to `most` characters: a message quotes it, never dumps it."""
    text = json.dumps(value, default=str)
    return text if len(text) <= most else text[:most - 3] + "..."


def group_key(run: dict[str, Any]) -> tuple:
    """(net name, the hyperparameters as sorted pairs): runs of one key differ only in seed."""
    return run["name"], tuple(sorted((key, json.dumps(value)) for key, value in run["hyperparameters"].items()))


def setting_of(pairs: tuple) -> dict[str, Any]:
    """A group key's hyperparameter pairs (group_key) back as the setting they came from."""
    return {key: json.loads(value) for key, value in pairs}


def machine_of(meta: dict[str, Any]) -> tuple | None:
    """What makes two timings comparable: CPU model, core count and BLAS kernels; None when not recorded."""
    blas = (meta.get("machine") or {}).get("blas")
    if not meta.get("cpu") or blas is None:
        return None
    return meta["cpu"], meta.get("cpu_count"), tuple(sorted(str(b.get("architecture")) for b in blas))
