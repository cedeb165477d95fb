"""`mnist-compare history DIR --report history.html`: the history's table and, per net and setting, a trend
plot (mean test accuracy and mean time against the entries; a step judged worse marked with a red x, better
with a green o), as one self-contained page like --report's (html_report.py).

Not for: judging the steps (history.py).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mnist_compare.output import baseline, history, plots
from mnist_compare.output.html_page import Figures, bullet_list, header, page, section, write_page
from mnist_compare.records.saved import setting_of

MARKS = {"worse": ("x", "tab:red"), "better": ("o", "tab:green")}


def trend_figure(series: dict[str, list], title: str):
    """Two panels over the entries: mean test accuracy (%) and mean time (s), steps judged worse or better
    marked on the panel of their metric."""
    plt = plots.pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for ax, metric, label, claim_of in ((top, "accuracy", "test accuracy (%)", 0), (bottom, "time", "time (s)", 1)):
        ax.plot(series["entries"], series[metric], "-", marker=".", color="tab:blue")
        for entry, claims in series["steps"].items():
            mark = MARKS.get(claims[claim_of])
            if mark:
                value = series[metric][series["entries"].index(entry)]
                ax.plot([entry], [value], mark[0], color=mark[1], markersize=10, label=f"step {claims[claim_of]}")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(labels, handles, strict=True))
            ax.legend(unique.values(), unique.keys(), fontsize="small")
    bottom.set_xlabel("entry (oldest first)")
    bottom.set_xticks(series["entries"])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def render_history_report(meta: dict[str, Any], judged: history.History, title: str | None = None) -> str:
    title = title or "mnist-compare history"
    headers, rows = history.history_rows(judged)
    lines = history.history_lines(judged)
    outcome = f'<p class="{"regression" if judged.regression else "meta"}">{escape(lines[-1])}</p>'
    table = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True)
    figures, numbered = [], Figures()
    for key in judged.keys:
        name, pairs = key
        label = f"{name}: {baseline.format_setting(setting_of(pairs))}"
        figures.append(numbered.add(trend_figure(history.trend(judged, key), label),
                                    f"{label}: mean test accuracy and time per entry."))
    entries = [f"{i + 1}: {e.label} ({e.meta.get('date')}, {history.commit_of(e)})"
               for i, e in enumerate(judged.entries)]
    parts = [header(meta, title, lines[-1]),
             section("Steps between entries", table + bullet_list(lines[:-1]) + outcome, "steps"),
             section("Trends", "\n".join(figures), "trends"), section("Entries", bullet_list(entries), "entries")]
    return page(title, parts)


def write_history_report(path: str | Path, meta: dict[str, Any], judged: history.History,
                         title: str | None = None) -> None:
    write_page(path, render_history_report(meta, judged, title))
