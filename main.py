"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

    python main.py --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets

The table goes to stdout, progress and messages to stderr. Exit codes: 0 ok, 1 a net is below
--min_test_accuracy, 2 usage error, 3 a net diverged, 4 data error, 5 an output file not written,
70 internal error, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import replace

import click
from tabulate import tabulate_formats

import experiment
import keras_net
import my_net
import outcome
import read_mnist
import report
from keras_backends import backend_problem, current_backend
from machine import kernel_pin_warning, load_average, machine_record
from optimizers import DEFAULT_OPTIMIZER, INITIALIZERS, OPTIMIZERS, OptimizerSettings
from options import (
    accuracy_threshold,
    backend_list,
    checked_seed,
    comma_list,
    existing_directory,
    writable_output,
    writable_outputs,
)
from progress import Progress
from results import EpochCallback, RunResult
from shutdown import SignalGuard, ignore_stop_signals
from spec import RunSpec
from worker import DataSource, Dispatcher

__version__ = "1.0.0"
# --net_type -> the net's class; with --compare_nets, every one in this order. Importing keras_net does not
# import TensorFlow: building a KerasNet does.
NET_TYPES = {"my": my_net.NeuralNetwork, "keras": keras_net.KerasNet}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--net_type", "--net-type", type=click.Choice(list(NET_TYPES)), default="my", show_default=True,
              help="Which net to train (both with --compare_nets).")
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
@click.option("--keras_backend", "--keras-backend", metavar="NAME[,NAME...]", callback=backend_list,
              help="Keras backends to train on: tensorflow, jax, torch; each its own row, keras_net[NAME] "
                   "[default: KERAS_BACKEND or tensorflow, named keras_net].")
@click.option("--steps_per_execution", "--steps-per-execution", type=click.IntRange(min=1), default=1,
              show_default=True, help="Keras: train steps per call (its speed lever; not on the torch backend).")
@click.option("--jit_compile", "--jit-compile", type=click.Choice(["auto", "true", "false"]), default="auto",
              show_default=True, help="Keras: XLA-compile the train step (auto: Keras' choice per backend).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or messages on stderr, only errors.")
@click.option("-v", "--verbose", is_flag=True, help="A summary line per epoch on stderr.")
@click.version_option(__version__, "--version", prog_name="mnist-compare")
def main(net_type: str, hidden_size: list[int], lr: list[float], batch_size: list[int], number_epochs: int,
         compare_nets: bool, paired: bool, seed: int | None, repeats: int, data_dir: str | None, data_source: str,
         optimizer: str, momentum: float, beta_1: float, beta_2: float, epsilon: float, init: str,
         table_format: str, output: tuple[str, ...], plot: str | None, eval_every_epoch: bool, confusion: bool,
         min_test_accuracy: float | None, target_accuracy: float | None, keras_backend: list[str] | None,
         steps_per_execution: int, jit_compile: str, quiet: bool, verbose: bool) -> None:
    """Train a hand-written NumPy network and/or its Keras twin on MNIST and print a comparison table.

    Time(s) is the wall time of training only; accuracies are in percent; losses are the mean
    cross-entropy over the full test and training sets after training.
    """
    with SignalGuard() as guard, outcome.internal_errors_reported(verbose):
        if paired and not compare_nets:
            raise click.UsageError("--paired needs --compare_nets (it pairs the two nets)")
        refuse_oversized(hidden_size, batch_size)
        seed = checked_seed(seed, repeats, secrets.randbelow)
        template = RunSpec(NET_TYPES[net_type], hidden_size[0], lr[0], batch_size[0], number_epochs, seed, paired,
                           eval_every_epoch, OptimizerSettings(optimizer, momentum, beta_1, beta_2, epsilon), init,
                           target_accuracy=target_accuracy, steps_per_execution=steps_per_execution,
                           jit_compile=jit_compile)
        contenders = plan_contenders(template, compare_nets, keras_backend)
        specs = experiment.plan_runs(contenders, hidden_size, lr, batch_size, repeats)
        progress = Progress(len(specs), quiet, verbose)
        progress.note(kernel_pin_warning() or "")
        load_before = load_average()
        progress.note(f"loading MNIST from {data_dir or ('Keras' if data_source == 'keras' else 'data/mnist')}")
        results = train_all(specs, DataSource(data_dir, data_source == "keras"), progress, guard)
        guard.training_done()
        meta = {**report.run_metadata({**click.get_current_context().params, "seed": seed}),
                "machine": machine_record(load_before)}
        written = outcome.write_outputs(results, meta, output)
        if plot and results:
            written &= outcome.write_plot(results, plot, plot_title(template, hidden_size, lr, batch_size))
        if results:
            outcome.print_results(outcome.Stdout(), results, table_format, confusion)
        outcome.warn_about(results, min_test_accuracy, quiet)
        sys.exit(guard.exit_code() if guard.stopped else outcome.exit_code(results, min_test_accuracy, written))


def plan_contenders(template: RunSpec, compare_nets: bool, keras_backends: list[str] | None) -> list[RunSpec]:
    """The nets of each setting, in training order: my_net, then Keras on each backend asked for (or on
    KERAS_BACKEND, unnamed). Refuses, before any training, a backend that cannot run here and
    --steps_per_execution on the torch backend, which does not support it."""
    wanted = list(NET_TYPES.values()) if compare_nets else [template.net]
    contenders = [replace(template, net=my_net.NeuralNetwork)] if my_net.NeuralNetwork in wanted else []
    if keras_net.KerasNet in wanted:
        named = keras_backends or [None]
        backends = keras_backends or [current_backend()]
        for backend, problem in ((b, backend_problem(b, "--keras_backend" if keras_backends else "KERAS_BACKEND"))
                                 for b in backends):
            if problem:
                raise click.UsageError(problem)
            if backend == "torch" and template.steps_per_execution != 1:
                raise click.UsageError("--steps_per_execution: Keras' torch backend does not support it; leave it "
                                       "at 1 or drop torch from --keras_backend")
        contenders += [replace(template, net=keras_net.KerasNet, keras_backend=b) for b in named]
    return contenders


def train_all(specs: list[RunSpec], source: DataSource, progress: Progress, guard: SignalGuard) -> list[RunResult]:
    """Load the data, then train every spec (a Keras run on another backend in a worker process); a signal
    keeps the finished runs and marks the running one (see shutdown.py). Exit 4 on a data error."""

    def start_run(spec: RunSpec) -> EpochCallback:
        guard.check()
        return guard.watching(progress.start(spec))

    try:
        data = load_data_or_exit(source)
        results, _ = experiment.run_all(specs, data, start_run, progress.finish, Dispatcher(source))
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
