"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

    mnist-compare --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets

The command turns its options into one typed Options value and a RunSpec template first, refuses what the
chosen mode would ignore, then one `if` picks the mode (modes.py). The table goes to stdout, progress and
messages to stderr; exit codes are outcome.py's (README: Exit codes).
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from dataclasses import dataclass

import click

from mnist_compare import __version__
from mnist_compare.cli import modes, outcome, plan
from mnist_compare.cli.options import SectionedCommand, dashes_to_underscores, every_option
from mnist_compare.cli.progress import Progress
from mnist_compare.cli.values import checked_seed
from mnist_compare.output import baseline, files
from mnist_compare.records.machine import kernel_pin_warning, load_average, machine_record
from mnist_compare.records.optimizers import OptimizerSettings
from mnist_compare.records.results import RunResult
from mnist_compare.records.shutdown import SignalGuard, ignore_stop_signals
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs import runner
from mnist_compare.runs.sources import DataSource

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
"""


@dataclass(frozen=True)
class Options:
    """The command's options as parsed and checked by values.py: one typed value, read as options.x after."""

    net_type: type
    compare_nets: bool
    check: bool
    paired: bool
    repeats: int
    seed: int | None
    data_dir: str | None
    data_source: str
    hidden_size: list[int]
    lr: list[float]
    batch_size: list[int]
    number_epochs: int
    init: str
    optimizer: str
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float
    table_format: str
    output: tuple[str, ...]
    plot: str | None
    eval_every_epoch: bool
    confusion: bool
    report: str | None
    profile: bool
    min_test_accuracy: float | None
    target_accuracy: float | None
    quiet: bool
    verbose: bool
    baseline: str | None
    gradescope: str | None
    check_weights: dict[str, float] | None
    margin: float
    max_slowdown: float
    keras_backend: list[str] | None
    steps_per_execution: int
    jit_compile: str
    blas_threads: str
    scheduler: str | None
    worker_threads: int | None

    @property
    def mode(self) -> str:
        return "check" if self.check else "cluster" if self.scheduler else "here"

    @property
    def source(self) -> DataSource:
        return DataSource(self.data_dir, self.data_source == "keras")

    def template(self, seed: int) -> RunSpec:
        """The RunSpec of the first setting; sweeps and repeats replace its sizes, lr and seed."""
        return RunSpec(self.net_type, self.hidden_size[0], self.lr[0], self.batch_size[0], self.number_epochs, seed,
                       self.paired, self.eval_every_epoch,
                       OptimizerSettings(self.optimizer, self.momentum, self.beta_1, self.beta_2, self.epsilon),
                       self.init, target_accuracy=self.target_accuracy, blas_threads=self.blas_threads,
                       steps_per_execution=self.steps_per_execution, jit_compile=self.jit_compile)


@click.command(cls=SectionedCommand, help=EXAMPLES, context_settings={
    "help_option_names": ["-h", "--help"], "max_content_width": 110, "token_normalize_func": dashes_to_underscores})
@every_option
@click.version_option(__version__, "--version", prog_name="mnist-compare")
def main(**params: object) -> None:
    options = Options(**params)
    with SignalGuard() as guard, outcome.internal_errors_reported(options.verbose):
        results: list[RunResult] = []
        with contextlib.suppress(KeyboardInterrupt):  # a signal before any run started (planning, loading data)
            results = run_mode(options, guard)
        guard.training_done()
        if options.check:  # stopped before the first check: nothing to print or write
            sys.exit(guard.exit_code())
        finish(options, results, guard)


def run_mode(options: Options, guard: SignalGuard) -> list[RunResult]:
    """Check what the mode cannot honour and what cannot run, then train (here or on the cluster) and return
    the results; --check exits from here."""
    ctx = click.get_current_context()
    modes.refuse_what_the_mode_ignores(ctx, options.mode)
    if options.paired and not options.compare_nets:
        raise click.UsageError("--paired needs --compare_nets (it pairs the two nets)")
    modes.refuse_without_what_they_need(ctx, {"baseline": options.baseline is not None, "check": options.check})
    ctx.meta["baseline"] = outcome.read_baseline_or_exit(options.baseline)
    modes.refuse_oversized(options.hidden_size, options.batch_size)
    seed = checked_seed(options.seed, options.repeats, secrets.randbelow)
    ctx.meta["seed"] = seed
    template = options.template(seed)
    contenders = plan.contenders(template, options.compare_nets, options.keras_backend)
    if options.check:
        meta = files.run_metadata(recorded_options(seed), options.net_type)
        sys.exit(modes.check_net(template, options.source, options.table_format, options.output, options.report,
                                 (options.gradescope, options.check_weights), meta, guard))
    specs = runner.plan_runs(contenders, options.hidden_size, options.lr, options.batch_size, options.repeats)
    modes.refuse_unmatched(ctx.meta["baseline"], specs)
    ctx.meta["load_before"] = load_average()
    if options.scheduler:
        return modes.train_on_cluster(specs, options.source, options.scheduler, options.worker_threads,
                                      options.quiet)
    progress = Progress(len(specs), options.quiet, options.verbose)
    progress.note(kernel_pin_warning() or "")
    where = options.data_dir or ("Keras" if options.source.keras else "the bundled files")
    progress.note(f"loading MNIST from {where}")
    return modes.train_here(specs, options.source, progress, guard, options.profile)


def finish(options: Options, results: list[RunResult], guard: SignalGuard) -> None:
    """Write every output, print the table (and the comparison with --baseline), warn, and exit with the code
    that says how the run ended."""
    ctx = click.get_current_context()
    meta = {**files.run_metadata(recorded_options(ctx.meta.get("seed", options.seed)), options.net_type),
            "machine": machine_record(ctx.meta.get("load_before", load_average())),
            **({"profiles": ctx.meta["profiles"]} if "profiles" in ctx.meta else {})}
    comparison = against_baseline(ctx.meta.get("baseline"), results, meta, options)
    written = outcome.write_outputs(results, meta, options.output, comparison)
    if options.plot and results:
        written &= outcome.write_plot(results, options.plot, plot_title(options))
    written &= outcome.write_report(options.report, meta, results=results, comparison=comparison)
    if results:
        stdout = outcome.Stdout()
        outcome.print_results(stdout, results, options.table_format, options.confusion)
        outcome.print_comparison(stdout, comparison, options.table_format)
        outcome.print_profiles(stdout, meta.get("profiles", []), options.table_format)
        written &= stdout.ok
    outcome.warn_about(results, options.min_test_accuracy, options.quiet)
    regression = comparison is not None and comparison.regression
    sys.exit(guard.exit_code() if guard.stopped
             else outcome.exit_code(results, options.min_test_accuracy, written, regression))


def against_baseline(base: baseline.SavedRuns | None, results: list[RunResult], meta: dict,
                     options: Options) -> baseline.Comparison | None:
    """The run just made against --baseline; None without one, or (with a line on stderr) when none of its
    finished runs shares a net and setting with the baseline."""
    if base is None or not any(r.finished for r in results):
        return None
    new = baseline.saved_runs("this run", {**meta, "runs": [r.to_dict() for r in results]})
    try:
        return baseline.compare(base, new, options.margin, options.max_slowdown)
    except baseline.ResultsFileError as err:
        outcome.error(str(err))
        return None


def recorded_options(seed: int | None) -> dict:
    """The options as results files record them: each value as parsed, the seed drawn, --net_type as given."""
    context = click.get_current_context()
    return {**context.params, "seed": seed, "net_type": context.meta.get("net_type", "my")}


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
    """`compare BASE NEW ...` runs the compare command (cli/compare.py); any other command line trains."""
    if sys.argv[1:2] == ["compare"]:
        from mnist_compare.cli.compare import compare_command

        return compare_command.main(sys.argv[2:], prog_name="mnist-compare compare", standalone_mode=False)
    return main.main(standalone_mode=False)


if __name__ == "__main__":
    run()
