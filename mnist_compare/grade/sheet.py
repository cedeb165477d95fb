"""The grade sheet: one row per submission, sorted by submission, as CSV, JSON or Markdown; one Gradescope
results.json per submission; and the table printed on stdout.

    submission, score, max_score, interface, initialisation, ..., trajectory, first_failure, seconds, error

A check's cell is PASS, FAIL, TIMEOUT, MEMORY, ERROR (its process ended or its code raised) or NOT RUN.

Not for: grading (grader.py) or the HTML page (report.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tabulate import tabulate

from mnist_compare.check.checks import CHECK_NAMES
from mnist_compare.grade.grader import Graded
from mnist_compare.output.gradescope import gradescope_results
from mnist_compare.records.results import atomic_write

FIELDS = ("submission", "score", "max_score", *CHECK_NAMES, "first_failure", "seconds", "error")
SHEET_SUFFIXES = (".csv", ".json", ".md")
SHOWN_FAILURE = 90  # characters of the first failure in the printed table (the files hold all of it)
SHOWN_NAMES = 4  # failed checks named in the printed table; more are counted


def flat(row: Graded) -> dict:
    return {"submission": row.submission, "score": row.score, "max_score": row.max_score, **row.statuses,
            "first_failure": row.first_failure, "seconds": round(row.seconds, 1), "error": row.error}


def render_csv(rows: list[Graded]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat(row) for row in rows)
    return buffer.getvalue()


def render_markdown(rows: list[Graded]) -> str:
    return tabulate([[flat(row)[name] for name in FIELDS] for row in rows], headers=FIELDS, tablefmt="github") + "\n"


def render_json(rows: list[Graded], meta: dict) -> str:
    return json.dumps({**meta, "grades": [row.to_dict() for row in rows]}, indent=2) + "\n"


def write_sheet(path: str, rows: list[Graded], meta: dict) -> None:
    """The sheet at `path`, in the format its suffix names (.csv, .json or .md)."""
    suffix = Path(path).suffix.lower()
    text = render_json(rows, meta) if suffix == ".json" else render_markdown(rows) if suffix == ".md" \
        else render_csv(rows)
    with atomic_write(path, "w") as f:
        f.write(text)


def render_table(rows: list[Graded], table_format: str) -> str:
    """What stdout shows: each submission's score, the checks it failed, and the first failure's reason (the
    sheet's files have a column per check and the whole reason)."""
    table = []
    for row in rows:
        reason = row.first_failure
        table.append([row.submission, f"{row.score:g} / {row.max_score:g}", failed_checks(row),
                      reason if len(reason) <= SHOWN_FAILURE else reason[:SHOWN_FAILURE - 3] + "..."])
    return tabulate(table, headers=["submission", "score", "failed", "first failure"], tablefmt=table_format)


def failed_checks(row: Graded) -> str:
    """The checks a row failed, by name (TIMEOUT, MEMORY or ERROR said beside them); more than SHOWN_NAMES of
    them as a count."""
    if row.error:
        return "not graded"
    failed = [(name, status) for name, status in row.statuses.items() if status not in ("PASS", "NOT RUN")]
    kinds = sorted({status for _, status in failed})
    if len(failed) > SHOWN_NAMES:
        return f"{len(failed)} checks ({', '.join(kinds)})"
    return ", ".join(name if status == "FAIL" else f"{name} ({status})" for name, status in failed) or "-"


def gradescope_of(row: Graded, weights: dict[str, float]) -> dict:
    """Gradescope's results.json for one submission: its checks scored by weight, or, for a submission that
    could not be checked, score 0 with the reason."""
    if row.checks:
        return gradescope_results(row.checks, weights, row.file or row.submission)
    return {"score": 0.0, "output": f"mnist-compare grade could not check {row.submission}: {row.error}",
            "visibility": "visible", "stdout_visibility": "visible", "tests": []}


def write_gradescope_dir(directory: str, rows: list[Graded], weights: dict[str, float]) -> None:
    """DIRECTORY/<submission>/results.json for every row."""
    for row in rows:
        folder = Path(directory) / row.submission
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / "results.json", "w") as f:
            f.write(json.dumps(gradescope_of(row, weights), indent=2) + "\n")
