"""`mnist-compare compare BASE.json NEW.json`: two saved results files compared without training, as
--baseline compares a run just made (output/baseline.py). run() in main.py sends a command line whose first
word is `compare` here: a command of the group in main.py.

Exit codes: 0 no regression, 8 a net and setting worse than the baseline, 2 usage (a --check file, a newer
format, no net and setting in common), 4 a file that is not a results file or is truncated, 5 an output not
written.
"""

from __future__ import annotations

import sys

import click

from mnist_compare.cli import outcome
from mnist_compare.cli.options import COMMAND_SETTINGS, judging
from mnist_compare.output import baseline, files
from mnist_compare.records import saved

HELP = """Compare NEW.json with the baseline BASE.json, two results files saved with --output: per net and
setting, the accuracy difference (95% interval) and the time ratio, each judged better / same / worse
against --margin and --max_slowdown (Welch's t-tests, TOST for "same", Holm's correction); exit 8 when
anything is worse.

\b
Example:
  mnist-compare --compare_nets --repeats 5 --seed 1 --output base.json     (on the last good commit)
  mnist-compare --compare_nets --repeats 5 --seed 101 --output new.json    (on the change)
  mnist-compare compare base.json new.json --report comparison.html
"""

COMPARE_FILE = click.Path(exists=True, dir_okay=False)


@click.command("compare", help=HELP, short_help="Two saved results files compared: better / same / worse per net.",
               context_settings=COMMAND_SETTINGS)
@click.argument("base_json", type=COMPARE_FILE, metavar="BASE.json")
@click.argument("new_json", type=COMPARE_FILE, metavar="NEW.json")
@judging("Write the comparison to a .md, .csv or .json file; repeatable.",
         "The comparison and both files' identity as one self-contained HTML page.")
def compare_command(base_json: str, new_json: str, margin: float, max_slowdown: float, table_format: str,
                    output: tuple[str, ...], report: str | None, report_title: str | None) -> None:
    with outcome.internal_errors_reported(verbose=False):
        sys.exit(compare(base_json, new_json, margin, max_slowdown, table_format, output, report, report_title))


def compare(base_json: str, new_json: str, margin: float, max_slowdown: float, table_format: str = "github",
            output: tuple[str, ...] = (), report: str | None = None, report_title: str | None = None) -> int:
    """The comparison of two results files printed and written; the exit code (0, 8, or 2, 4, 5)."""
    try:
        comparison = baseline.compare(saved.read_results(base_json), saved.read_results(new_json), margin,
                                      max_slowdown)
    except saved.ResultsFileError as err:
        outcome.error(str(err))
        return err.exit_code
    meta = {**files.run_metadata({"base": base_json, "new": new_json, "margin": margin,
                                  "max_slowdown": 100 * max_slowdown}), "machine": comparison.new.meta.get("machine")}
    written = all([outcome.attempted(path, lambda p=path: files.write_comparison(p, comparison, meta))
                   for path in output])
    written &= outcome.write_report(report, meta, report_title or "mnist-compare comparison", comparison=comparison)
    return outcome.judged_exit(files.render_comparison(comparison, table_format), written, comparison.regression)
