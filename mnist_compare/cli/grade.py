"""`mnist-compare grade PATH...`: a class's submissions (`.py` files and Jupyter notebooks, or folders of
them) checked like `--check`, each in processes of its own under the limits per check, into one grade sheet;
`--audit` grades the built-in one-bug networks instead, so that a teacher sees what each bug scores.

Exit codes: 0 every submission graded, whatever its score (a student's failure is a grade); 6 some
submission could not be graded for a reason outside it (the cluster lost it twice); 2 bad options; 5 an
output not written; 128 + N on signal N, with the finished rows printed and written.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from mnist_compare.check.checks import DEFAULT_WEIGHTS
from mnist_compare.check.sandbox import Limits
from mnist_compare.cli import outcome
from mnist_compare.cli.options import (
    COMMAND_SETTINGS,
    SectionedCommand,
    grading,
    network,
    optimiser,
    option,
    outputs,
    picked,
    section,
    what_to_train,
)
from mnist_compare.cli.progress import Progress
from mnist_compare.cli.values import writable_output
from mnist_compare.grade import sheet
from mnist_compare.grade.audit import audit_submissions
from mnist_compare.grade.grader import Graded, GradeSettings
from mnist_compare.grade.submissions import submissions_in
from mnist_compare.output import files
from mnist_compare.records.spec import OptimizerSettings, RunSpec
from mnist_compare.runs.sources import DataSource
from mnist_compare.system.shutdown import SignalGuard

HELP = """Grade a class: every submission (a .py file or a Jupyter notebook with a network class, or a folder
of them, one per file or per subfolder) is checked like --check, each check in a process of its own under
--check_timeout and --check_memory, into one grade sheet. A notebook's definitions alone are taken (imports,
functions, classes, UPPER_CASE constants), so its training cells never run.

\b
Examples:
  mnist-compare grade submissions/ --output grades.csv --report grades.html
  mnist-compare grade submissions/ --optimizer adam --check_weights rubric.toml --gradescope_dir results/
  mnist-compare grade submissions/ --jobs 2            (two submissions at once)
  mnist-compare grade submissions/ --scheduler tcp://host:8786
  mnist-compare grade --audit --check_weights rubric.toml   (what each built-in bug scores)
"""

SHEET_HELP = "The grade sheet as .csv, .json or .md (one row per submission); repeatable."


def sheet_paths(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for path in values:
        if Path(path).suffix.lower() not in sheet.SHEET_SUFFIXES:
            raise click.BadParameter(f"{path}: a grade sheet is .csv, .json or .md", ctx=ctx, param=param)
        writable_output(ctx, param, path)
    return values


@click.command("grade", cls=SectionedCommand, help=HELP,
               short_help="A folder of submissions (.py, .ipynb) checked into one grade sheet.",
               context_settings=COMMAND_SETTINGS)
@click.argument("paths", nargs=-1, type=click.Path(exists=True), metavar="PATH...")
@section("Submissions",
         option("--net_class", metavar="NAME", help="The class to check in every submission [default: the one class "
                                                    "that defines train_on_batch]."),
         option("--audit", is_flag=True, help="Grade the built-in one-bug networks (the example with each classic "
                                              "bug) instead of PATHs: what each bug scores under the weights."),
         option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                help="The seed of every submission's checks (one seed: the same checks for the whole class)."))
@picked("The setting checked (as --check)", network, "--hidden_size", "--lr", "--batch_size", "--init",
        optimiser, "--optimizer", "--momentum", "--beta_1", "--beta_2", "--epsilon", what_to_train, "--data_dir")
@picked("Grading", grading, "--check_weights", "--check_timeout", "--check_memory")
@section("Outputs",
         option("--output", type=click.Path(dir_okay=False), multiple=True, callback=sheet_paths, help=SHEET_HELP),
         option("--gradescope_dir", type=click.Path(file_okay=False), metavar="DIR",
                help="One Gradescope results.json per submission, in DIR/<submission>/."),
         option("--report", type=click.Path(dir_okay=False), callback=writable_output, metavar="PATH.html",
                help="One page: the scores' histogram, per check how many failed and the most common diagnosis, "
                     "and each submission's table."))
@picked("Printing", outputs, "--table_format", "--quiet")
@section("Scale",
         option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                help="Submissions graded at once on this machine (each in a worker process of its own)."),
         option("--scheduler", metavar="ADDRESS", help="Grade the submissions as tasks on the Dask cluster at this "
                                                       "scheduler, e.g. tcp://host:8786; needs mnist-compare[dask]."))
def grade_command(paths: tuple[str, ...], audit: bool, **params: object) -> None:
    if audit == bool(paths):
        raise click.UsageError("name the submissions (PATH...) or --audit, not both" if audit else
                               "name the submissions to grade (PATH...), or --audit for the built-in bugs")
    sys.exit(grade(paths, audit, **params))


def one(values: list, name: str) -> object:
    if len(values) != 1:
        raise click.UsageError(f"--{name}: grade checks one setting, not a list")
    return values[0]


def settings_from(params: dict) -> GradeSettings:
    optimizer = OptimizerSettings(params["optimizer"], params["momentum"], params["beta_1"], params["beta_2"],
                                  params["epsilon"])
    template = RunSpec(object, one(params["hidden_size"], "hidden_size"), one(params["lr"], "lr"),
                       one(params["batch_size"], "batch_size"), seed=params["seed"], optimizer=optimizer,
                       init=params["init"])
    return GradeSettings(template, params["check_weights"] or DEFAULT_WEIGHTS,
                         Limits(params["check_timeout"], params["check_memory"]), params["net_class"])


def grade(paths: tuple[str, ...], audit: bool, **params) -> int:
    """Grade, then print and write what was graded: the exit code."""
    settings = settings_from(params)
    source = DataSource(params["data_dir"])
    with SignalGuard() as guard, outcome.internal_errors_reported(False), tempfile.TemporaryDirectory() as scratch:
        submissions = audit_submissions(Path(scratch)) if audit else submissions_in(list(paths))
        progress = Progress(len(submissions), params["quiet"], False, unit="submission")
        rows: list[Graded] = []

        def done(row: Graded) -> None:
            guard.check()  # a stop signal during this row: it is not kept (its checks were interrupted)
            rows.append(row)
            progress.job_done(f"{row.submission}: {row.score:g} of {row.max_score:g}")

        lost: list[str] = []
        try:
            lost = run(submissions, settings, source, params, done)
        except KeyboardInterrupt:
            pass
        finally:
            progress.close()
        guard.training_done()
        order = {s.name: i for i, s in enumerate(submissions)}
        rows.sort(key=lambda row: order[row.submission])
        written = finish(rows, settings, params, audit)
    if guard.stopped:
        return guard.exit_code()
    if lost:
        outcome.error(f"{len(lost)} submission(s) could not be graded: {', '.join(lost)} (see their rows)")
        return outcome.EXIT_RUN_ERROR
    return 0 if written else outcome.EXIT_OUTPUT_ERROR


def run(submissions: list, settings: GradeSettings, source: DataSource, params: dict, done) -> list[str]:
    """Grade here (one at a time, or --jobs at once) or on the cluster: the names the cluster lost."""
    if params["scheduler"]:
        return on_cluster(submissions, settings, source, params["scheduler"], done)
    from mnist_compare.grade.here import grade_here

    grade_here(submissions, settings, source, params["jobs"], done)
    return []


def on_cluster(submissions: list, settings: GradeSettings, source: DataSource, address: str, done) -> list[str]:
    from mnist_compare.cli.modes import cluster_client
    from mnist_compare.grade.cluster import grade_on_cluster

    client, workers = cluster_client(address)
    try:
        return grade_on_cluster(client, submissions, settings, source, workers, done)[1]
    finally:
        client.close()


def finish(rows: list[Graded], settings: GradeSettings, params: dict, audit: bool) -> bool:
    """The sheet printed and every output written (each attempted): False when any could not be."""
    options = {key: value for key, value in params.items() if key not in ("quiet",)}
    meta = files.run_metadata({**options, "audit": audit, "seed": settings.template.seed})
    written = all([outcome.attempted(path, lambda p=path: sheet.write_sheet(p, rows, meta))
                   for path in params["output"]])
    if params["gradescope_dir"]:
        written &= outcome.attempted(params["gradescope_dir"],
                                     lambda: sheet.write_gradescope_dir(params["gradescope_dir"], rows,
                                                                        settings.weights))
    if params["report"]:
        from mnist_compare.grade.report import write_grades_report

        written &= outcome.attempted(params["report"], lambda: write_grades_report(params["report"], rows, meta),
                                     (OSError, UnicodeError, ValueError))
    stdout = outcome.Stdout()
    stdout.echo(sheet.render_table(rows, params["table_format"]))
    return written and stdout.ok
