"""How a command ends: results files written first, then the table on stdout, warnings, the exit code.

Nothing finished is lost to what happens at the end: every output file is attempted even when another
fails, a reader that closed stdout (`| head -1`) only stops the printing, and an unexpected error gets
one line, its own exit code and a log file with the traceback.
Not for: training (runs/runner.py) or the formats themselves (report.py, plots.py).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator

import click

from mnist_compare.output import baseline, files, report, stats, trackers
from mnist_compare.output.verdict import grouped, timing_warnings
from mnist_compare.records.results import DIVERGED, ERROR, OUT_OF_MEMORY, RunResult, is_out_of_memory

EXIT_BELOW_THRESHOLD, EXIT_USAGE, EXIT_DIVERGED, EXIT_DATA_ERROR, EXIT_OUTPUT_ERROR, EXIT_RUN_ERROR = 1, 2, 3, 4, 5, 6
EXIT_CHECK_FAILED = 7  # --check: at least one check failed
EXIT_REGRESSION = 8  # against --baseline: a net and setting worse than the baseline (accuracy or time)
EXIT_OUT_OF_MEMORY = 9  # a run, or the command, ran out of memory: not a bug, not a verdict on the nets
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE of sysexits.h: a bug, never a verdict on the nets


class Stdout:
    """click.echo to stdout until the reader goes away; after a broken pipe, printing stops quietly. A
    standard output that is closed or cannot be written (a full disk, /dev/full) is one error line and
    makes `ok` false (exit 5, as for an output file); the files are written before, so nothing is lost."""

    def __init__(self) -> None:
        self.broken = False
        self.ok = True

    def echo(self, text: str = "") -> None:
        if self.broken or not self.ok:
            return
        try:
            if sys.stdout is None:
                raise OSError("standard output is closed")
            click.echo(text)
            sys.stdout.flush()
        except BrokenPipeError:
            self.broken = True
            silence_stdout()
        except (OSError, ValueError) as err:  # ValueError: a closed file object
            self.ok = False
            error(f"cannot print the table to standard output: {reason(err)}")
            silence_stdout()


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so that the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real fd 1 (e.g. a test's runner)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def error(message: str) -> None:
    """One line on stderr."""
    click.echo(f"Error: {message}", err=True)


def reason(err: BaseException) -> str:
    """An OSError's own words ("No space left on device"), or the exception's message."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return " ".join(str(err).split()) or type(err).__name__


def attempted(path: str, write: Callable[[], object], failures: tuple = (OSError, UnicodeError)) -> bool:
    """write() for the file at `path`; False, with one line naming the file and the reason, when it failed."""
    try:
        write()
    except failures as err:
        error(f"cannot write {path}: {reason(err)}")
        return False
    return True


def judged_exit(text: str, written: bool, regression: bool) -> int:
    """`compare`'s and `history`'s end, their files written: the table on stdout, then 5 when an output
    failed, 8 on a regression, else 0."""
    stdout = Stdout()
    stdout.echo(text)
    if not (written and stdout.ok):
        return EXIT_OUTPUT_ERROR
    return EXIT_REGRESSION if regression else 0


def write_outputs(results: list[RunResult], meta: dict, outputs: tuple[str, ...],
                  comparison: baseline.Comparison | None = None) -> bool:
    """Write every --output file (each attempted; trackers are log_to_trackers'); False when any failed."""
    return all([attempted(path, lambda p=path: files.write_results(p, results, meta, comparison))
                for path in outputs if not trackers.tracker_of(path)])


def log_to_trackers(results: list[RunResult], meta: dict, outputs: tuple[str, ...],
                    comparison: baseline.Comparison | None, report: str | None) -> bool:
    """Log into every --output tracker (mlflow://, tensorboard://), after the files (the report is attached
    to MLflow's run); False when any failed: an unreachable server, a read-only store, a full disk."""
    return all([attempted(target, lambda t=target: trackers.log_results(t, results, meta, comparison, report),
                          (Exception,)) for target in outputs if trackers.tracker_of(target)])


def write_history_entry(directory: str, results: list[RunResult], meta: dict,
                        comparison: baseline.Comparison | None) -> bool:
    """--history DIR: the results JSON saved as DIR/<date>_<commit>[-dirty].json (history.entry_name)."""
    from mnist_compare.output.history import entry_name

    name = entry_name(meta)
    path = os.path.join(directory, name)
    for copy in range(2, 100):  # two runs of one commit within a second: both kept
        if not os.path.exists(path):
            break
        path = os.path.join(directory, name.replace(".json", f"-{copy}.json"))

    def save() -> None:
        os.makedirs(directory, exist_ok=True)
        files.write_results(path, results, meta, comparison)

    return attempted(path, save)


def write_checks(checks: list, meta: dict, outputs: tuple[str, ...]) -> bool:
    """Write every --output file of --check (each attempted); False when any failed."""
    return all([attempted(path, lambda p=path: files.write_checks(p, checks, meta)) for path in outputs])


def write_report(path: str | None, meta: dict, title: str | None = None, **parts) -> bool:
    """The --report HTML page (html_report.py) of what `parts` holds; True when there is none to write."""
    from mnist_compare.output import html_report

    if path is None:
        return True
    return attempted(path, lambda: html_report.write_report(path, meta, **parts, title=title),
                     (OSError, UnicodeError, ValueError))


def write_plot(results: list[RunResult], path: str, title: str) -> bool:
    """The learning curves (one PNG per setting of a sweep); False when writing failed."""
    from mnist_compare.output import plots

    plot = lambda: plots.plot_each_setting(results, path, title, report.varying_settings(results))  # noqa: E731
    return attempted(path, plot, (OSError, UnicodeError, ValueError))  # matplotlib: some failures are ValueError


def print_results(out: Stdout, results: list[RunResult], table_format: str, confusion: bool) -> None:
    """The table, a blank line (so that Markdown does not read the verdict as a row), the verdict lines,
    and with `confusion` each net's confusion matrix."""
    out.echo(report.render_table(results, table_format))
    lines = report.summary_lines(results)
    if lines:
        out.echo()
    for line in lines:
        out.echo(line)
    if confusion:
        for result in (r for r in results if r.confusion):
            out.echo(f"\n{result.name} (seed {result.seed}) confusion matrix on the test set:")
            out.echo(report.render_confusion(result, table_format))


def print_profiles(out: Stdout, profiles: list[dict], table_format: str) -> None:
    """Each --profile table after a blank line."""
    for profile in profiles:
        out.echo()
        out.echo(report.render_profile(profile, table_format))


def write_gradescope(path: str | None, weights: dict[str, float], checks: list, net_type: str) -> bool:
    """--gradescope's results.json, each check worth its weight; True when none was asked for."""
    from mnist_compare.output import gradescope

    if path is None:
        return True
    return attempted(path, lambda: gradescope.write_gradescope(path, checks, weights, net_type))


def print_comparison(out: Stdout, comparison: baseline.Comparison | None, table_format: str) -> None:
    """The comparison against --baseline, after a blank line, when there is one."""
    if comparison is not None:
        out.echo()
        out.echo(files.render_comparison(comparison, table_format))


def warn_about(results: list[RunResult], min_test_accuracy: float | None, quiet: bool = False) -> None:
    """One stderr line per problem: an error, divergence (with advice), a training loss that rose, a missed
    gate; and, unless quiet, each reason to distrust a time (verdict.timing_warnings) or a gate that would
    fail a net like this one by chance."""
    for result in results:
        if result.status == ERROR:
            error(f"{result.name} (seed {result.seed}) stopped with an error: {result.error}")
        elif result.status == DIVERGED:
            error(f"{result.name} diverged at epoch {result.diverged_epoch} (lr {result.spec.lr}); "
                  "try a smaller learning rate, e.g. --lr 0.1")
        elif result.finished and result.final_loss_rose():
            click.echo(f"Warning: {result.name}'s training loss rose from {result.initial_train_loss:.4f} before "
                       f"training to {result.train_loss:.4f} (lr {result.spec.lr} is likely too large)", err=True)
    for line in [] if quiet else timing_warnings(results) + flaky_gate_warnings(results, min_test_accuracy):
        click.echo(f"Warning: {line}", err=True)
    for name, accuracies in below_threshold(results, min_test_accuracy):
        over = f"mean test accuracy over {len(accuracies)} runs" if len(accuracies) > 1 else "test accuracy"
        error(f"{name} {over} {100 * statistics.fmean(accuracies):.2f}% is below the required "
              f"{100 * min_test_accuracy:.2f}%")


def finished_accuracies(results: list[RunResult]) -> dict[str, list[float]]:
    """The label of each (setting, net) (`my_net`, or `my_net at (30, 0.1, ...)` in a sweep) -> the test
    accuracies of its finished runs."""
    groups = grouped(results)
    sweep = len({setting for setting, _ in groups}) > 1
    accuracies = {}
    for (setting, name), runs in groups.items():
        values = [r.test_accuracy for r in runs if r.finished]
        if values:
            accuracies[f"{name} at {setting}" if sweep else name] = values
    return accuracies


def below_threshold(results: list[RunResult], threshold: float | None) -> list[tuple[str, list[float]]]:
    """The (label, accuracies) whose mean over the repeats is below the gate: the gate judges the mean."""
    if threshold is None:
        return []
    return [(name, values) for name, values in finished_accuracies(results).items()
            if statistics.fmean(values) < threshold]


def flaky_gate_warnings(results: list[RunResult], threshold: float | None) -> list[str]:
    """A line for each net whose measured spread says the gate would fail it in more than 5% of runs of this
    many repeats (stats.gate_failure_rate), with the gate and the repeats that would fail it 5% of the time."""
    lines = []
    for name, values in finished_accuracies(results).items() if threshold is not None else ():
        if len(values) < 2 or statistics.stdev(values) == 0:
            continue
        rate = stats.gate_failure_rate(values, threshold)
        if rate > stats.ALPHA:
            repeats = stats.repeats_for(values, threshold)
            advice = f" or use --repeats {repeats}" if repeats is not None and repeats > len(values) else ""
            lines.append(f"the gate --min_test_accuracy {100 * threshold:.2f} fails a net like {name} (mean "
                         f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f}% over "
                         f"{len(values)} runs) about {100 * rate:.0f}% of the time; lower it to "
                         f"{100 * stats.safe_gate(values):.2f}{advice}")
    return lines


def exit_code(results: list[RunResult], min_test_accuracy: float | None, outputs_written: bool,
              regression: bool = False) -> int:
    """The most serious outcome: a run out of memory (9), a run that raised (6), an output not written (5), a
    net diverged (3), a regression against --baseline (8), a net below the gate (1)."""
    if any(r.status == ERROR and (r.error or "").startswith(OUT_OF_MEMORY) for r in results):
        return EXIT_OUT_OF_MEMORY
    if any(r.status == ERROR for r in results):
        return EXIT_RUN_ERROR
    if not outputs_written:
        return EXIT_OUTPUT_ERROR
    if any(r.status == DIVERGED for r in results):
        return EXIT_DIVERGED
    if regression:
        return EXIT_REGRESSION
    if below_threshold(results, min_test_accuracy):
        return EXIT_BELOW_THRESHOLD
    return 0


def where_memory_ran_out(err: BaseException) -> str:
    """`in load_data (idx.py:201)`: the tool's innermost function the failed allocation was made for."""
    ours = [frame for frame in traceback.extract_tb(err.__traceback__) if "mnist_compare" in frame.filename]
    if not ours:
        return "while starting"
    return f"in {ours[-1].name} ({os.path.basename(ours[-1].filename)}:{ours[-1].lineno})"


@contextlib.contextmanager
def internal_errors_reported(verbose: bool) -> Iterator[None]:
    """Turn an unexpected exception into one line and exit 70, the traceback written to a log file (and to
    stderr with --verbose). Click's own errors and exits pass through."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as err:
        if is_out_of_memory(err):
            error(f"{OUT_OF_MEMORY} {where_memory_ran_out(err)}: {type(err).__name__}"
                  f"{': ' + reason(err) if str(err) else ''}; free memory or raise the limit (ulimit -v), or train "
                  "a smaller net (--hidden_size, --batch_size)")
            sys.exit(EXIT_OUT_OF_MEMORY)
        text = traceback.format_exc()
        log = os.path.join(tempfile.gettempdir(), f"mnist-compare-error-{time.strftime('%Y%m%d-%H%M%S')}"
                                                  f"-{os.getpid()}.log")
        try:
            with open(log, "w") as f:
                f.write(text)
        except OSError:
            log = "(no log: the temporary directory is not writable)"
        if verbose:
            click.echo(text.rstrip(), err=True)
        error(f"internal error, a bug in mnist-compare: {type(err).__name__}: {reason(err)}; "
              f"the traceback is in {log}")
        sys.exit(EXIT_INTERNAL_ERROR)
