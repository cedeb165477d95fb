"""A history of results files (`--history DIR` saves each run there; `mnist-compare history DIR` reads them):
per net and setting, one line per entry in date order, each step between consecutive entries judged better /
same / worse / inconclusive as `compare` judges it (baseline.py: paired by seed when the entries share seeds,
times only between entries from the same machine), with Holm's correction over every test of every step.

    DIR/20261205T101700Z_6d8205f1a2b3-dirty.json    <- the date (UTC), the commit, "-dirty" with uncommitted changes

The newest step decides the exit code: a net and setting worse in the newest entry than in the one before.
Not for: the command line (cli/history.py) or the page (html_report.py).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_compare.output import baseline, stats
from mnist_compare.output.report import format_cell
from mnist_compare.records.saved import (
    EXIT_DATA,
    EXIT_USAGE,
    ResultsFileError,
    SavedRuns,
    group_key,
    read_results,
    setting_of,
)
from mnist_compare.system.reading import display_path

SAFE = re.compile(r"[^0-9A-Za-z]")


def entry_name(meta: dict[str, Any]) -> str:
    """The file name --history gives a run: `20261205T101700Z_6d8205f1a2b3-dirty.json` (`no-commit` outside a
    clone): sorted by name is sorted by date."""
    date = SAFE.sub("", str(meta.get("date", "")).split("+")[0]) + "Z"
    commit = (meta.get("git_commit") or "no-commit")[:12]
    return f"{date}_{commit}{'-dirty' * bool(meta.get('git_dirty'))}.json"


def read_history(directory: str | Path) -> list[SavedRuns]:
    """Every results file (*.json) in `directory`, oldest first by its recorded date; ResultsFileError (the
    exit codes of `compare`) for a file that is not one, a newer format, or fewer than two entries."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ResultsFileError(f"{display_path(folder)}: not a directory of results files", EXIT_USAGE)
    entries = [read_results(path) for path in sorted(folder.glob("*.json"))]
    if len(entries) < 2:
        raise ResultsFileError(f"{display_path(folder)} holds {len(entries)} results file"
                               f"{'s' * (len(entries) != 1)}: a history needs two to show a step", EXIT_USAGE)
    undated = [entry.label for entry in entries if not isinstance(entry.meta.get("date"), str)]
    if undated:
        raise ResultsFileError(f"{undated[0]} records no date: not a file --output or --history wrote", EXIT_DATA)
    return sorted(entries, key=lambda entry: entry.meta["date"])


@dataclass
class Step:
    """One (net, setting) between two consecutive entries that both hold it."""

    before: int  # the entries' indexes, oldest first
    after: int
    row: baseline.RowComparison

    @property
    def key(self) -> tuple:
        """The (net, setting) group key of the entries (saved.group_key)."""
        return group_key({"name": self.row.name, "hyperparameters": self.row.setting})


@dataclass
class History:
    entries: list[SavedRuns]
    steps: list[Step]
    margin_pp: float
    max_slowdown: float
    tests: int

    @property
    def keys(self) -> list[tuple]:
        """Every (net, setting) in any entry, in the order first seen."""
        return list(dict.fromkeys(key for entry in self.entries for key in entry.groups))

    @property
    def regression(self) -> bool:
        """A net and setting worse in the newest entry than in the one before it."""
        newest = len(self.entries) - 1
        return any(step.after == newest and step.row.worse for step in self.steps)


def judge(entries: list[SavedRuns], margin_pp: float = 0.2, max_slowdown: float = 0.1) -> History:
    """Each consecutive pair of entries compared as `compare` does; Holm's correction over all the steps."""
    steps = []
    for index in range(1, len(entries)):
        before, after = entries[index - 1], entries[index]
        if not any(key in before.groups for key in after.groups):
            continue
        comparison = baseline.compare(before, after, margin_pp, max_slowdown)
        steps += [Step(index - 1, index, row) for row in comparison.rows]
    tests = stats.correct([v for step in steps for v in (step.row.accuracy, step.row.time) if v is not None])
    return History(entries, steps, margin_pp, max_slowdown, tests)


def history_rows(history: History) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): per net and setting, a line per entry that holds it, with the step from the entry
    before (the first line of each has none)."""
    headers = ["Net", "Setting", "Entry", "Date", "Commit", "Runs", "Test acc.(%)", "Time(s)", "Accuracy step",
               "Speed step"]
    by_after = {(step.after, step.key): step for step in history.steps}
    rows = []
    for key in history.keys:
        name, pairs = key
        for index, entry in enumerate(history.entries):
            runs = entry.groups.get(key)
            if not runs:
                continue
            step = by_after.get((index, key))
            rows.append([name, baseline.format_setting(setting_of(pairs)), str(index + 1), entry.meta["date"][:19],
                         commit_of(entry), str(len(runs)),
                         format_cell([100 * run["test_accuracy"] for run in runs], 2),
                         format_cell([run["train_time_s"] for run in runs], 2),
                         step_words(step.row.accuracy, step.row.difference, "pp") if step else "",
                         (step.row.time.describe() if step.row.time else "not judged") if step else ""])
    return headers, rows


def commit_of(entry: SavedRuns) -> str:
    commit = entry.meta.get("git_commit")
    return f"{commit[:12]}{'+' * bool(entry.meta.get('git_dirty'))}" if isinstance(commit, str) else "-"


def step_words(verdict: stats.Verdict, difference: float, unit: str) -> str:
    return f"{difference:+.2f} {unit}: {verdict.describe()}"


def history_lines(history: History) -> list[str]:
    """The lines under the table: the method, the newest step's outcome."""
    h = history
    lines = [f"{len(h.entries)} entries, {len(h.steps)} steps: accuracy judged against ±{h.margin_pp:g} pp (paired "
             f"by seed where consecutive entries share seeds), time against {100 * h.max_slowdown:g} % between "
             f"entries from the same machine; Holm's correction over {h.tests} test{'s' * (h.tests != 1)}"]
    newest = len(h.entries) - 1
    bad = [f"{step.row.name} ({baseline.format_setting(step.row.setting)})" for step in h.steps
           if step.after == newest and step.row.worse]
    lines.append(f"regression in the newest entry ({h.entries[-1].label}): {'; '.join(bad)} worse than the entry "
                 "before" if bad else "no regression in the newest entry")
    return lines


def history_record(history: History) -> dict[str, Any]:
    """The history as JSON records it."""
    h = history
    return {"entries": [{"file": e.label, "date": e.meta.get("date"), "git_commit": e.meta.get("git_commit"),
                         "git_dirty": e.meta.get("git_dirty")} for e in h.entries],
            "margin_pp": h.margin_pp, "max_slowdown": h.max_slowdown, "correction": "holm", "tests": h.tests,
            "regression": h.regression,
            "steps": [{"from": s.before + 1, "to": s.after + 1, **baseline.row_record(s.row)} for s in h.steps]}


def trend(history: History, key: tuple) -> dict[str, list]:
    """One net and setting's series for a plot: entry numbers, mean accuracy (%) and time (s), and the
    entries whose step was judged worse or better."""
    points = [(index + 1, entry.groups[key]) for index, entry in enumerate(history.entries) if key in entry.groups]
    marked = {(step.after + 1): (step.row.accuracy.claim, step.row.time.claim if step.row.time else None)
              for step in history.steps if step.key == key}
    return {"entries": [number for number, _ in points],
            "accuracy": [statistics.fmean(100 * r["test_accuracy"] for r in runs) for _, runs in points],
            "time": [statistics.fmean(r["train_time_s"] for r in runs) for _, runs in points],
            "steps": marked}
