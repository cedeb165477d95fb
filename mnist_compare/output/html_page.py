"""The parts every HTML page of the tool is made of (--report, `compare --report`, `history --report`, `grade
--report`): one self-contained file with no script, no font and no request, that pastes into a document and
prints. Figures are numbered, captioned SVG data URIs with a link that downloads each as PNG (what word
processors paste); verdict cells are coloured; the machine is a short table; a print stylesheet.

Not for: what a page says (html_report.py, history_report.py, grade/report.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
from html import escape
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mnist_compare.output import plots
from mnist_compare.records.results import atomic_write

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; } td { text-align: right; } td:first-child { text-align: left; }
table.machine td { text-align: left; } table.machine th { text-align: left; vertical-align: top; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; } .meta { color: #555; }
.summary { font-size: 1.1em; background: #f4f7fb; border-left: 4px solid #3a6ea5; padding: 0.5em 0.8em; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; } figcaption { color: #444; font-size: 0.92em; }
.figures { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 1em; }
.figures figure:first-child { max-width: 64%; } .figures figure:last-child { max-width: 33%; }
.warning { color: #8a4b00; } .regression { color: #a00; font-weight: bold; }
td.better, td.pass { background: #dff0d8; } td.worse, td.fail { background: #f6d5d5; font-weight: bold; }
td.same { background: #eef3f8; } td.inconclusive, td.interrupted { background: #fcf3d9; }
table.confusion td { min-width: 2.5em; font-size: 0.85em; }
@media print {
  body { font-size: 10.5pt; max-width: none; margin: 0; color: #000; }
  h2 { break-after: avoid; } figure, table { break-inside: avoid; } a.png, details { display: none; }
  .summary { border-left-color: #000; background: none; } th, td.same { background: none; }
}
"""
DEFAULT_TITLE = "mnist-compare report"
# A verdict at the start of a cell: tabulate's <td>, or <td style="...">, then the word.
VERDICT_CELL = re.compile(r"<td([^>]*)>(\s*(better|same|worse|inconclusive|PASS|FAIL|INTERRUPTED)\b)")


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def bullet_list(lines: list[str], css: str = "") -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<ul class="{css}">{items}</ul>' if css else f"<ul>{items}</ul>"


def coloured_verdicts(table_html: str) -> str:
    """The table with each cell that starts with a verdict (better, same, worse, PASS, ...) classed by it."""
    return VERDICT_CELL.sub(lambda m: f'<td{m[1]} class="{m[3].lower()}">{m[2]}', table_html)


class Figures:
    """A page's figures, numbered in the order they are added: each an SVG (sharp on screen and in print)
    with its caption and a link that downloads the same figure as PNG."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, fig, caption: str) -> str:
        """<figure> of matplotlib figure `fig` (closed afterwards) captioned `Figure N. caption`."""
        self.count += 1
        svg = data_uri("image/svg+xml", plots.figure_bytes(fig, "svg", close=False))
        png = data_uri("image/png", plots.figure_bytes(fig, "png"))
        number = self.count
        return (f'<figure id="figure-{number}"><img alt="{escape(caption)}" src="{svg}">'
                f"<figcaption>Figure {number}. {escape(caption)} "
                f'<a class="png" download="figure-{number}.png" href="{png}">PNG</a></figcaption></figure>')


def data_uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def header(meta: dict[str, Any], title: str, summary: str = "") -> str:
    """The title, the version, commit and date, the one-sentence summary, and the command as it was typed."""
    commit = meta.get("git_commit")
    source = f"; git {commit[:12]}{' (with uncommitted changes)' * bool(meta.get('git_dirty'))}" if commit else ""
    lead = f'<p class="summary">{escape(summary)}</p>\n' if summary else ""
    return (f"<h1>{escape(title)}</h1>\n<p class=\"meta\">mnist-compare {escape(str(meta.get('tool_version')))}"
            f"{escape(source)}; {escape(str(meta.get('date', '')))}</p>\n{lead}"
            + section("Command", f"<pre>{escape(str(meta.get('command_line', '')))}</pre>", "command"))


def settings_table(options: dict[str, Any], per_row: int = 3) -> str:
    """The options and their values, `per_row` pairs to a row so that the list stays short."""
    pairs = [(key, value_text(value)) for key, value in options.items()]
    rows = [sum(pairs[i:i + per_row], ()) for i in range(0, len(pairs), per_row)]
    return tabulate(rows, headers=["Option", "Value"] * min(per_row, len(pairs)), tablefmt="html")


def value_text(value: Any) -> str:
    """An option's value as typed: a list as a comma list, a path under the working directory relative to it
    (results files record output paths absolute, so that a net's os.chdir cannot move them)."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple) and all(isinstance(v, int | float | str) for v in value):
        return ",".join(map(value_text, value))
    if isinstance(value, str):
        return value.removeprefix(f"{Path.cwd()}{os.sep}")
    return json.dumps(value)


def settings_section(meta: dict[str, Any]) -> str:
    """The options the user gave (meta's options_given) and the seed; every other one, at its default, folded
    in a <details>. A results file that does not say which were given shows them all."""
    options = meta.get("options") or {}
    given = meta.get("options_given")
    if given is None:
        return section("Settings", settings_table(options), "settings")
    shown = {key: value for key, value in options.items() if key in given or key == "seed"}
    rest = {key: value for key, value in options.items() if key not in shown}
    body = settings_table(shown) if shown else "<p>Every option at its default.</p>"
    if rest:
        body += (f"<details><summary>The other {len(rest)} options, at their defaults</summary>"
                 f"{settings_table(rest)}</details>")
    return section("Settings (as given)", body, "settings")


def machine_section(meta: dict[str, Any]) -> str:
    """The machine and the library versions as a short table (no paths: the net file by name and hash)."""
    rows = [(name, text) for name, text in machine_rows(meta) if text]
    body = "".join(f"<tr><th>{escape(name)}</th><td>{escape(text)}</td></tr>" for name, text in rows)
    return section("Machine and libraries", f'<table class="machine">{body}</table>', "machine")


def machine_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    libraries = meta.get("libraries") or {}
    machine = meta.get("machine") or {}
    blas = [f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')} kernels, {b.get('num_threads')} "
            f"threads)" for b in machine.get("blas") or []]
    net = meta.get("net_file") or {}
    load = [machine.get("load_average_before"), machine.get("load_average_after")]
    return [("CPU", f"{meta.get('cpu', '')} ({meta.get('cpu_count')} cores)" if meta.get("cpu") else ""),
            ("Platform", str(meta.get("platform") or "")),
            ("Libraries", ", ".join(f"{name} {version}" for name, version in libraries.items() if version)),
            ("BLAS", "; ".join(dict.fromkeys(blas))),
            ("Load average (1, 5, 15 min)", " before, ".join(", ".join(map(str, v)) for v in load if v)
             + " after" * all(load)),
            ("Net file", f"{Path(net['path']).name} (SHA-256 {net['sha256'][:16]}…)" if net.get("path") else "")]


def page(title: str, parts: list[str]) -> str:
    """A self-contained HTML page of `parts` (sections), styled by STYLE."""
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_page(path: str | Path, text: str) -> None:
    """An HTML page written to `path`; a name UTF-8 cannot encode (a net file's path in another encoding,
    which the file system keeps as surrogates) is escaped as \\udcXX, as the JSON escapes it."""
    with atomic_write(path, "w") as f:
        f.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
