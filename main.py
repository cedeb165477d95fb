"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

    python main.py --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets

The table goes to stdout, progress and messages to stderr. Exit codes: 0 ok, 1 a net is below
--min_test_accuracy, 2 usage error, 3 a net diverged, 4 data error, 130 interrupted.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import sys
from pathlib import Path

import click
from tabulate import tabulate_formats

import experiment
import keras_net
import my_net
import read_mnist
import report
from optimizers import DEFAULT_OPTIMIZER, INITIALIZERS, OPTIMIZERS, OptimizerSettings
from progress import Progress
from results import DIVERGED, RunResult
from spec import RunSpec

__version__ = "1.0.0"
EXIT_BELOW_THRESHOLD, EXIT_DIVERGED, EXIT_DATA_ERROR, EXIT_INTERRUPTED = 1, 3, 4, 130
# --net_type -> the net's class; with --compare_nets, every one in this order. Importing keras_net does not
# import TensorFlow: building a KerasNet does.
NET_TYPES = {"my": my_net.NeuralNetwork, "keras": keras_net.KerasNet}


def comma_list(kind: type, minimum: float, inclusive: bool = True):
    """A Click callback parsing `a,b,c` into a list of `kind`, each finite and >= (or >) minimum."""
    def parse(ctx: click.Context, param: click.Parameter, text: str) -> list:
        values = []
        for item in str(text).split(","):
            try:
                value = kind(item.strip())
            except ValueError:
                raise click.BadParameter(f"{item.strip()!r} is not a valid {kind.__name__}") from None
            if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
                bound = f">= {minimum}" if inclusive else f"> {minimum}"
                raise click.BadParameter(f"{item.strip()} must be a finite number {bound}")
            values.append(value)
        return values
    return parse


def accuracy_threshold(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """--min_test_accuracy as a fraction: a value in (0, 1] is a fraction, above 1 a percentage."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0 or value > 100:
        raise click.BadParameter("must be a percentage in (0, 100] or a fraction in (0, 1]")
    return value if value <= 1 else value / 100


def writable_outputs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(writable_output(ctx, param, value) for value in values)


def writable_output(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an output path with an unknown suffix or in an unwritable directory before training."""
    if value is None:
        return None
    path = Path(value)
    if param.name == "output" and path.suffix.lower() not in report.OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{value}: the suffix must be one of {', '.join(report.OUTPUT_SUFFIXES)}")
    if param.name == "plot" and path.suffix.lower() != ".png":
        raise click.BadParameter(f"{value}: the plot is written as PNG, so the suffix must be .png")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir() or not os.access(directory, os.W_OK) or path.is_dir():
        raise click.BadParameter(f"{value}: cannot write there (directory missing or not writable)")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--net_type", "--net-type", type=click.Choice(list(NET_TYPES)), default="my", show_default=True,
              help="Which net to train (both with --compare_nets).")
@click.option("--hidden_size", "--hidden-size", default="30", show_default=True,
              callback=comma_list(int, 1), help="Hidden units; a comma list sweeps, e.g. 30,128,256,300.")
@click.option("--lr", default="0.1", show_default=True, callback=comma_list(float, 0, inclusive=False),
              help="Learning rate (> 0); a comma list sweeps.")
@click.option("--batch_size", "--batch-size", default="128", show_default=True, callback=comma_list(int, 1),
              help="Examples per minibatch; the last partial batch is averaged over its own size. Comma list sweeps.")
@click.option("--number_epochs", "--number-epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Passes over the 60,000 training images.")
@click.option("--compare_nets", "--compare-nets", is_flag=True,
              help="Train both nets (my_net first) on the same settings.")
@click.option("--paired", is_flag=True,
              help="With --compare_nets: identical initial weights and batch order for both nets.")
@click.option("--seed", type=int, default=None, help="Random seed (default: drawn at random and recorded in --output).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each net N times with seeds seed, seed+1, ...; the table shows mean ± std.")
@click.option("--data_dir", "--data-dir", type=click.Path(exists=True, file_okay=False), envvar="MNIST_DATA_DIR",
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
              help="Also measure test loss/accuracy after every epoch (counted in Time(s)).")
@click.option("--confusion", is_flag=True, help="Print each net's test-set confusion matrix and per-class accuracy.")
@click.option("--min_test_accuracy", "--min-test-accuracy", type=float, callback=accuracy_threshold,
              help="CI gate: exit 1 if a net's test accuracy is below this; 97.5 (percent) and 0.975 mean the same.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or messages on stderr, only errors.")
@click.option("-v", "--verbose", is_flag=True, help="A summary line per epoch on stderr.")
@click.version_option(__version__, "--version", prog_name="mnist-compare")
def main(net_type: str, hidden_size: list[int], lr: list[float], batch_size: list[int], number_epochs: int,
         compare_nets: bool, paired: bool, seed: int | None, repeats: int, data_dir: str | None, data_source: str,
         optimizer: str, momentum: float, beta_1: float, beta_2: float, epsilon: float, init: str,
         table_format: str, output: tuple[str, ...], plot: str | None, eval_every_epoch: bool, confusion: bool,
         min_test_accuracy: float | None, quiet: bool, verbose: bool) -> None:
    """Train a hand-written NumPy network and/or its Keras twin on MNIST and print a comparison table.

    Time(s) is the wall time of training only; accuracies are in percent; losses are the mean
    cross-entropy over the full test and training sets after training.
    """
    if paired and not compare_nets:
        raise click.UsageError("--paired needs --compare_nets (it pairs the two nets)")
    refuse_oversized(hidden_size, batch_size)
    seed = seed if seed is not None else secrets.randbelow(2**31)
    template = RunSpec(NET_TYPES[net_type], hidden_size[0], lr[0], batch_size[0], number_epochs, seed, paired,
                       eval_every_epoch, OptimizerSettings(optimizer, momentum, beta_1, beta_2, epsilon), init)
    data = load_data_or_exit(data_dir, data_source)
    nets = list(NET_TYPES.values()) if compare_nets else [template.net]
    specs = experiment.plan_runs(template, nets, hidden_size, lr, batch_size, repeats)
    progress = Progress(len(specs), quiet, verbose)
    results, interrupted = experiment.run_all(specs, data, progress.start, progress.finish)
    progress.close()
    if interrupted:
        signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))  # a second Ctrl-C exits at once
    meta = report.run_metadata({**click.get_current_context().params, "seed": seed})
    report_and_save(results, meta, table_format, confusion, output)
    if plot and results:
        import plots

        plots.plot_each_setting(results, plot, plot_title(template, hidden_size, lr, batch_size),
                                report.varying_settings(results))
    warn_about(results, min_test_accuracy)
    sys.exit(exit_code(results, min_test_accuracy, interrupted))


def refuse_oversized(hidden_sizes: list[int], batch_sizes: list[int]) -> None:
    """A usage error, before any work, when a hidden size would not fit in memory."""
    available = experiment.physical_memory_bytes()
    for hidden in hidden_sizes:
        needed = max(experiment.estimated_memory_bytes(hidden, b) for b in batch_sizes)
        if needed > 0.8 * available:
            raise click.BadParameter(f"{hidden} needs about {needed / 2**30:.1f} GiB, more than this machine's "
                                     f"{available / 2**30:.1f} GiB allows", param_hint="'--hidden_size'")


def load_data_or_exit(data_dir: str | None, data_source: str) -> experiment.Dataset:
    """The four arrays of read_mnist.load_data, from the IDX files or Keras' copy; exit 4 on a data error."""
    try:
        splits = keras_net.load_mnist() if data_source == "keras" else None
        return read_mnist.load_data(data_dir, splits)
    except read_mnist.MnistDataError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_DATA_ERROR)


def report_and_save(results: list[RunResult], meta: dict, table_format: str, confusion: bool,
                    outputs: tuple[str, ...]) -> None:
    """Print the table and verdict to stdout (and confusion matrices when asked), then write --output."""
    if not results:
        return
    click.echo(report.render_table(results, table_format))
    for line in report.summary_lines(results):
        click.echo(line)
    if confusion:
        for result in (r for r in results if r.confusion):
            click.echo(f"\n{result.name} (seed {result.seed}) confusion matrix on the test set:")
            click.echo(report.render_confusion(result, table_format))
    for path in outputs:
        report.write_results(path, results, meta)


def plot_title(template: RunSpec, hidden_sizes: list[int], lrs: list[float], batch_sizes: list[int]) -> str:
    settings = (f"hidden {','.join(map(str, hidden_sizes))}, lr {','.join(map(str, lrs))}, "
                f"batch {','.join(map(str, batch_sizes))}, {template.number_epochs} epochs, "
                f"{template.optimizer.name}, {template.init}")
    return f"MNIST learning curves: {settings}"


def warn_about(results: list[RunResult], min_test_accuracy: float | None) -> None:
    """One stderr line per problem: divergence (with advice), a training loss that rose, a missed gate."""
    for result in results:
        if result.status == DIVERGED:
            click.echo(f"Error: {result.name} diverged at epoch {result.diverged_epoch} (lr "
                       f"{result.spec.lr}); try a smaller learning rate, e.g. --lr 0.1", err=True)
        elif result.finished and result.final_loss_rose():
            click.echo(f"Warning: {result.name}'s training loss rose from {result.initial_train_loss:.4f} before "
                       f"training to {result.train_loss:.4f} (lr {result.spec.lr} is likely too large)", err=True)
    for result in below_threshold(results, min_test_accuracy):
        click.echo(f"Error: {result.name} test accuracy {100 * result.test_accuracy:.2f}% is below the required "
                   f"{100 * min_test_accuracy:.2f}%", err=True)


def below_threshold(results: list[RunResult], threshold: float | None) -> list[RunResult]:
    if threshold is None:
        return []
    return [r for r in results if r.finished and r.test_accuracy < threshold]


def exit_code(results: list[RunResult], min_test_accuracy: float | None, interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if any(r.status == DIVERGED for r in results):
        return EXIT_DIVERGED
    if below_threshold(results, min_test_accuracy):
        return EXIT_BELOW_THRESHOLD
    return 0


if __name__ == "__main__":
    main()
