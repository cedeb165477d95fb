"""Render RunResults: the comparison table, the one-line verdict, and results files (.md, .csv, .json).

Rows group the runs of one net at one setting (several when repeated, shown as mean ± std).
Setting columns appear only for the settings that vary, so a plain run keeps the five original columns.
Not for: training or parsing the command line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tabulate import tabulate

from results import DIVERGED, INTERRUPTED, RunResult, atomic_write
from spec import SETTING_KEYS

METRIC_COLUMNS = ("Time(s)", "Test accuracy(%)", "Test loss", "Train accuracy(%)", "Train loss")
METRIC_FIELDS = ("train_time_s", "test_accuracy", "test_loss", "train_accuracy", "train_loss")
OUTPUT_SUFFIXES = (".md", ".csv", ".json")
CSV_FIELDS = ("name", "status", *SETTING_KEYS, "number_epochs", "seed", *METRIC_FIELDS, "diverged_epoch")


def setting_of(result: RunResult) -> tuple:
    return result.spec.setting()


def varying_settings(results: list[RunResult]) -> list[str]:
    """The setting keys whose values differ between runs (the setting columns of the table)."""
    return [key for i, key in enumerate(SETTING_KEYS) if len({setting_of(r)[i] for r in results}) > 1]


def group_runs(results: list[RunResult]) -> dict[tuple, list[RunResult]]:
    """Runs keyed by (setting, net name), in the order they were first trained."""
    groups: dict[tuple, list[RunResult]] = {}
    for result in results:
        groups.setdefault((setting_of(result), result.name), []).append(result)
    return groups


def display_value(result: RunResult, field: str) -> float:
    """A metric as the table shows it: accuracies in percent."""
    value = getattr(result, field)
    return 100 * value if field.endswith("accuracy") else value


def format_setting(value: object) -> str:
    """A setting as the table shows it: floats in the shortest form (0.1, 1e+10)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_cell(values: list[float], decimals: int) -> str:
    """One value, or `mean ± std` (sample std) of several."""
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{statistics.fmean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def status_text(runs: list[RunResult]) -> str | None:
    """`diverged at epoch k` / `interrupted` when a run of the group did not finish, else None."""
    for run in runs:
        if run.status == DIVERGED:
            return f"diverged at epoch {run.diverged_epoch}"
        if run.status == INTERRUPTED:
            return "interrupted"
    return None


def metric_cells(runs: list[RunResult], time_decimals: int, loss_decimals: int) -> list[str]:
    status = status_text(runs)
    if status is not None:
        return [status] + [""] * (len(METRIC_FIELDS) - 1)
    decimals = {"train_time_s": time_decimals, "test_loss": loss_decimals, "train_loss": loss_decimals}
    return [format_cell([display_value(r, f) for r in runs], decimals.get(f, 2)) for f in METRIC_FIELDS]


def table_rows(results: list[RunResult], time_decimals: int = 2, loss_decimals: int = 4) -> tuple[list, list]:
    """(headers, rows) of the comparison table: setting columns that vary, net, the five metrics."""
    settings = varying_settings(results)
    headers = [*settings, "Net", *METRIC_COLUMNS]
    rows = []
    for (setting, name), runs in group_runs(results).items():
        chosen = [format_setting(value) for key, value in zip(SETTING_KEYS, setting, strict=True) if key in settings]
        rows.append([*chosen, name, *metric_cells(runs, time_decimals, loss_decimals)])
    return headers, rows


def render_table(results: list[RunResult], table_format: str = "github") -> str:
    headers, rows = table_rows(results)
    align = ("left",) * (len(headers) - len(METRIC_COLUMNS)) + ("right",) * len(METRIC_COLUMNS)
    return tabulate(rows, headers=headers, tablefmt=table_format, disable_numparse=True, colalign=align)


def welch_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's t-test that the means of a and b are equal (NaN when undefined)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or (statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0):
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def comparison_line(mine: list[RunResult], theirs: list[RunResult]) -> str:
    """`my_net trained 3.4x faster than keras_net; test accuracy difference +0.05 pp` (means of runs)."""
    my_time = statistics.fmean(r.train_time_s for r in mine)
    their_time = statistics.fmean(r.train_time_s for r in theirs)
    speed = f"{their_time / my_time:.1f}x faster" if my_time <= their_time else f"{my_time / their_time:.1f}x slower"
    my_acc, their_acc = ([100 * r.test_accuracy for r in runs] for runs in (mine, theirs))
    line = (f"{mine[0].name} trained {speed} than {theirs[0].name}; test accuracy difference "
            f"{statistics.fmean(my_acc) - statistics.fmean(their_acc):+.2f} pp")
    p = welch_p_value(my_acc, their_acc)
    if not math.isnan(p):
        verdict = "within noise" if p >= 0.05 else "a real difference at the 5% level"
        line += f" (Welch's t-test p = {p:.3f}: {verdict})"
    return line


def summary_lines(results: list[RunResult]) -> list[str]:
    """Per setting, one comparison line of the first net trained against each other net, where both
    finished every run."""
    groups = group_runs(results)
    settings = varying_settings(results)
    lines = []
    for setting in dict.fromkeys(s for s, _ in groups):
        names = [name for s, name in groups if s == setting]
        mine = groups[(setting, names[0])]
        named = zip(SETTING_KEYS, setting, strict=True)
        prefix = ", ".join(f"{k}={format_setting(v)}" for k, v in named if k in settings)
        for name in names[1:]:
            theirs = groups[(setting, name)]
            if all(r.finished for r in mine + theirs):
                lines.append(f"{prefix}: " * bool(prefix) + comparison_line(mine, theirs))
    return lines


def render_confusion(result: RunResult, table_format: str = "github") -> str:
    """The test-set confusion matrix (rows: true class, columns: predicted) with per-class accuracy."""
    matrix = result.confusion or []
    rows = [[label, *counts, f"{100 * counts[label] / max(sum(counts), 1):.2f}"] for label, counts in enumerate(matrix)]
    headers = ["true \\ predicted", *map(str, range(len(matrix))), "Accuracy(%)"]
    return tabulate(rows, headers=headers, tablefmt=table_format)


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the numbers, read without importing them."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("numpy", "tensorflow", "keras", "scipy", "click", "tabulate"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line() -> str:
    """The command as a shell would take it back (shlex quoting); bytes that are not UTF-8 (a file name
    in another encoding) become U+FFFD, so the line can be written into any results file."""
    args = [arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for arg in sys.argv]
    return shlex.join(args)


def run_metadata(options: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to reproduce a results file: options, command line, libraries, machine, date."""
    return {"tool": "mnist-compare", "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command_line": command_line(), "options": options, "libraries": library_versions(),
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform()}


def render_csv(results: Iterable[RunResult]) -> str:
    """One row per run, floats at full precision (repr)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow({**result.hyperparameters, **result.to_dict()})
    return buffer.getvalue()


def render_json(results: list[RunResult], meta: dict[str, Any]) -> str:
    """Strict JSON: a value that is not a finite number (a diverged or interrupted run's) is null."""
    data = {**meta, "runs": [r.to_dict() for r in results], "summary": summary_lines(results)}
    return json.dumps(finite_or_null(data), indent=2, allow_nan=False) + "\n"


def finite_or_null(value: Any) -> Any:
    """value with every NaN or infinite float, at any depth, replaced by None; paths become strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def render_markdown(results: list[RunResult], meta: dict[str, Any]) -> str:
    lines = [render_table(results, "github"), "", *(f"- {line}" for line in summary_lines(results)), "",
             f"Command: `{meta['command_line']}`  ", f"Date: {meta['date']}; CPU: {meta['cpu']}"]
    return "\n".join(lines) + "\n"


def write_results(path: str | Path, results: list[RunResult], meta: dict[str, Any]) -> None:
    """Write results to `path` in the format its suffix names (.md, .csv, .json), atomically."""
    suffix = Path(path).suffix.lower()
    renderers = {".md": lambda: render_markdown(results, meta), ".csv": lambda: render_csv(results),
                 ".json": lambda: render_json(results, meta)}
    text = renderers[suffix]()
    with atomic_write(path, "w") as f:
        f.write(text)
