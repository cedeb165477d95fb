"""Compare results against a saved baseline: rows matched by net and setting, each with its accuracy
difference and time ratio judged better / same / worse (stats.py), and "regression" when any is worse.

    accuracy: d = mean(new) - mean(base) in percentage points, Welch's 95% interval, margin --margin pp
    time:     r = mean(new) / mean(base) ± sigma (hyperfine's propagation); the verdict is stats.three_way on
              log times with margin ln(1 + --max_slowdown), so 10 % slower and 1/1.1 faster are symmetric

Times are judged only when both files come from the same machine (CPU model, core count, BLAS kernel).
Not for: training or reading the command line (cli/compare.py).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_compare.output import stats
from mnist_compare.output.report import format_cell
from mnist_compare.output.verdict import speed_ratio
from mnist_compare.records.identity import FORMAT_VERSION

REQUIRED_RUN_FIELDS = ("name", "hyperparameters", "status", "test_accuracy", "train_time_s")
SETTING_ORDER = ("hidden_size", "lr", "batch_size", "number_epochs", "optimizer", "init")


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
    """A results .json file as SavedRuns; ResultsFileError (exit 4) when it is truncated, not JSON or not a
    results file, (exit 2) when it is a --check file or a newer format than this tool reads."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ResultsFileError(f"cannot read {path}: {err.strerror or err}", 2) from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path} is not a results file: it is not UTF-8 text", 4) from None
    except json.JSONDecodeError as err:
        raise ResultsFileError(f"{path} is not complete JSON (truncated?): {err.msg} at line {err.lineno}",
                               4) from None
    return saved_runs(str(path), data)


def saved_runs(label: str, data: Any) -> SavedRuns:
    """Results data (a results file's JSON, or the run just made) as SavedRuns, checked field by field."""
    if isinstance(data, dict) and "checks" in data and "runs" not in data:
        raise ResultsFileError(f"{label} holds --check results, not training runs: compare two training runs", 2)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ResultsFileError(f"{label} is not an mnist-compare results file (no list of runs)", 4)
    version = data.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ResultsFileError(f"{label} has format_version {version!r}; this mnist-compare reads up to "
                               f"{FORMAT_VERSION}: upgrade it to compare", 2)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for index, run in enumerate(data["runs"]):
        missing = [key for key in REQUIRED_RUN_FIELDS if not isinstance(run, dict) or key not in run]
        if missing or not isinstance(run["hyperparameters"], dict):
            raise ResultsFileError(f"{label}: run {index + 1} lacks {', '.join(missing) or 'hyperparameters'}", 4)
        if run["status"] == "ok" and is_number(run["test_accuracy"]) and is_number(run["train_time_s"]):
            groups.setdefault(group_key(run), []).append(run)
    return SavedRuns(label, data, groups)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def group_key(run: dict[str, Any]) -> tuple:
    """(net name, the hyperparameters as sorted pairs): runs of one key differ only in seed."""
    return run["name"], tuple(sorted((key, json.dumps(value)) for key, value in run["hyperparameters"].items()))


def machine_of(meta: dict[str, Any]) -> tuple | None:
    """What makes two timings comparable: CPU model, core count and BLAS kernels; None when not recorded."""
    blas = (meta.get("machine") or {}).get("blas")
    if not meta.get("cpu") or blas is None:
        return None
    return meta["cpu"], meta.get("cpu_count"), tuple(sorted(str(b.get("architecture")) for b in blas))


@dataclass
class RowComparison:
    """One (net, setting) found in both: accuracies in percent, times in seconds."""

    name: str
    setting: dict[str, Any]
    base_accuracy: list[float]
    new_accuracy: list[float]
    base_time: list[float]
    new_time: list[float]
    accuracy: stats.Verdict = field(init=False)
    time: stats.Verdict | None = field(init=False)  # None: times not judged (different or unknown machines)

    @property
    def difference(self) -> float:
        return statistics.fmean(self.new_accuracy) - statistics.fmean(self.base_accuracy)

    @property
    def interval(self) -> tuple[float, float] | None:
        return stats.difference_interval(self.new_accuracy, self.base_accuracy)

    @property
    def ratio(self) -> tuple[float, float | None]:
        """new time / base time and its sigma (None with one run on a side)."""
        return speed_ratio(self.base_time, self.new_time)


@dataclass
class Comparison:
    base: SavedRuns
    new: SavedRuns
    margin_pp: float
    max_slowdown: float  # a fraction: 0.1 for 10 %
    rows: list[RowComparison]
    only_base: list[tuple]
    only_new: list[tuple]
    same_machine: bool
    tests: int  # the size of Holm's family

    @property
    def regression(self) -> bool:
        return any(stats.WORSE in (row.accuracy.claim, row.time and row.time.claim) for row in self.rows)


def compare(base: SavedRuns, new: SavedRuns, margin_pp: float = 0.2, max_slowdown: float = 0.1) -> Comparison:
    """Match the groups of both by (net, setting) and judge each; ResultsFileError (exit 2) when none match."""
    common = [key for key in new.groups if key in base.groups]
    if not common:
        raise ResultsFileError(f"{base.label} and {new.label} have no net and setting in common "
                               f"({describe_keys(base.groups)} against {describe_keys(new.groups)})", 2)
    same_machine = machine_of(base.meta) is not None and machine_of(base.meta) == machine_of(new.meta)
    rows = []
    for key in common:
        runs_base, runs_new = base.groups[key], new.groups[key]
        row = RowComparison(key[0], runs_base[0]["hyperparameters"],
                            [100 * r["test_accuracy"] for r in runs_base], [100 * r["test_accuracy"] for r in runs_new],
                            [r["train_time_s"] for r in runs_base], [r["train_time_s"] for r in runs_new])
        row.accuracy = stats.three_way(row.new_accuracy, row.base_accuracy, margin_pp)
        row.time = (stats.three_way([math.log(t) for t in row.new_time], [math.log(t) for t in row.base_time],
                                    math.log1p(max_slowdown), higher_is_better=False) if same_machine else None)
        rows.append(row)
    tests = stats.correct([v for row in rows for v in (row.accuracy, row.time) if v is not None])
    return Comparison(base, new, margin_pp, max_slowdown, rows, [k for k in base.groups if k not in new.groups],
                      [k for k in new.groups if k not in base.groups], same_machine, tests)


def describe_keys(groups: dict[tuple, list]) -> str:
    """`my_net at hidden_size 30, lr 0.1, ...; keras_net at ...` (the first two, then how many more)."""
    shown = [f"{name} at {format_setting(dict((k, json.loads(v)) for k, v in pairs))}" for name, pairs in groups]
    return "; ".join(shown[:2]) + (f" and {len(shown) - 2} more" if len(shown) > 2 else "") if shown else "no run"


def format_setting(setting: dict[str, Any]) -> str:
    """`hidden 30, lr 0.1, batch 128, 20 epochs, sgd, glorot_uniform` (the optimiser's own settings after)."""
    names = {"hidden_size": "hidden {}", "lr": "lr {}", "batch_size": "batch {}", "number_epochs": "{} epochs",
             "optimizer": "{}", "init": "{}"}
    parts = [names[key].format(setting[key]) for key in SETTING_ORDER if key in setting]
    return ", ".join(parts + [f"{key} {value}" for key, value in setting.items() if key not in names])


def comparison_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the comparison table; a Setting column with the settings that differ between rows."""
    settings = [row.setting for row in comparison.rows]
    vary = [key for key in dict.fromkeys(k for s in settings for k in s)
            if len({json.dumps(s.get(key)) for s in settings}) > 1]
    headers = ["Setting"] * bool(vary) + ["Net", "Runs", "Test acc. base(%)", "Test acc. new(%)",
                                          "Difference(pp) [95% CI]", "Accuracy", "Time ratio (new/base)", "Speed"]
    table = []
    for row in comparison.rows:
        interval = row.interval
        spread = f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else ""
        ratio, sigma = row.ratio
        table.append([format_setting({key: row.setting.get(key) for key in vary})] * bool(vary) + [
            row.name, f"{len(row.base_accuracy)}/{len(row.new_accuracy)}", format_cell(row.base_accuracy, 2),
            format_cell(row.new_accuracy, 2), f"{row.difference:+.2f}{spread}", row.accuracy.describe(),
            f"{ratio:.3f}" + (f" ± {sigma:.3f}" if sigma is not None else ""),
            row.time.describe() if row.time else "not judged"])
    return headers, table


def comparison_lines(comparison: Comparison) -> list[str]:
    """The lines under the comparison table: the method, what was not matched, the machine, the outcome."""
    c = comparison
    common = {k: v for k, v in c.rows[0].setting.items() if all(row.setting.get(k) == v for row in c.rows)}
    lines = [f"{c.new.label} against the baseline {c.base.label} ({format_setting(common)}): accuracy judged "
             f"against ±{c.margin_pp:g} pp, "
             f"time against {100 * c.max_slowdown:g} % (Welch's t-tests, two one-sided tests (TOST) for \"same\"; "
             f"Holm's correction over {c.tests} test{'s' * (c.tests != 1)}; level {stats.ALPHA:g})"]
    if not c.same_machine:
        lines.append("times not judged: the two files do not come from the same machine record "
                     "(CPU, cores and BLAS kernel)")
    for label, keys in ((c.base.label, c.only_base), (c.new.label, c.only_new)):
        if keys:
            lines.append(f"only in {label}: {describe_keys(dict.fromkeys(keys))}")
    worse = [f"{row.name} ({format_setting(row.setting)})" for row in c.rows
             if stats.WORSE in (row.accuracy.claim, row.time and row.time.claim)]
    lines.append(f"regression: {'; '.join(worse)} worse than the baseline" if worse else "no regression")
    return lines


def comparison_record(comparison: Comparison) -> dict[str, Any]:
    """The comparison as results JSON records it (under "baseline_comparison")."""
    c = comparison
    return {"baseline": c.base.label, "baseline_tool_version": c.base.meta.get("tool_version"),
            "baseline_git_commit": c.base.meta.get("git_commit"), "margin_pp": c.margin_pp,
            "max_slowdown": c.max_slowdown, "alpha": stats.ALPHA, "correction": "holm", "tests": c.tests,
            "same_machine": c.same_machine, "regression": c.regression,
            "rows": [row_record(row) for row in c.rows],
            "only_in_baseline": [describe_keys(dict.fromkeys([k])) for k in c.only_base],
            "only_in_new": [describe_keys(dict.fromkeys([k])) for k in c.only_new]}


def row_record(row: RowComparison) -> dict[str, Any]:
    ratio, sigma = row.ratio
    interval = row.interval
    return {"name": row.name, "hyperparameters": row.setting, "runs_base": len(row.base_accuracy),
            "runs_new": len(row.new_accuracy), "accuracy_difference_pp": row.difference,
            "accuracy_interval_pp": list(interval) if interval else None, **verdict_record("accuracy", row.accuracy),
            "time_ratio": ratio, "time_ratio_sigma": sigma, **verdict_record("time", row.time)}


def verdict_record(prefix: str, verdict: stats.Verdict | None) -> dict[str, Any]:
    if verdict is None:
        return {f"{prefix}_verdict": "not judged", f"{prefix}_p": None, f"{prefix}_p_holm": None}
    return {f"{prefix}_verdict": verdict.claim, f"{prefix}_p": verdict.p, f"{prefix}_p_holm": verdict.p_holm}


CSV_FIELDS = ("name", "hyperparameters", "runs_base", "runs_new", "accuracy_difference_pp", "accuracy_verdict",
              "accuracy_p", "accuracy_p_holm", "time_ratio", "time_ratio_sigma", "time_verdict", "time_p",
              "time_p_holm")
