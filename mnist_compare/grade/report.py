"""`grade --report grades.html`: what the class got wrong, on one self-contained page: a histogram of the
scores, per check how many submissions failed it and their most common diagnosis, then each submission's
check table (output/html_report.py's page, styles and figures).

Not for: the grade sheet's files (sheet.py).
"""

from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path

from tabulate import tabulate

from mnist_compare.check.checks import CHECK_NAMES
from mnist_compare.grade.grader import Graded
from mnist_compare.output import plots
from mnist_compare.output.html_page import (
    Figures,
    coloured_verdicts,
    header,
    page,
    section,
    settings_section,
    write_page,
)
from mnist_compare.output.report import render_checks


def score_histogram(rows: list[Graded]) -> str:
    """The scores' histogram, one bar per score reached."""
    fig, ax = plots.pyplot().subplots(figsize=(6.4, 3.2), dpi=plots.DPI)
    scores = [row.score for row in rows]
    top = max((row.max_score for row in rows), default=1.0)
    ax.hist(scores, bins=max(1, min(20, int(top) + 1)), range=(0, top + 1e-9), color="#4c72b0", edgecolor="white")
    ax.set_xlabel(f"score (of {top:g})")
    ax.set_ylabel("submissions")
    ax.set_title(f"Scores of {len(rows)} submissions")
    fig.tight_layout()
    return Figures().add(fig, f"The scores of {len(rows)} submissions, one bar per score reached.")


def common_diagnosis(rows: list[Graded], name: str) -> tuple[int, str]:
    """How many submissions failed the check `name`, and the diagnosis most of them got."""
    failed = [row for row in rows if row.statuses.get(name) not in ("PASS", "NOT RUN")]
    reasons = Counter(diagnosis_of(row, name) for row in failed)
    return len(failed), (reasons.most_common(1)[0][0] if reasons else "")


def diagnosis_of(row: Graded, name: str) -> str:
    found = next((c for c in row.checks if c.name == name), None)
    return (found.diagnosis or found.measured) if found else ""


def class_section(rows: list[Graded]) -> str:
    table = [[name, *common_diagnosis(rows, name)] for name in CHECK_NAMES]
    ungraded = sum(bool(row.error) for row in rows)
    note = f"<p>{ungraded} submission(s) could not be checked at all (see their rows).</p>" if ungraded else ""
    return section("What the class got wrong", note + tabulate(
        table, headers=["Check", "Failed by", "Most common diagnosis"], tablefmt="html", disable_numparse=True),
        "class")


def submissions_section(rows: list[Graded]) -> str:
    parts = []
    for row in rows:
        title = f"<h3>{escape(row.submission)}: {row.score:g} of {row.max_score:g}</h3>"
        body = coloured_verdicts(render_checks(row.checks, "html")) if row.checks else f"<p>{escape(row.error)}</p>"
        parts.append(title + body)
    return section("Each submission", "\n".join(parts), "submissions")


def render_grades_report(rows: list[Graded], meta: dict) -> str:
    parts = [header(meta, "mnist-compare grades"), settings_section(meta),
             section("Scores", score_histogram(rows), "scores"), class_section(rows), submissions_section(rows)]
    return page("mnist-compare grades", parts)


def write_grades_report(path: str | Path, rows: list[Graded], meta: dict) -> None:
    write_page(path, render_grades_report(rows, meta))
