"""Render RunResults as text: the comparison table (with its Relative column), confusion matrices and the
--check table. Results files are files.py's.

Rows group the runs of one net at one setting (several when repeated, shown as mean ± std).
Setting columns appear only for the settings that vary, so a single net's run keeps the five original
columns; with two nets or more, a Relative column gives each net's training time over the first net's of
its setting: `1.00` for the first, `1.54 ± 0.05` (hyperfine's ratio and sigma) for the others.
Not for: training or parsing the command line.
"""

from __future__ import annotations

import statistics

from tabulate import tabulate

from mnist_compare.output.verdict import (
    first_against_others,
    format_setting,
    summary_lines,
    time_ratio,
    varying_settings,
)
from mnist_compare.output.verdict import grouped as group_runs
from mnist_compare.records.results import DIVERGED, ERROR, INTERRUPTED, RunResult
from mnist_compare.records.spec import SETTING_KEYS

METRIC_COLUMNS = ("Time(s)", "Test accuracy(%)", "Test loss", "Train accuracy(%)", "Train loss")
METRIC_FIELDS = ("train_time_s", "test_accuracy", "test_loss", "train_accuracy", "train_loss")
__all__ = [
    "relative_times",
    "render_checks",
    "render_confusion",
    "render_table",
    "summary_lines",
    "varying_settings",
]


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


def relative_times(results: list[RunResult]) -> dict[tuple, tuple[float, float | None]]:
    """(setting, net name) -> (its time / the first net's time of its setting, sigma) for every net of a
    setting with two nets or more whose runs all finished; the first net's own entry is (1.0, None)."""
    groups = group_runs(results)
    relative: dict[tuple, tuple[float, float | None]] = {}
    for setting, first, other in first_against_others(groups):
        mine, theirs = groups[(setting, first)], groups[(setting, other)]
        if all(r.finished for r in mine):
            relative[(setting, first)] = (1.0, None)
        if all(r.finished for r in mine + theirs):
            relative[(setting, other)] = time_ratio(mine, theirs)[:2]
    return relative


def relative_cell(entry: tuple[float, float | None] | None) -> str:
    """`1.00`, `1.54`, `1.54 ± 0.05`, or "" for a net whose time cannot be related."""
    if entry is None:
        return ""
    ratio, sigma = entry
    return f"{ratio:.2f}" + (f" ± {sigma:.2f}" if sigma is not None else "")


def table_rows(results: list[RunResult], time_decimals: int = 2, loss_decimals: int = 4) -> tuple[list, list]:
    """(headers, rows) of the comparison table: setting columns that vary, net, the five metrics, Relative
    with two nets or more, and the time to the target accuracy when one was asked for."""
    settings = varying_settings(results)
    target = results[0].spec.target_accuracy
    groups = group_runs(results)
    several = len(groups) > len({setting for setting, _ in groups})
    relative = relative_times(results) if several else {}
    headers = [*settings, "Net", *METRIC_COLUMNS] + ["Relative"] * several
    headers += [f"Time to {100 * target:g}%(s)"] if target is not None else []
    rows = []
    for (setting, name), runs in groups.items():
        chosen = [format_setting(value) for key, value in zip(SETTING_KEYS, setting, strict=True) if key in settings]
        stopped = sum(r.status == INTERRUPTED for r in results if (r.spec.setting(), r.name) == (setting, name))
        label = f"{name} ({len(runs)} runs; {stopped} interrupted)" if stopped and runs[0].status != INTERRUPTED \
            else name
        rows.append([*chosen, label, *metric_cells(runs, time_decimals, loss_decimals)]
                    + [relative_cell(relative.get((setting, name)))] * several
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


def render_checks(checks: list, table_format: str = "github") -> str:
    """The --check table: one row per check with its status, measured figure, tolerance and diagnosis."""
    rows = [[c.name, c.status, c.measured, c.tolerance, c.diagnosis] for c in checks]
    return tabulate(rows, headers=["Check", "Status", "Measured", "Tolerance", "Diagnosis"], tablefmt=table_format,
                    disable_numparse=True)


def render_profile(profile: dict, table_format: str = "github") -> str:
    """`--profile`'s table for one net: its top functions by cumulative time in one epoch, or why it has none."""
    title = f"Profile of one epoch of {profile['net']}"
    if not profile.get("functions"):
        return f"{title}: {profile.get('note', 'no function recorded')}"
    rows = [[f["function"], f["calls"], f"{f['own_s']:.3f}", f"{f['cumulative_s']:.3f}",
             f"{100 * f['share']:.0f}%" if f["share"] is not None else ""] for f in profile["functions"]]
    table = tabulate(rows, headers=["Function", "Calls", "Own(s)", "Cumulative(s)", "Of the epoch"],
                     tablefmt=table_format, disable_numparse=True)
    return (f"{title} ({profile['epoch_s']:.2f} s under cProfile, an extra epoch not counted in Time(s); "
            f"top functions by cumulative time):\n{table}")
