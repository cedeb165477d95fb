"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

    python main.py --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets

The table goes to stdout, progress and messages to stderr. Exit codes: 0 ok, 1 a net is below
--min_test_accuracy, 2 usage error, 3 a net diverged, 4 data error, 5 an output file not written,
70 internal error, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import importlib.util
import secrets
import sys

import click
from tabulate import tabulate_formats

import experiment
import keras_net
import outcome
import plan
import read_mnist
import report
from check import run_checks
from machine import kernel_pin_warning, load_average, machine_record
from optimizers import DEFAULT_OPTIMIZER, INITIALIZERS, OPTIMIZERS, OptimizerSettings
from options import (
    accuracy_threshold,
    backend_list,
    blas_threads_value,
    checked_seed,
    comma_list,
    existing_directory,
    net_class,
    writable_output,
    writable_outputs,
)
from progress import Progress
from results import EpochCallback, RunResult
from shutdown import SignalGuard, ignore_stop_signals
from spec import RunSpec
from user_net import train_reporting_errors
from worker import DataSource, Dispatcher

__version__ = "1.0.0"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--net_type", "--net-type", default="my", show_default=True, metavar="my|keras|PATH.py:CLASS",
              callback=net_class, help="Which net to train: my, keras, or your own network as PATH.py:CLASS or "
                                       "package.module:CLASS (loading it runs that file's code; README: Check your "
                                       "own network). With --compare_nets, it and the Keras twin.")
@click.option("--check", is_flag=True,
              help="Instead of training: check the net (--net_type) against the Keras twin, one row per check; "
                   "exit 7 when any fails.")
@click.option("--hidden_size", "--hidden-size", default="30", show_default=True, metavar="N[,N...]",
              callback=comma_list(int, 1), help="Hidden units; a comma list sweeps, e.g. 30,128,256,300.")
@click.option("--lr", default="0.1", show_default=True, metavar="X[,X...]",
              callback=comma_list(float, 0, inclusive=False),
              help="Learning rate (> 0); a comma list sweeps.")
@click.option("--batch_size", "--batch-size", default="128", show_default=True, metavar="N[,N...]",
              callback=comma_list(int, 1),
              help="Examples per minibatch; the last partial batch is averaged over its own size. Comma list sweeps.")
@click.option("--number_epochs", "--number-epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Passes over the 60,000 training images.")
@click.option("--compare_nets", "--compare-nets", is_flag=True,
              help="Train both nets (my_net first) on the same settings.")
@click.option("--paired", is_flag=True,
              help="With --compare_nets: identical initial weights and batch order for both nets.")
@click.option("--seed", type=int, default=None,
              help="Random seed in 0..2^32-1 (default: drawn at random and recorded in --output).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each net N times with seeds seed, seed+1, ...; the table shows mean ± std.")
@click.option("--data_dir", "--data-dir", type=click.Path(file_okay=False), envvar="MNIST_DATA_DIR",
              callback=existing_directory,
              help="Directory with the four IDX files (MNIST, Fashion-MNIST, KMNIST) [default: bundled data/mnist; "
                   "env MNIST_DATA_DIR].")
@click.option("--data_source", "--data-source", type=click.Choice(["bundled", "keras"]), default="bundled",
              show_default=True, help="bundled: IDX files (offline); keras: keras.datasets.mnist (needs its cache "
                                      "or the internet).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULT_OPTIMIZER.name, show_default=True,
              help="sgd (plain), momentum (SGD with --momentum) or adam; the same in both nets.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=DEFAULT_OPTIMIZER.momentum,
              show_default=True, help="Momentum for --optimizer momentum.")
@click.option("--beta_1", "--beta-1", type=click.FloatRange(0, 1, max_open=True), default=DEFAULT_OPTIMIZER.beta_1,
              show_default=True, help="Adam's first-moment decay.")
@click.option("--beta_2", "--beta-2", type=click.FloatRange(0, 1, max_open=True), default=DEFAULT_OPTIMIZER.beta_2,
              show_default=True, help="Adam's second-moment decay.")
@click.option("--epsilon", type=click.FloatRange(0, min_open=True), default=DEFAULT_OPTIMIZER.epsilon,
              show_default=True,
              help="Adam's epsilon (Keras' default).")
@click.option("--init", type=click.Choice(INITIALIZERS), default="glorot_uniform", show_default=True,
              help="Kernel initialiser of both layers (biases start at zero).")
@click.option("--table_format", "--table-format", type=click.Choice(tabulate_formats), default="github",
              show_default=True, metavar="FORMAT", help="Any tabulate format: github, latex, html, plain, grid, ...")
@click.option("--output", type=click.Path(dir_okay=False), callback=writable_outputs, multiple=True,
              help="Write results to a .md, .csv or .json file (JSON: full precision and metadata); repeatable.")
@click.option("--plot", type=click.Path(dir_okay=False), callback=writable_output,
              help="Save learning curves (loss and accuracy per epoch) to a .png file; a sweep writes one file "
                   "per setting, named PATH_<setting>.png.")
@click.option("--eval_every_epoch", "--eval-every-epoch", is_flag=True,
              help="Also measure test loss/accuracy after every epoch (not counted in Time(s)).")
@click.option("--confusion", is_flag=True, help="Print each net's test-set confusion matrix and per-class accuracy.")
@click.option("--min_test_accuracy", "--min-test-accuracy", type=float, callback=accuracy_threshold,
              help="CI gate: exit 1 if a net's test accuracy is below this; 97.5 (percent) and 0.975 mean the same.")
@click.option("--target_accuracy", "--target-accuracy", type=float, callback=accuracy_threshold,
              help="Report each net's training time to this test accuracy (evaluated after every epoch, not counted "
                   "in Time(s)); 97 (percent) and 0.97 mean the same.")
@click.option("--blas_threads", "--blas-threads", default="auto", show_default=True, metavar="auto|all|N",
              callback=blas_threads_value,
              help="my_net's BLAS threads: auto (one fewer for each core other processes hold, re-read every 0.25 s; "
                   "rounding changes when the count does), all (BLAS's own count: repeatable to the bit whatever "
                   "the load), or N.")
@click.option("--keras_backend", "--keras-backend", metavar="NAME[,NAME...]", callback=backend_list,
              help="Keras backends to train on: tensorflow, jax, torch; each its own row, keras_net[NAME] "
                   "[default: KERAS_BACKEND or tensorflow, named keras_net].")
@click.option("--steps_per_execution", "--steps-per-execution", type=click.IntRange(min=1), default=1,
              show_default=True, help="Keras: train steps per call (its speed lever; not on the torch backend).")
@click.option("--jit_compile", "--jit-compile", type=click.Choice(["auto", "true", "false"]), default="auto",
              show_default=True, help="Keras: XLA-compile the train step (auto: Keras' choice per backend).")
@click.option("--scheduler", metavar="ADDRESS", envvar="MNIST_COMPARE_SCHEDULER",
              help="Run the jobs (one per setting and seed, all its nets) on the Dask cluster at this scheduler, "
                   "e.g. tcp://host:8786 [env MNIST_COMPARE_SCHEDULER]; needs requirements-dask.txt.")
@click.option("--worker_threads", "--worker-threads", type=click.IntRange(min=1),
              help="With --scheduler: threads for every library on each worker [default: the worker's cores].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or messages on stderr, only errors.")
@click.option("-v", "--verbose", is_flag=True, help="A summary line per epoch on stderr.")
@click.version_option(__version__, "--version", prog_name="mnist-compare")
def main(net_type: type, check: bool, hidden_size: list[int], lr: list[float], batch_size: list[int],
         number_epochs: int, compare_nets: bool, paired: bool, seed: int | None, repeats: int, data_dir: str | None,
         data_source: str,
         optimizer: str, momentum: float, beta_1: float, beta_2: float, epsilon: float, init: str,
         table_format: str, output: tuple[str, ...], plot: str | None, eval_every_epoch: bool, confusion: bool,
         min_test_accuracy: float | None, target_accuracy: float | None, keras_backend: list[str] | None,
         steps_per_execution: int, jit_compile: str, blas_threads: str, scheduler: str | None,
         worker_threads: int | None, quiet: bool, verbose: bool) -> None:
    """Train a hand-written NumPy network and/or its Keras twin on MNIST and print a comparison table.

    Time(s) is the wall time of training only; accuracies are in percent; losses are the mean
    cross-entropy over the full test and training sets after training.
    """
    with SignalGuard() as guard, outcome.internal_errors_reported(verbose):
        if paired and not compare_nets:
            raise click.UsageError("--paired needs --compare_nets (it pairs the two nets)")
        refuse_oversized(hidden_size, batch_size)
        seed = checked_seed(seed, repeats, secrets.randbelow)
        template = RunSpec(net_type, hidden_size[0], lr[0], batch_size[0], number_epochs, seed, paired,
                           eval_every_epoch, OptimizerSettings(optimizer, momentum, beta_1, beta_2, epsilon), init,
                           target_accuracy=target_accuracy, blas_threads=blas_threads,
                           steps_per_execution=steps_per_execution,
                           jit_compile=jit_compile)
        contenders = plan.contenders(template, compare_nets, keras_backend)
        if check:
            sys.exit(check_net(template, DataSource(data_dir, data_source == "keras"), table_format, output))
        specs = experiment.plan_runs(contenders, hidden_size, lr, batch_size, repeats)
        progress = Progress(len(specs), quiet, verbose)
        progress.note(kernel_pin_warning() or "")
        load_before = load_average()
        progress.note(f"loading MNIST from {data_dir or ('Keras' if data_source == 'keras' else 'data/mnist')}")
        source = DataSource(data_dir, data_source == "keras")
        if scheduler:
            results = train_on_cluster(specs, source, scheduler, worker_threads, quiet)
        else:
            results = train_all(specs, source, progress, guard)
        guard.training_done()
        meta = {**report.run_metadata(recorded_options(seed)),
                "machine": machine_record(load_before)}
        written = outcome.write_outputs(results, meta, output)
        if plot and results:
            written &= outcome.write_plot(results, plot, plot_title(template, hidden_size, lr, batch_size))
        if results:
            outcome.print_results(outcome.Stdout(), results, table_format, confusion)
        outcome.warn_about(results, min_test_accuracy, quiet)
        sys.exit(guard.exit_code() if guard.stopped else outcome.exit_code(results, min_test_accuracy, written))


def train_all(specs: list[RunSpec], source: DataSource, progress: Progress, guard: SignalGuard) -> list[RunResult]:
    """Load the data, then train every spec (a Keras run on another backend in a worker process); a signal
    keeps the finished runs and marks the running one (see shutdown.py). Exit 4 on a data error."""

    def start_run(spec: RunSpec) -> EpochCallback:
        guard.check()
        return guard.watching(progress.start(spec))

    dispatcher = Dispatcher(source)

    def train_one(spec: RunSpec, data: experiment.Dataset, on_epoch_end: EpochCallback) -> RunResult:
        if spec.net in plan.BUILTIN_NETS.values():
            return dispatcher(spec, data, on_epoch_end)
        return train_reporting_errors(dispatcher, spec, data, on_epoch_end)

    try:
        data = load_data_or_exit(source)
        results, _ = experiment.run_all(specs, data, start_run, progress.finish, train_one)
    except KeyboardInterrupt:  # while the data loaded: no run had started
        results = []
    progress.close()
    return results


def refuse_oversized(hidden_sizes: list[int], batch_sizes: list[int]) -> None:
    """A usage error, before any work, when a hidden size would not fit in memory."""
    available = experiment.physical_memory_bytes()
    for hidden in hidden_sizes:
        needed = max(experiment.estimated_memory_bytes(hidden, b) for b in batch_sizes)
        if needed > 0.8 * available:
            raise click.BadParameter(f"{hidden} needs about {needed / 2**30:.1f} GiB, more than this machine's "
                                     f"{available / 2**30:.1f} GiB allows", param_hint="'--hidden_size'")


def train_on_cluster(specs: list[RunSpec], source: DataSource, address: str, threads: int | None,
                     quiet: bool) -> list[RunResult]:
    """The specs as jobs on the Dask cluster at `address` (cluster.py); exit 2, before any training, when Dask
    is not installed, nothing answers there, or no worker has this machine's library versions."""
    if importlib.util.find_spec("distributed") is None:
        raise click.UsageError("--scheduler needs Dask: pip install -r requirements-dask.txt")
    import cluster

    try:
        client = cluster.connect(address)
        workers = cluster.usable_workers(client, lambda line: click.echo(f"Warning: {line}", err=True))
    except cluster.ClusterError as err:
        raise click.UsageError(str(err)) from None
    jobs = Progress(len(cluster.jobs_of(specs)), quiet, False, unit="job")

    def job_done(results: list[RunResult]) -> None:
        job, info = results[0].spec.describe().split(" ", 1)[1], results[0].net_info
        jobs.job_done(f"job {job} on {info.get('host')}")
        if info.get("retries"):
            click.echo(f"Note: job {job} was re-run after its worker died ({info['retries']} time(s))", err=True)

    try:
        results, _ = cluster.run_on_cluster(client, specs, source, threads, workers, job_done)
    finally:
        jobs.close()
        client.close()
    return results


def recorded_options(seed: int) -> dict:
    """The options as results files record them: each value as parsed, the seed drawn, --net_type as given."""
    context = click.get_current_context()
    return {**context.params, "seed": seed, "net_type": context.meta.get("net_type", "my")}


def check_net(spec: RunSpec, source: DataSource, table_format: str, outputs: tuple[str, ...]) -> int:
    """--check: every check of spec.net against the Keras twin, printed and written; 0 when all pass."""
    checks = run_checks(spec, load_data_or_exit(source), keras_net.KerasNet)
    meta = report.run_metadata(recorded_options(spec.seed))
    written = outcome.write_checks(checks, meta, outputs)
    outcome.Stdout().echo(report.render_checks(checks, table_format))
    if any(c.status == "FAIL" for c in checks):
        return outcome.EXIT_CHECK_FAILED
    return 0 if written else outcome.EXIT_OUTPUT_ERROR


def load_data_or_exit(source: DataSource) -> experiment.Dataset:
    """The four arrays of read_mnist.load_data, from the IDX files or Keras' copy; exit 4 on a data error."""
    try:
        return source.load()
    except read_mnist.MnistDataError as err:
        outcome.error(str(err))
        sys.exit(outcome.EXIT_DATA_ERROR)


def plot_title(template: RunSpec, hidden_sizes: list[int], lrs: list[float], batch_sizes: list[int]) -> str:
    settings = (f"hidden {','.join(map(str, hidden_sizes))}, lr {','.join(map(str, lrs))}, "
                f"batch {','.join(map(str, batch_sizes))}, {template.number_epochs} epochs, "
                f"{template.optimizer.name}, {template.init}")
    return f"MNIST learning curves: {settings}"


if __name__ == "__main__":
    try:
        main()
    finally:
        ignore_stop_signals()
