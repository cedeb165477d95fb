"""`--report report.html`: one self-contained page (no script, no font, no request: figures are SVG data
URIs, styles inline) with the command and settings, the table with its Relative column, the verdicts,
learning curves, time per epoch, confusion matrices, --check's table, a baseline comparison and the machine.

Not for: the text of tables (report.py) or statistics (verdict.py, baseline.py).
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mnist_compare.output import baseline, plots
from mnist_compare.output.report import render_checks, render_profile, render_table, summary_lines, varying_settings
from mnist_compare.output.verdict import grouped, timing_warnings
from mnist_compare.records.results import RunResult, atomic_write

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; } td { text-align: right; } td:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; } .meta { color: #555; }
img { max-width: 100%; } .figures { display: flex; flex-wrap: wrap; align-items: flex-start; }
.figures img:first-child { max-width: 66%; } .figures img:last-child { max-width: 33%; }
.warning { color: #8a4b00; } .regression { color: #a00; font-weight: bold; }
table.confusion td { min-width: 2.5em; font-size: 0.85em; }
"""


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def bullet_list(lines: list[str], css: str = "") -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<ul class="{css}">{items}</ul>' if css else f"<ul>{items}</ul>"


def figure(fig, alt: str) -> str:
    """An <img> holding the figure as an SVG data URI (its own ids stay inside it)."""
    data = base64.b64encode(plots.figure_bytes(fig, "svg")).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def header(meta: dict[str, Any], title: str) -> str:
    commit = meta.get("git_commit")
    source = f"; git {commit[:12]}{' (with uncommitted changes)' * bool(meta.get('git_dirty'))}" if commit else ""
    return (f"<h1>{escape(title)}</h1>\n<p class=\"meta\">mnist-compare {escape(str(meta.get('tool_version')))}"
            f"{escape(source)}; {escape(str(meta.get('date', '')))}</p>\n"
            + section("Command", f"<pre>{escape(str(meta.get('command_line', '')))}</pre>", "command"))


def settings_table(options: dict[str, Any], per_row: int = 3) -> str:
    """Every option and its value, `per_row` pairs to a row so that the list stays short."""
    pairs = [(key, value if isinstance(value, str) else json.dumps(value)) for key, value in options.items()]
    rows = [sum(pairs[i:i + per_row], ()) for i in range(0, len(pairs), per_row)]
    return tabulate(rows, headers=["Option", "Value"] * per_row, tablefmt="html")


def results_section(results: list[RunResult]) -> str:
    body = render_table(results, "html") + bullet_list(summary_lines(results))
    body += bullet_list([f"Warning: {line}" for line in timing_warnings(results)], "warning")
    return section("Results", body, "results")


def curves_section(results: list[RunResult]) -> str:
    vary = varying_settings(results)
    images = []
    for setting, runs in plots.by_setting(results, vary).items():
        label = plots.setting_label(vary, setting)
        images.append('<div class="figures">'
                      + figure(plots.learning_curves_figure(runs, label), f"learning curves {label}")
                      + figure(plots.epoch_times_figure(runs, label), f"time per epoch {label}") + "</div>")
    return section("Learning curves and time per epoch (mean over seeds, ± std shaded; test dashed)",
                   "\n".join(images), "curves")


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
    body = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True) + bullet_list(lines[:-1]) + outcome
    return section("Against the baseline", body, "baseline")


def machine_section(meta: dict[str, Any]) -> str:
    keys = ("cpu", "cpu_count", "platform", "machine", "libraries", "net_file")
    record = {key: meta[key] for key in keys if meta.get(key) is not None}
    return section("Machine and libraries", f"<pre>{escape(json.dumps(record, indent=2))}</pre>", "machine")


def render_report(meta: dict[str, Any], results: list[RunResult] | None = None,
                  comparison: baseline.Comparison | None = None, checks: list | None = None) -> str:
    """The page: what was given of a training run's results, a comparison, or --check's checks."""
    parts = [header(meta, "mnist-compare report")]
    if meta.get("options"):
        parts.append(section("Settings", settings_table(meta["options"]), "settings"))
    if results:
        parts.append(results_section(results))
    if comparison is not None:
        parts.append(comparison_section(comparison))
    if checks:
        parts.append(section("Checks against the Keras twin", render_checks(checks, "html"), "checks"))
    if results:
        parts += [curves_section(results), confusion_section(results)]
    if meta.get("profiles"):
        tables = [render_profile(profile, "html").replace("\n", "", 1) for profile in meta["profiles"]]
        parts.append(section("Profile of one epoch (--profile)", "\n".join(tables), "profiles"))
    parts.append(machine_section(meta))
    return page("mnist-compare report", parts)


def page(title: str, parts: list[str]) -> str:
    """A self-contained HTML page of `parts` (sections), styled by STYLE."""
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_report(path: str | Path, meta: dict[str, Any], results: list[RunResult] | None = None,
                 comparison: baseline.Comparison | None = None, checks: list | None = None) -> None:
    write_page(path, render_report(meta, results, comparison, checks))


def write_page(path: str | Path, text: str) -> None:
    """An HTML page written to `path`; a name UTF-8 cannot encode (a net file's path in another encoding,
    which the file system keeps as surrogates) is escaped as \\udcXX, as the JSON escapes it."""
    with atomic_write(path, "w") as f:
        f.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
