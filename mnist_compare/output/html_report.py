"""`--report report.html`: one page a user can paste (output/html_page.py's parts): a title, a one-sentence
summary of the verdicts, the command as typed, the options given, the table with its Relative column, the
verdicts, the comparison against a baseline and --check's table with coloured verdict cells, numbered learning
curves and times per epoch, confusion matrices, and the machine as a short table.

Not for: the text of tables (report.py) or statistics (verdict.py, baseline.py).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mnist_compare.output import baseline, plots
from mnist_compare.output.html_page import (
    DEFAULT_TITLE,
    Figures,
    bullet_list,
    coloured_verdicts,
    header,
    machine_section,
    page,
    section,
    settings_section,
    write_page,
)
from mnist_compare.output.report import render_checks, render_profile, render_table, summary_lines, varying_settings
from mnist_compare.output.verdict import grouped, timing_warnings
from mnist_compare.records.results import RunResult


def results_section(results: list[RunResult]) -> str:
    body = render_table(results, "html") + bullet_list(summary_lines(results))
    body += bullet_list([f"Warning: {line}" for line in timing_warnings(results)], "warning")
    return section("Results", body, "results")


def curves_section(results: list[RunResult], figures: Figures) -> str:
    """Per setting, the learning curves and the time per epoch, side by side, each a numbered figure."""
    vary = varying_settings(results)
    rows = []
    for setting, runs in plots.by_setting(results, vary).items():
        label = plots.setting_label(vary, setting)
        at = f" at {label}" * bool(label)
        curves = figures.add(plots.learning_curves_figure(runs, label),
                             f"Training loss and accuracy per epoch{at} (mean over seeds, ± std shaded; test "
                             f"accuracy dashed when measured).")
        times = figures.add(plots.epoch_times_figure(runs, label), f"Time per epoch{at}.")
        rows.append(f'<div class="figures">{curves}{times}</div>')
    return section("Learning curves and time per epoch", "\n".join(rows), "curves")


def confusion_section(results: list[RunResult]) -> str:
    """Per (setting, net): the test-set confusion matrix summed over its seeds, cells shaded by share."""
    parts = []
    for (setting, name), runs in grouped(results).items():
        matrices = [r.confusion for r in runs if r.finished and r.confusion]
        if matrices:
            total = [[sum(m[i][j] for m in matrices) for j in range(len(matrices[0]))] for i in range(len(matrices[0]))]
            label = f"{name}, {', '.join(map(str, setting))} ({len(matrices)} run{'s' * (len(matrices) > 1)})"
            parts.append(f"<h3>{escape(label)}</h3>" + confusion_table(total))
    return section("Confusion matrices (rows: true digit, columns: predicted)", "\n".join(parts), "confusion")


def confusion_table(matrix: list[list[int]]) -> str:
    """Correct predictions on a green diagonal; each mistake's cell red by its share of the row."""
    head = "".join(f"<th>{j}</th>" for j in range(len(matrix))) + "<th>Accuracy(%)</th>"
    rows = []
    for i, counts in enumerate(matrix):
        total = max(sum(counts), 1)
        cells = "".join(f'<td style="background: {cell_colour(i == j, c / total)}">{c}</td>'
                        for j, c in enumerate(counts))
        rows.append(f"<tr><th>{i}</th>{cells}<td>{100 * counts[i] / total:.2f}</td></tr>")
    return f'<table class="confusion"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def cell_colour(diagonal: bool, share: float) -> str:
    if diagonal:
        return "#dff0d8"
    return f"rgba(210, 40, 40, {min(0.8, 20 * share):.2f})"


def comparison_section(comparison: baseline.Comparison) -> str:
    headers, rows = baseline.comparison_rows(comparison)
    lines = baseline.comparison_lines(comparison)
    outcome = f'<p class="{"regression" if comparison.regression else ""}">{escape(lines[-1])}</p>'
    table = coloured_verdicts(tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True))
    body = table + bullet_list(lines[:-1]) + outcome
    return section("Against the baseline", body, "baseline")


def render_report(meta: dict[str, Any], results: list[RunResult] | None = None,
                  comparison: baseline.Comparison | None = None, checks: list | None = None,
                  title: str | None = None) -> str:
    """The page: what was given of a training run's results, a comparison, or --check's checks."""
    title = title or DEFAULT_TITLE
    figures = Figures()
    parts = [header(meta, title, summary_sentence(results, comparison, checks))]
    if meta.get("options"):
        parts.append(settings_section(meta))
    if results:
        parts.append(results_section(results))
    if comparison is not None:
        parts.append(comparison_section(comparison))
    if checks:
        parts.append(section("Checks against the Keras twin", coloured_verdicts(render_checks(checks, "html")),
                             "checks"))
    if results:
        parts += [curves_section(results, figures), confusion_section(results)]
    if meta.get("profiles"):
        tables = [render_profile(profile, "html").replace("\n", "", 1) for profile in meta["profiles"]]
        parts.append(section("Profile of one epoch (--profile)", "\n".join(tables), "profiles"))
    parts.append(machine_section(meta))
    return page(title, parts)


def summary_sentence(results: list[RunResult] | None, comparison: baseline.Comparison | None,
                     checks: list | None) -> str:
    """The verdicts in one sentence: the nets against each other (or each net's accuracy and time), the
    outcome against the baseline, and how many checks passed."""
    parts = (summary_lines(results) or net_lines(results)) if results else []
    if comparison is not None:
        parts.append(baseline.comparison_lines(comparison)[-1].rstrip("."))
    if checks:
        failed = [c for c in checks if not c.passed]
        parts.append(f"{len(checks) - len(failed)} of {len(checks)} checks passed"
                     + (f", first failure: {failed[0].name}" if failed else ""))
    return "; ".join(parts) + "." * bool(parts)


def net_lines(results: list[RunResult]) -> list[str]:
    """Per net and setting that finished: its mean test accuracy and training time."""
    lines = []
    for (_, name), runs in grouped(results).items():
        done = [r for r in runs if r.finished]
        if done:
            accuracy = 100 * sum(r.test_accuracy for r in done) / len(done)
            seconds = sum(r.train_time_s for r in done) / len(done)
            lines.append(f"{name}: {accuracy:.2f} % test accuracy in {seconds:.2f} s"
                         + f" (mean of {len(done)} runs)" * (len(done) > 1))
    return lines


def write_report(path: str | Path, meta: dict[str, Any], results: list[RunResult] | None = None,
                 comparison: baseline.Comparison | None = None, checks: list | None = None,
                 title: str | None = None) -> None:
    write_page(path, render_report(meta, results, comparison, checks, title))
