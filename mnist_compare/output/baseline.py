"""Compare results against a saved baseline: rows matched by net and setting, each with its accuracy
difference and time ratio judged better / same / worse (stats.py), and "regression" when any is worse.

    accuracy: d = mean(new) - mean(base) in percentage points, Welch's 95% interval, margin --margin pp;
              paired by seed when both sides ran the same seeds (stats.py): d = the mean of the per-seed
              differences, the paired t interval, one-sample tests; the test loss's paired difference beside it
    time:     r = mean(new) / mean(base) ± sigma (hyperfine's propagation); the verdict is stats.three_way on
              log times with margin ln(1 + --max_slowdown), so 10 % slower and 1/1.1 faster are symmetric

Times are judged only when both files come from the same machine (CPU model, core count, BLAS kernel).
Not for: reading and validating the files (records/saved.py), training or the command line (cli/compare.py).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from mnist_compare.output import stats
from mnist_compare.output.report import format_cell
from mnist_compare.output.verdict import speed_ratio
from mnist_compare.records.saved import ResultsFileError, SavedRuns, is_number, machine_of, setting_of

SETTING_ORDER = ("hidden_size", "lr", "batch_size", "number_epochs", "optimizer", "init")


@dataclass
class RowComparison:
    """One (net, setting) found in both: accuracies in percent, times in seconds."""

    name: str
    setting: dict[str, Any]
    base_accuracy: list[float]
    new_accuracy: list[float]
    base_time: list[float]
    new_time: list[float]
    paired: list[float] | None = None  # per-seed accuracy differences (pp) when both sides ran the same seeds
    loss_paired: list[float] | None = None  # per-seed test-loss differences, when both files hold test losses
    accuracy: stats.Verdict = field(init=False)
    time: stats.Verdict | None = field(init=False)  # None: times not judged (different or unknown machines)

    @property
    def difference(self) -> float:
        if self.paired is not None:
            return statistics.fmean(self.paired)
        return statistics.fmean(self.new_accuracy) - statistics.fmean(self.base_accuracy)

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.paired is not None:
            return stats.mean_interval(self.paired)
        return stats.difference_interval(self.new_accuracy, self.base_accuracy)

    @property
    def worse(self) -> bool:
        """Shown worse in accuracy or in time: a regression."""
        return stats.WORSE in (self.accuracy.claim, self.time and self.time.claim)

    @property
    def runs(self) -> str:
        """`5/5`, or `5 paired` when the rows were paired by seed."""
        if self.paired is not None:
            return f"{len(self.paired)} paired"
        return f"{len(self.base_accuracy)}/{len(self.new_accuracy)}"

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
        return any(row.worse for row in self.rows)


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
                            [r["train_time_s"] for r in runs_base], [r["train_time_s"] for r in runs_new],
                            *paired_by_seed(runs_base, runs_new))
        row.accuracy = (stats.paired_three_way(row.paired, margin_pp) if row.paired is not None
                        else stats.three_way(row.new_accuracy, row.base_accuracy, margin_pp))
        row.time = (stats.three_way([math.log(t) for t in row.new_time], [math.log(t) for t in row.base_time],
                                    math.log1p(max_slowdown), higher_is_better=False) if same_machine else None)
        rows.append(row)
    tests = stats.correct([v for row in rows for v in (row.accuracy, row.time) if v is not None])
    return Comparison(base, new, margin_pp, max_slowdown, rows, [k for k in base.groups if k not in new.groups],
                      [k for k in new.groups if k not in base.groups], same_machine, tests)


def paired_by_seed(runs_base: list[dict], runs_new: list[dict]) -> tuple[list[float] | None, list[float] | None]:
    """(accuracy differences in pp, test-loss differences) seed by seed, when both sides ran exactly the same
    seeds (a results file holds one run per net, setting and seed); (None, None) otherwise. The loss's are
    None when a side lacks test losses."""
    base, new = {r["seed"]: r for r in runs_base}, {r["seed"]: r for r in runs_new}
    if set(base) != set(new):
        return None, None
    seeds = sorted(base)
    accuracy = stats.paired_differences([100 * new[s]["test_accuracy"] for s in seeds],
                                        [100 * base[s]["test_accuracy"] for s in seeds])
    losses = [(new[s].get("test_loss"), base[s].get("test_loss")) for s in seeds]
    if not all(is_number(n) and is_number(b) for n, b in losses):
        return accuracy, None
    return accuracy, stats.paired_differences([n for n, _ in losses], [b for _, b in losses])


def describe_keys(groups: dict[tuple, list]) -> str:
    """`my_net at hidden_size 30, lr 0.1, ...; keras_net at ...` (the first two, then how many more)."""
    shown = [f"{name} at {format_setting(setting_of(pairs))}" for name, pairs in groups]
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
            row.name, row.runs, format_cell(row.base_accuracy, 2),
            format_cell(row.new_accuracy, 2), f"{row.difference:+.2f}{spread}", row.accuracy.describe(),
            f"{ratio:.3f}" + (f" ± {sigma:.3f}" if sigma is not None else ""),
            row.time.describe() if row.time else "not judged"])
    return headers, table


def comparison_lines(comparison: Comparison) -> list[str]:
    """The lines under the comparison table: the method, what was not matched, the machine, the outcome."""
    c = comparison
    common = {k: v for k, v in c.rows[0].setting.items() if all(row.setting.get(k) == v for row in c.rows)}
    paired = sum(row.paired is not None for row in c.rows)
    method = ("paired t-tests on the per-seed differences" if paired == len(c.rows) else
              f"paired t-tests on the per-seed differences for the {paired} paired rows, Welch's for the others"
              if paired else "Welch's t-tests")
    lines = [f"{c.new.label} against the baseline {c.base.label} ({format_setting(common)}): accuracy judged "
             f"against ±{c.margin_pp:g} pp ({method}), time against {100 * c.max_slowdown:g} % (Welch's t-tests "
             f"on log times); two one-sided tests (TOST) for \"same\"; Holm's correction over {c.tests} "
             f"test{'s' * (c.tests != 1)}; level {stats.ALPHA:g}"]
    if not c.same_machine:
        lines.append("times not judged: the two files do not come from the same machine record "
                     "(CPU, cores and BLAS kernel)")
    for label, keys in ((c.base.label, c.only_base), (c.new.label, c.only_new)):
        if keys:
            lines.append(f"only in {label}: {describe_keys(dict.fromkeys(keys))}")
    worse = [f"{row.name} ({format_setting(row.setting)})" for row in c.rows
             if row.worse]
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
    loss = row.loss_paired
    return {"name": row.name, "hyperparameters": row.setting, "runs_base": len(row.base_accuracy),
            "runs_new": len(row.new_accuracy), "paired": row.paired is not None,
            "paired_seeds": len(row.paired) if row.paired is not None else 0, "accuracy_difference_pp": row.difference,
            "test_loss_difference": statistics.fmean(loss) if loss else None,
            "test_loss_interval": list(stats.mean_interval(loss) or []) or None if loss else None,
            "accuracy_interval_pp": list(interval) if interval else None, **verdict_record("accuracy", row.accuracy),
            "time_ratio": ratio, "time_ratio_sigma": sigma, **verdict_record("time", row.time)}


def verdict_record(prefix: str, verdict: stats.Verdict | None) -> dict[str, Any]:
    if verdict is None:
        return {f"{prefix}_verdict": "not judged", f"{prefix}_p": None, f"{prefix}_p_holm": None}
    return {f"{prefix}_verdict": verdict.claim, f"{prefix}_p": verdict.p, f"{prefix}_p_holm": verdict.p_holm}


CSV_FIELDS = ("name", "hyperparameters", "runs_base", "runs_new", "paired_seeds", "accuracy_difference_pp",
              "accuracy_verdict", "accuracy_p", "accuracy_p_holm", "time_ratio", "time_ratio_sigma", "time_verdict",
              "time_p", "time_p_holm")
