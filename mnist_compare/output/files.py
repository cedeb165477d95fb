"""Results files: .md (the table and verdicts), .csv (one row per run), .json (every measured field, the
metadata that reproduces the run, and its identity: format_version, tool_version, git_commit; its schema is
mnist_compare/schema/results.schema.json), each written atomically. With --baseline, the comparison goes into
each: a section of .md and .json, and a CSV of its own beside the runs' (PATH-baseline.csv).

Not for: the text of the table (report.py) or the statistics (verdict.py, baseline.py).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mnist_compare import __version__
from mnist_compare.nets.keras_backends import BACKENDS
from mnist_compare.output import baseline, history
from mnist_compare.output.report import METRIC_FIELDS, relative_times, render_checks, render_table, summary_lines
from mnist_compare.records.identity import identity
from mnist_compare.records.results import RunResult, atomic_write
from mnist_compare.records.spec import SETTING_KEYS
from mnist_compare.system.machine import installed_versions

CSV_FIELDS = ("name", "status", *SETTING_KEYS, "number_epochs", "seed", *METRIC_FIELDS, "relative_time",
              "relative_time_sigma", "diverged_epoch", "first_epoch_s", "steady_epoch_s", "target_epoch",
              "time_to_target_s", "error")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the numbers, read without importing them."""
    backends = [package for backend in BACKENDS.values() for package in backend.packages]
    packages = ("numpy", "scipy", *backends[:1], "keras", *backends[1:], "click", "tabulate")
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
    """The command as the user typed it and a shell would take it back (shlex quoting), led by the program's
    name, not its path: `mnist-compare ...`, `python -m mnist_compare ...`, `python main.py ...`. Bytes that
    are not UTF-8 (a file name in another encoding) become U+FFFD, so the line can be written into any file."""
    args = [arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for arg in sys.argv[1:]]
    return shlex.join([*program_name(sys.argv[0]), *args])


def program_name(argv0: str) -> list[str]:
    """How the user started the tool, from sys.argv[0]: the console script by its name, the package run with
    -m, or a script by its path relative to the working directory (its name alone when it lies elsewhere)."""
    path = Path(argv0)
    if path.name == "__main__.py" and path.parent.name == "mnist_compare":
        return ["python", "-m", "mnist_compare"]
    if path.suffix != ".py":
        return [path.name or "mnist-compare"]
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            path = Path(path.name)
    return ["python", str(path)]


def run_metadata(options: dict[str, Any], net: type | None = None,
                 given: Iterable[str] | None = None) -> dict[str, Any]:
    """What a reader needs to reproduce a results file: its identity (records/identity.py; `net` is the
    --net_type class, whose file's SHA-256 it records), options (and the names of those `given` on the command
    line or in the environment, when known), command line, libraries, machine, date."""
    return {"tool": "mnist-compare", **(identity(net) if net is not None else {"tool_version": __version__}),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command_line": command_line(), "options": options,
            **({"options_given": sorted(given)} if given is not None else {}), "libraries": library_versions(),
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform()}


def relative_of_each(results: list[RunResult]) -> list[tuple[RunResult, tuple[float, float | None] | None]]:
    """Each run with its net's Relative (ratio, sigma) at its setting, None for a run the table does not relate."""
    relative = relative_times(results)
    return [(r, relative.get((r.spec.setting(), r.name))) for r in results]


def relative_fields(relative: tuple[float, float | None] | None) -> dict[str, float | None]:
    ratio, sigma = relative if relative is not None else (None, None)
    return {"relative_time": ratio, "relative_time_sigma": sigma}


def render_csv(results: list[RunResult]) -> str:
    """One row per run, floats at full precision (repr); relative_time is its net's Relative at its setting."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result, relative in relative_of_each(results):
        writer.writerow({**result.hyperparameters, **result.to_dict(), **relative_fields(relative)})
    return buffer.getvalue()


def render_json(results: list[RunResult], meta: dict[str, Any], comparison: baseline.Comparison | None = None) -> str:
    """Strict JSON: a value that is not a finite number (a diverged or interrupted run's) is null. Each
    run's `relative_time` and `relative_time_sigma` are its net's Relative column (null when not related)."""
    runs = [{**r.to_dict(), **relative_fields(relative)} for r, relative in relative_of_each(results)]
    data = {**meta, "runs": runs, "summary": summary_lines(results)}
    if comparison is not None:
        data["baseline_comparison"] = baseline.comparison_record(comparison)
    return dumps(data)


def dumps(data: dict[str, Any]) -> str:
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


def render_markdown(results: list[RunResult], meta: dict[str, Any],
                    comparison: baseline.Comparison | None = None) -> str:
    """The table, the verdict lines, the baseline comparison, the command and the date; with no run finished
    (a stop signal while the data loaded), a line that says so instead of the table."""
    table = render_table(results, "github") if results else "No run started: the command was stopped first."
    lines = [table, "", *(f"- {line}" for line in summary_lines(results)), ""]
    if comparison is not None:
        lines += ["Against the baseline:", "", render_comparison(comparison, "github"), ""]
    lines += [f"Command: `{meta['command_line']}`  ", f"Date: {meta['date']}; CPU: {meta['cpu']}"]
    return "\n".join(lines) + "\n"


def render_comparison(comparison: baseline.Comparison, table_format: str = "github") -> str:
    """The comparison table, a blank line, and its lines (method, unmatched rows, machine, outcome)."""
    return table_and_lines(*baseline.comparison_rows(comparison), baseline.comparison_lines(comparison), table_format)


def table_and_lines(headers: list[str], rows: list[list[str]], lines: list[str], table_format: str) -> str:
    """A table, a blank line, and its lines as a list."""
    table = tabulate(rows, headers=headers, tablefmt=table_format, disable_numparse=True)
    return table + "\n\n" + "\n".join(f"- {line}" for line in lines)


def csv_text(rows: list[dict[str, Any]], fieldnames: tuple[str, ...]) -> str:
    """Rows as CSV, hyperparameters as sorted JSON, floats at full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "hyperparameters": json.dumps(row["hyperparameters"], sort_keys=True)})
    return buffer.getvalue()


def render_comparison_csv(comparison: baseline.Comparison) -> str:
    """One row per matched (net, setting), floats at full precision."""
    return csv_text(baseline.comparison_record(comparison)["rows"], baseline.CSV_FIELDS)


def comparison_csv_path(path: str | Path) -> Path:
    """Where a training run's CSV puts its baseline comparison: PATH-baseline.csv beside PATH."""
    path = Path(path)
    return path.with_name(f"{path.stem}-baseline{path.suffix}")


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_results(path: str | Path, results: list[RunResult], meta: dict[str, Any],
                  comparison: baseline.Comparison | None = None) -> None:
    """Write results to `path` in the format its suffix names (WRITERS), atomically; with a comparison, a
    CSV also gets the comparison's CSV beside it (PATH-baseline.csv)."""
    suffix = Path(path).suffix.lower()
    write_text(path, WRITERS[suffix].results(results, meta, comparison))
    if suffix == ".csv" and comparison is not None:
        write_text(comparison_csv_path(path), render_comparison_csv(comparison))


def write_comparison(path: str | Path, comparison: baseline.Comparison, meta: dict[str, Any]) -> None:
    """`mnist-compare compare`'s --output: the comparison alone, in the format its suffix names."""
    write_text(path, WRITERS[Path(path).suffix.lower()].comparison(comparison, meta))


def write_history(path: str | Path, judged: history.History, meta: dict[str, Any]) -> None:
    """`mnist-compare history`'s --output: the steps, in the format its suffix names."""
    write_text(path, WRITERS[Path(path).suffix.lower()].history(judged, meta))


def render_history(judged: history.History, table_format: str = "github") -> str:
    """The history table, a blank line, and its lines (method, the newest step's outcome)."""
    return table_and_lines(*history.history_rows(judged), history.history_lines(judged), table_format)


def render_history_csv(judged: history.History) -> str:
    """One row per step: the entries it joins, then the comparison's fields."""
    return csv_text(history.history_record(judged)["steps"], ("from", "to", *baseline.CSV_FIELDS))


def write_checks(path: str | Path, checks: list, meta: dict[str, Any]) -> None:
    """--check results in the format the suffix names: the table with the run's metadata."""
    write_text(path, WRITERS[Path(path).suffix.lower()].checks(checks, meta))


def checks_json(checks: list, meta: dict[str, Any]) -> str:
    return dumps({**meta, "checks": [c.to_dict() for c in checks]})


def checks_markdown(checks: list, meta: dict[str, Any]) -> str:
    return f"{render_checks(checks)}\n\nCommand: `{meta['command_line']}`  \nDate: {meta['date']}\n"


def checks_csv(checks: list, meta: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["name", "status", "measured", "tolerance", "diagnosis"],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(c.to_dict() for c in checks)
    return buffer.getvalue()


@dataclass(frozen=True)
class Writer:
    """One results-file format: the text of training results (with a --baseline comparison), of --check's
    checks, and of `compare`'s comparison alone."""

    results: Callable[[list[RunResult], dict[str, Any], baseline.Comparison | None], str]
    checks: Callable[[list, dict[str, Any]], str]
    comparison: Callable[[baseline.Comparison, dict[str, Any]], str]
    history: Callable[[history.History, dict[str, Any]], str]


# The one list of --output formats, suffix -> writer: training runs, --check and `compare` all write by it.
WRITERS = {
    ".md": Writer(render_markdown, checks_markdown, lambda comparison, meta:
                  f"{render_comparison(comparison)}\n\nCommand: `{meta['command_line']}`\n",
                  lambda judged, meta: f"{render_history(judged)}\n\nCommand: `{meta['command_line']}`\n"),
    ".csv": Writer(lambda results, meta, comparison: render_csv(results), checks_csv,
                   lambda comparison, meta: render_comparison_csv(comparison),
                   lambda judged, meta: render_history_csv(judged)),
    ".json": Writer(render_json, checks_json, lambda comparison, meta:
                    dumps({**meta, "baseline_comparison": baseline.comparison_record(comparison)}),
                    lambda judged, meta: dumps({**meta, "history": history.history_record(judged)})),
}
OUTPUT_SUFFIXES = tuple(WRITERS)
