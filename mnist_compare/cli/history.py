"""`mnist-compare history DIR`: the results files --history saved in DIR (or any saved with --output), one line
per entry and per net and setting, each step between consecutive entries judged as `compare` judges it
(output/history.py). A command of the group in main.py.

Exit codes (those of `compare`): 0 no regression in the newest entry, 8 a net and setting worse in the newest
entry than in the one before, 2 usage (not a directory, fewer than two entries, a newer format), 4 a file that
is not a results file, 5 an output not written.
"""

from __future__ import annotations

import sys

import click

from mnist_compare.cli import outcome
from mnist_compare.cli.options import COMMAND_SETTINGS, judging
from mnist_compare.output import files, history
from mnist_compare.records.saved import ResultsFileError

HELP = """Show the history of the results files in DIR (saved there by --history DIR, or by --output): per net
and setting, each entry's accuracy and time, oldest first, with each step from the entry before judged
better / same / worse (paired by seed where the entries share seeds; times only between entries from the same
machine; Holm's correction over every step); exit 8 when the newest entry is worse than the one before.

\b
Example, in CI after each commit's run:
  mnist-compare --compare_nets --repeats 3 --seed 1 --history runs/
  mnist-compare history runs/ --report history.html
"""


@click.command("history", help=HELP, short_help="Steps across the results files in DIR: a trend per net.",
               context_settings=COMMAND_SETTINGS)
@click.argument("directory", type=click.Path(file_okay=False), metavar="DIR")
@judging("Write the steps to a .md, .csv or .json file; repeatable.",
         "The steps and a trend plot per net and setting as one self-contained HTML page.")
def history_command(directory: str, margin: float, max_slowdown: float, table_format: str,
                    output: tuple[str, ...], report: str | None, report_title: str | None) -> None:
    with outcome.internal_errors_reported(verbose=False):
        sys.exit(show_history(directory, margin, max_slowdown, table_format, output, report, report_title))


def show_history(directory: str, margin: float, max_slowdown: float, table_format: str = "github",
                 output: tuple[str, ...] = (), report: str | None = None, report_title: str | None = None) -> int:
    """The history printed and written; the exit code (0, 8, or 2, 4, 5)."""
    try:
        judged = history.judge(history.read_history(directory), margin, max_slowdown)
    except ResultsFileError as err:
        outcome.error(str(err))
        return err.exit_code
    meta = files.run_metadata({"directory": directory, "margin": margin, "max_slowdown": 100 * max_slowdown})
    written = all([outcome.attempted(path, lambda p=path: files.write_history(p, judged, meta)) for path in output])
    if report is not None:
        from mnist_compare.output.history_report import write_history_report

        written &= outcome.attempted(report, lambda: write_history_report(report, meta, judged, report_title),
                                     (OSError, UnicodeError, ValueError))
    return outcome.judged_exit(files.render_history(judged, table_format), written, judged.regression)
