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
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mnist_compare import __version__
from mnist_compare.output.verdict import format_setting, summary_lines, varying_settings
from mnist_compare.output.verdict import grouped as group_runs
from mnist_compare.records.machine import installed_versions
from mnist_compare.records.results import DIVERGED, ERROR, INTERRUPTED, RunResult, atomic_write
from mnist_compare.records.spec import SETTING_KEYS

METRIC_COLUMNS = ("Time(s)", "Test accuracy(%)", "Test loss", "Train accuracy(%)", "Train loss")
METRIC_FIELDS = ("train_time_s", "test_accuracy", "test_loss", "train_accuracy", "train_loss")
OUTPUT_SUFFIXES = (".md", ".csv", ".json")
CSV_FIELDS = ("name", "status", *SETTING_KEYS, "number_epochs", "seed", *METRIC_FIELDS, "diverged_epoch",
              "first_epoch_s", "steady_epoch_s", "target_epoch", "time_to_target_s", "error")


def display_value(result: RunResult, field: str) -> float:
    """A metric as the table shows it: accuracies in percent."""
    value = getattr(result, field)
    return 100 * value if field.endswith("accuracy") else value


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
        if run.status == ERROR:
            return f"error: {run.error}"
    return None


def metric_cells(runs: list[RunResult], time_decimals: int, loss_decimals: int) -> list[str]:
    status = status_text(runs)
    if status is not None:
        return [status] + [""] * (len(METRIC_FIELDS) - 1)
    decimals = {"train_time_s": time_decimals, "test_loss": loss_decimals, "train_loss": loss_decimals}
    return [format_cell([display_value(r, f) for r in runs], decimals.get(f, 2)) for f in METRIC_FIELDS]


def target_cell(runs: list[RunResult], time_decimals: int) -> str:
    """Time to the target accuracy: `3.21 (epoch 4)`, `mean ± std` of repeats, `2/3 reached`, `not reached`."""
    if status_text(runs) is not None:
        return ""
    reached = [r for r in runs if r.target_epoch is not None]
    if not reached:
        return "not reached"
    if len(reached) < len(runs):
        return f"{len(reached)}/{len(runs)} reached"
    cell = format_cell([r.time_to_target_s for r in reached], time_decimals)
    return f"{cell} (epoch {reached[0].target_epoch})" if len(runs) == 1 else cell


def table_rows(results: list[RunResult], time_decimals: int = 2, loss_decimals: int = 4) -> tuple[list, list]:
    """(headers, rows) of the comparison table: setting columns that vary, net, the five metrics, and the time
    to the target accuracy when one was asked for."""
    settings = varying_settings(results)
    target = results[0].spec.target_accuracy
    headers = [*settings, "Net", *METRIC_COLUMNS] + ([f"Time to {100 * target:g}%(s)"] if target is not None else [])
    rows = []
    for (setting, name), runs in group_runs(results).items():
        chosen = [format_setting(value) for key, value in zip(SETTING_KEYS, setting, strict=True) if key in settings]
        stopped = sum(r.status == INTERRUPTED for r in results if (r.spec.setting(), r.name) == (setting, name))
        if stopped and runs[0].status != INTERRUPTED:
            name = f"{name} ({len(runs)} runs; {stopped} interrupted)"
        rows.append([*chosen, name, *metric_cells(runs, time_decimals, loss_decimals)]
                    + [target_cell(runs, time_decimals)] * (target is not None))
    return headers, rows


def render_table(results: list[RunResult], table_format: str = "github") -> str:
    headers, rows = table_rows(results)
    settings = len(varying_settings(results)) + 1
    align = ("left",) * settings + ("right",) * (len(headers) - settings)
    return tabulate(rows, headers=headers, tablefmt=table_format, disable_numparse=True, colalign=align)


def render_confusion(result: RunResult, table_format: str = "github") -> str:
    """The test-set confusion matrix (rows: true class, columns: predicted) with per-class accuracy."""
    matrix = result.confusion or []
    rows = [[label, *counts, f"{100 * counts[label] / max(sum(counts), 1):.2f}"] for label, counts in enumerate(matrix)]
    headers = ["true \\ predicted", *map(str, range(len(matrix))), "Accuracy(%)"]
    return tabulate(rows, headers=headers, tablefmt=table_format)


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the numbers, read without importing them."""
    packages = ("numpy", "scipy", "tensorflow", "keras", "jax", "jaxlib", "torch", "click", "tabulate")
    return {"python": platform.python_version(), **installed_versions(packages)}


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
    return {"tool": "mnist-compare", "tool_version": __version__,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
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
    """The table, the verdict lines, the command and the date; with no run finished (a stop signal while the
    data loaded), a line that says so instead of the table."""
    table = render_table(results, "github") if results else "No run started: the command was stopped first."
    lines = [table, "", *(f"- {line}" for line in summary_lines(results)), "",
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


def render_checks(checks: list, table_format: str = "github") -> str:
    """The --check table: one row per check with its status, measured figure, tolerance and diagnosis."""
    rows = [[c.name, c.status, c.measured, c.tolerance, c.diagnosis] for c in checks]
    return tabulate(rows, headers=["Check", "Status", "Measured", "Tolerance", "Diagnosis"], tablefmt=table_format,
                    disable_numparse=True)


def write_checks(path: str | Path, checks: list, meta: dict[str, Any]) -> None:
    """--check results as .json ({"checks": [...]} with the run's metadata), .md (the table) or .csv."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        text = json.dumps(finite_or_null({**meta, "checks": [c.to_dict() for c in checks]}), indent=2,
                          allow_nan=False) + "\n"
    elif suffix == ".md":
        text = f"{render_checks(checks)}\n\nCommand: `{meta['command_line']}`  \nDate: {meta['date']}\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["name", "status", "measured", "tolerance", "diagnosis"],
                                extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(c.to_dict() for c in checks)
        text = buffer.getvalue()
    with atomic_write(path, "w") as f:
        f.write(text)
