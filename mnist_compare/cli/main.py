"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

    mnist-compare --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets

The command is a Click group whose default trains: it turns its options into one typed Options value, makes
the frozen Plan (plan.py; refusals first), runs the mode MODES names, then writes and prints; it exits here
alone. The table goes to stdout, progress and messages to stderr; exit codes are outcome.py's (README: Exit
codes).
"""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from mnist_compare import __version__
from mnist_compare.check.checks import DEFAULT_WEIGHTS
from mnist_compare.check.sandbox import Limits, remote_class
from mnist_compare.cli import outcome
from mnist_compare.cli.compare import compare_command
from mnist_compare.cli.example import example_command
from mnist_compare.cli.grade import grade_command
from mnist_compare.cli.history import history_command
from mnist_compare.cli.modes import MODES, Made
from mnist_compare.cli.options import COMMAND_SETTINGS, SectionedGroup, every_option
from mnist_compare.cli.plan import Options, Plan, make_plan
from mnist_compare.cli.refusals import COMMAND_LINE, ENVIRONMENT
from mnist_compare.cli.values import NetChoice, loaded_here
from mnist_compare.data import idx
from mnist_compare.nets.user_net import NetLoadError
from mnist_compare.output import baseline, files, report
from mnist_compare.records import saved
from mnist_compare.records.check import FAIL
from mnist_compare.records.results import RunResult
from mnist_compare.system.machine import load_average, machine_record
from mnist_compare.system.shutdown import SignalGuard, ignore_stop_signals

EXAMPLES = """Train a hand-written NumPy network and/or its Keras twin on MNIST and print a comparison table.

Time(s) is the wall time of training only; accuracies are in percent; losses are the mean
cross-entropy over the full test and training sets after training. Every option also takes dashes:
--hidden-size, --number-epochs.

\b
Examples:
  mnist-compare --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets
  mnist-compare --compare_nets --hidden_size 30,128 --repeats 3 --keras_backend tensorflow,jax --output r.json
  mnist-compare --net_type examples/student_net.py:StudentNet --check
  mnist-compare --compare_nets --repeats 3 --baseline base.json --report report.html
  mnist-compare compare base.json new.json      (two saved results files; --help for its options)
  mnist-compare grade submissions/ --output grades.csv   (a class's submissions; --help for its options)
  mnist-compare example student_net > student_net.py     (an example network to start from)
"""


@click.group(cls=SectionedGroup, help=EXAMPLES, invoke_without_command=True, subcommand_metavar="[COMMAND [ARGS]...]",
             context_settings=COMMAND_SETTINGS)
@every_option
@click.version_option(__version__, "--version", prog_name="mnist-compare")
@click.pass_context
def main(ctx: click.Context, **params: object) -> None:
    """The training command (the group's default) and --check; `compare` is a command of its own. The only
    function that asks Click for its context: which options were given, and where from."""
    given = {name: where for name in params if (where := given_from(ctx.get_parameter_source(name)))}
    if ctx.invoked_subcommand is not None:
        if COMMAND_LINE in given.values():
            raise click.UsageError(f"options go after the command: mnist-compare {ctx.invoked_subcommand} ... "
                                   f"(--{next(n for n, w in given.items() if w == COMMAND_LINE)} came before it)")
        return
    try:
        params["net_type"] = net_loaded(params["net_type"], params["check"], params["check_timeout"],
                                        params["check_memory"])
    except NetLoadError as err:  # the net's file, not the command line, is wrong: one line, no usage block
        outcome.error(f"--net_type {err}")
        sys.exit(outcome.EXIT_USAGE)
    sys.exit(command(Options(**params, given=given)))


def net_loaded(choice: NetChoice, check: bool, seconds: float, memory: int) -> NetChoice:
    """--net_type with its class: a user's net is loaded here to train, and for --check in a process of its
    own (check/sandbox.py) whose stand-in class the checks use, so that its code never runs in this one."""
    if choice.net is not None or not check:
        return loaded_here(choice)
    return NetChoice(choice.text, remote_class(choice.text, Limits(seconds, memory)))


main.add_command(compare_command)
main.add_command(grade_command)
main.add_command(history_command)
main.add_command(example_command)


def given_from(source: ParameterSource | None) -> str | None:
    """Where a given option's value came from (refusals.COMMAND_LINE or ENVIRONMENT), None for a default."""
    return {ParameterSource.COMMANDLINE: COMMAND_LINE, ParameterSource.ENVIRONMENT: ENVIRONMENT}.get(source)


def command(options: Options) -> int:
    """Plan, run the mode, then write, print and warn: the exit code that says how the command ended."""
    with SignalGuard() as guard, outcome.internal_errors_reported(options.verbose):
        try:
            plan = make_plan(options, baseline_file)
        except saved.ResultsFileError as err:
            outcome.error(str(err))
            return err.exit_code
        except KeyboardInterrupt:  # a signal while planning: nothing ran
            plan = None
        made = None
        if plan is not None:
            try:
                made = MODES[options.mode](plan, options, guard)
            except KeyboardInterrupt:  # a signal before any run started (loading data)
                pass
            except idx.MnistDataError as err:
                outcome.error(str(err))
                return outcome.EXIT_DATA_ERROR
        guard.training_done()
        if options.check:
            return guard.exit_code() if made is None else finish_checks(options, plan, made.checks, guard)
        return finish(options, plan, made or Made(), guard)


def baseline_file(path: str | None) -> saved.SavedRuns | None:
    """The --baseline file, read before any training (a ResultsFileError says why it cannot be compared)."""
    return None if path is None else saved.read_results(path)


def finish_checks(options: Options, plan: Plan, checks: list, guard: SignalGuard) -> int:
    """--check's table printed and written (the checks a signal stopped marked INTERRUPTED): 7 when any
    check failed, 5 when an output could not be written, 128 + N when signal N stopped it."""
    meta = files.run_metadata(options.recorded(plan.seed), options.net_type.net, options.given)
    weights = options.check_weights or DEFAULT_WEIGHTS
    written = outcome.write_checks(checks, meta, options.output)
    written &= outcome.write_report(options.report, meta, options.report_title, checks=checks)
    written &= outcome.write_gradescope(options.gradescope, weights, checks, options.net_type.text)
    stdout = outcome.Stdout()
    stdout.echo(report.render_checks(checks, options.table_format))
    written &= stdout.ok
    if guard.stopped:
        return guard.exit_code()
    if any(c.status == FAIL for c in checks):
        return outcome.EXIT_CHECK_FAILED
    return 0 if written else outcome.EXIT_OUTPUT_ERROR


def finish(options: Options, plan: Plan | None, made: Made, guard: SignalGuard) -> int:
    """Write every output, print the table (and the comparison with --baseline), warn, and return the exit
    code that says how the run ended. `plan` is None when a signal came while planning."""
    results = made.results
    seed, load_before = (plan.seed, plan.load_before) if plan else (options.seed, None)
    meta = {**files.run_metadata(options.recorded(seed), options.net_type.net, options.given),
            "machine": machine_record(load_before or load_average()),
            **({"profiles": made.profiles} if made.profiles is not None else {}),
            **({"repeats_auto": made.repeats_auto} if made.repeats_auto is not None else {})}
    comparison = against_baseline(plan.baseline if plan else None, results, meta, options)
    written = outcome.write_outputs(results, meta, options.output, comparison)
    if options.history and results:
        written &= outcome.write_history_entry(options.history, results, meta, comparison)
    if options.plot and results:
        written &= outcome.write_plot(results, options.plot, plot_title(options))
    reported = outcome.write_report(options.report, meta, options.report_title, results=results,
                                    comparison=comparison)
    written &= reported
    if results:
        written &= outcome.log_to_trackers(results, meta, options.output, comparison,
                                           options.report if reported else None)
    if results:
        stdout = outcome.Stdout()
        outcome.print_results(stdout, results, options.table_format, options.confusion)
        outcome.print_comparison(stdout, comparison, options.table_format)
        outcome.print_profiles(stdout, meta.get("profiles", []), options.table_format)
        written &= stdout.ok
    outcome.warn_about(results, options.min_test_accuracy, options.quiet)
    regression = comparison is not None and comparison.regression
    return guard.exit_code() if guard.stopped \
        else outcome.exit_code(results, options.min_test_accuracy, written, regression)


def against_baseline(base: saved.SavedRuns | None, results: list[RunResult], meta: dict,
                     options: Options) -> baseline.Comparison | None:
    """The run just made against --baseline; None without one, or (with a line on stderr) when none of its
    finished runs shares a net and setting with the baseline."""
    if base is None or not any(r.finished for r in results):
        return None
    new = saved.saved_runs("this run", {**meta, "runs": [r.to_dict() for r in results]})
    try:
        return baseline.compare(base, new, options.margin, options.max_slowdown)
    except saved.ResultsFileError as err:
        outcome.error(str(err))
        return None


def plot_title(options: Options) -> str:
    settings = (f"hidden {','.join(map(str, options.hidden_size))}, lr {','.join(map(str, options.lr))}, "
                f"batch {','.join(map(str, options.batch_size))}, {options.number_epochs} epochs, "
                f"{options.optimizer}, {options.init}")
    return f"MNIST learning curves: {settings}"


def run() -> None:
    """The console script `mnist-compare`, `python -m mnist_compare` and the root's `python main.py`.

    Its own SignalGuard covers what comes before main's: parsing the options, which may import a user's net
    (loading a file can take a while), so that a stop signal at any moment exits 128 + N, never Click's
    `Aborted!` (exit 1) or a traceback."""
    guard = SignalGuard()
    try:
        with guard:
            code = chosen_command()
    except SystemExit as done:
        code = done.code
    except click.ClickException as err:
        err.show()
        code = err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = guard.exit_code()
    finally:
        ignore_stop_signals()
    sys.exit(code or 0)


def chosen_command() -> int | None:
    """The command group: `compare BASE NEW ...` runs the compare command (cli/compare.py); any other
    command line trains (or checks). Shell completion answers _MNIST_COMPARE_COMPLETE from every entry point
    (`python main.py` and `python -m mnist_compare` too): `eval "$(_MNIST_COMPARE_COMPLETE=bash_source
    mnist-compare)"`."""
    return main.main(standalone_mode=False, complete_var="_MNIST_COMPARE_COMPLETE")


if __name__ == "__main__":
    run()
