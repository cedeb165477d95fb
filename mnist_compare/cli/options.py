"""Every option of the command, declared once, in the section of `--help` it belongs to (pip-tools' way:
stacked by name on the command). Dash spellings (`--hidden-size`) reach the same option through the
command's token normaliser, not through second declarations.

Not for: checking values (values.py) or deciding what a mode honours (modes.py).
"""

from __future__ import annotations

from collections.abc import Callable

import click
from tabulate import tabulate_formats

from mnist_compare.cli import values
from mnist_compare.nets.keras_backends import BACKEND_NAMES, DEFAULT_BACKEND
from mnist_compare.records.spec import DEFAULT_OPTIMIZER, INITIALIZERS, OPTIMIZERS

Decorator = Callable[[Callable], Callable]


class SectionedOption(click.Option):
    """A Click option that knows its section of --help ("What to train", "Outputs", ...), and names its value
    in words (N, X, DIR) where Click would print its type's name (INTEGER RANGE, FLOAT RANGE, DIRECTORY)."""

    def __init__(self, *args, section: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.section = section
        if self.metavar is None and not self.is_flag and not isinstance(self.type, click.Choice):
            self.metavar = value_name(self.type)


def value_name(kind: click.ParamType) -> str:
    """The metavar of an option of type `kind`: N for whole numbers, X for real ones, DIR / FILE / PATH."""
    if isinstance(kind, click.types.IntParamType):
        return "N"
    if isinstance(kind, click.types.FloatParamType):
        return "X"
    if isinstance(kind, click.Path):
        return "DIR" if not kind.file_okay else "FILE" if not kind.dir_okay else "PATH"
    return "TEXT"


def section(title: str, *declared: tuple[tuple, dict]) -> Decorator:
    """A decorator stacking the options `declared` ((param_decls, attrs) pairs) under one --help section."""
    def apply(command: Callable) -> Callable:
        for decls, attrs in reversed(declared):
            command = click.option(*decls, cls=SectionedOption, section=title, **attrs)(command)
        return command
    apply.declared = declared  # so that another command can take some of them (picked)
    return apply


def picked(title: str, *sections_and_names: Decorator | str) -> Decorator:
    """A section `title` of options declared in other sections, by name: picked("X", network, "--lr")."""
    found, declared = [], ()
    for item in sections_and_names:
        if isinstance(item, str):
            found.append(next(d for d in declared if item in d[0]))
        else:
            declared = item.declared
    return section(title, *found)


def option(*decls: str, **attrs) -> tuple[tuple, dict]:
    return decls, attrs


what_to_train = section(
    "What to train",
    option("--net_type", default="my", show_default=True, metavar="my|keras|PATH.py:CLASS", callback=values.net_class,
           help="my, keras, or your own network as PATH.py:CLASS or package.module:CLASS (loading it runs that "
                "file's code; README: Check your own network). With --compare_nets, it and the Keras twin."),
    option("--compare_nets", is_flag=True, help="Train both nets (my_net, or your --net_type, first) on the same "
                                                "settings."),
    option("--check", is_flag=True, help="Instead of training: check the net (--net_type) against the Keras twin, "
                                         "one row per check; exit 7 when any fails."),
    option("--paired", is_flag=True, help="With --compare_nets: identical initial weights and batch order for both "
                                          "nets."),
    option("--repeats", default="1", show_default=True, metavar="N|auto", callback=values.repeats_value,
           help="Train each net N times with seeds seed, seed+1, ...; the table shows mean ± std. auto: repeat "
                "until --precision, --max_repeats or --budget."),
    option("--precision", type=values.FiniteFloatRange(0, min_open=True), default=0.1, show_default=True,
           metavar="PP", help="--repeats auto: stop a setting when each net's 95% interval of test accuracy (or of "
                              "its paired difference to --baseline) is at most ±PP."),
    option("--max_repeats", type=click.IntRange(min=2), default=20, show_default=True,
           help="--repeats auto: at most this many repeats of a setting."),
    option("--budget", callback=values.duration, metavar="DURATION",
           help="--repeats auto: stop repeating once the command has trained this long, e.g. 90s, 10m, 1h30m "
                "(a setting still gets its first 5 repeats)."),
    option("--seed", type=int, default=None,
           help="Random seed in 0..2^32-1 (default: drawn at random and recorded in --output)."),
    option("--data_dir", type=click.Path(file_okay=False), envvar="MNIST_DATA_DIR", callback=values.existing_directory,
           help="Directory with the four IDX files (MNIST, Fashion-MNIST, KMNIST) [default: the bundled MNIST; "
                "env MNIST_DATA_DIR]."),
    option("--data_source", type=click.Choice(["bundled", "keras"]), default="bundled", show_default=True,
           help="bundled: IDX files (offline); keras: keras.datasets.mnist (needs its cache or the internet)."),
)

network = section(
    "The network and its training (a comma list sweeps)",
    option("--hidden_size", default="30", show_default=True, metavar="N[,N...]", callback=values.comma_list(int, 1),
           help="Hidden units, e.g. 30,128,256,300."),
    option("--lr", default="0.1", show_default=True, metavar="X[,X...]",
           callback=values.comma_list(float, 0, inclusive=False), help="Learning rate (> 0)."),
    option("--batch_size", default="128", show_default=True, metavar="N[,N...]", callback=values.comma_list(int, 1),
           help="Examples per minibatch; the last partial batch is averaged over its own size."),
    option("--number_epochs", type=click.IntRange(min=1), default=20, show_default=True,
           help="Passes over the 60,000 training images."),
    option("--init", type=click.Choice(INITIALIZERS), default="glorot_uniform", show_default=True,
           help="Kernel initialiser of both layers (biases start at zero)."),
)

optimiser = section(
    "Optimiser (the same in both nets, by Keras' formulas)",
    option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULT_OPTIMIZER.name, show_default=True,
           help="sgd (plain), momentum (SGD with --momentum) or adam."),
    option("--momentum", type=values.FiniteFloatRange(0, 1, max_open=True), default=DEFAULT_OPTIMIZER.momentum,
           show_default=True, help="For --optimizer momentum."),
    option("--beta_1", type=values.FiniteFloatRange(0, 1, max_open=True), default=DEFAULT_OPTIMIZER.beta_1,
           show_default=True, help="Adam's first-moment decay."),
    option("--beta_2", type=values.FiniteFloatRange(0, 1, max_open=True), default=DEFAULT_OPTIMIZER.beta_2,
           show_default=True, help="Adam's second-moment decay."),
    option("--epsilon", type=values.FiniteFloatRange(0, min_open=True), default=DEFAULT_OPTIMIZER.epsilon,
           show_default=True, callback=values.float32_positive_option, help="Adam's epsilon (Keras' default)."),
)

outputs = section(
    "Outputs and the CI gate",
    option("--table_format", type=click.Choice(tabulate_formats), default="github", show_default=True,
           metavar="FORMAT", help="Any tabulate format: github, latex, html, plain, grid, ..."),
    option("--output", metavar="FILE|TRACKER", callback=values.outputs_and_trackers, multiple=True,
           help="Write results to a .md, .csv or .json file (JSON: full precision and metadata), or log them "
                "into mlflow://EXPERIMENT[/RUN_NAME] (MLflow's store: MLFLOW_TRACKING_URI or ./mlflow.db) or "
                "tensorboard://DIR; repeatable."),
    option("--plot", type=click.Path(dir_okay=False), callback=values.writable_output,
           help="Learning curves (loss and accuracy per epoch) as .png; a sweep writes PATH_<setting>.png each."),
    option("--eval_every_epoch", is_flag=True,
           help="Also measure test loss/accuracy after every epoch (not counted in Time(s))."),
    option("--confusion", is_flag=True, help="Print each net's test-set confusion matrix and per-class accuracy."),
    option("--report", type=click.Path(dir_okay=False), callback=values.writable_output, metavar="PATH.html",
           help="One self-contained HTML page: command, settings, table, verdicts, curves, time per epoch, "
                "confusion matrices, checks, the baseline comparison and the machine (no script, no network)."),
    option("--report_title", metavar="TEXT",
           help="The HTML report's title, at its top and in the browser tab [default: mnist-compare report]."),
    option("--min_test_accuracy", metavar="PCT", type=float, callback=values.accuracy_threshold,
           help="CI gate: exit 1 if a net's mean test accuracy over its repeats is below this; 97.5 (percent) and "
                "0.975 mean the same. With --repeats, warns when the gate would fail a net like it > 5% of runs."),
    option("--target_accuracy", metavar="PCT", type=float, callback=values.accuracy_threshold,
           help="Report each net's training time to this test accuracy (evaluated after every epoch, not counted "
                "in Time(s)); 97 and 0.97 mean the same."),
    option("--profile", is_flag=True,
           help="After the timed runs, profile one extra epoch of each net (cProfile, not counted in Time(s)) and "
                "print its top functions by cumulative time under the table (and in the JSON)."),
    option("-q", "--quiet", is_flag=True, help="No progress bars or messages on stderr, only errors."),
    option("-v", "--verbose", is_flag=True, help="A summary line per epoch on stderr."),
)

grading = section(
    "Grading with --check (README: For teachers)",
    option("--gradescope", type=click.Path(dir_okay=False), callback=values.writable_output, metavar="PATH.json",
           help="Write the checks as a Gradescope autograder results.json: one test per check, scored by weight."),
    option("--check_weights", metavar="NAME=W,...|FILE.toml", callback=values.check_weights,
           help="Each check's points in --gradescope (default 1 each), e.g. forward=2,gradients=3 or a TOML file "
                "of name = weight lines."),
    option("--check_timeout", type=values.FiniteFloatRange(0, min_open=True), default=120.0, show_default=True,
           metavar="SECONDS", help="A submitted net's time per check (its own process; past it, that check fails)."),
    option("--check_memory", default="4GiB", show_default=True, metavar="SIZE", callback=values.memory_size,
           help="A submitted net's memory per check, e.g. 4GiB or 512MiB (past it, that check fails)."),
)

MARGIN = option("--margin", type=values.FiniteFloatRange(0, min_open=True), default=0.2, show_default=True,
                metavar="PP", help="Accuracy differences within ±PP percentage points are \"same\" (shown by TOST).")
MAX_SLOWDOWN = option("--max_slowdown", type=values.FiniteFloatRange(0, min_open=True), default=10.0, show_default=True,
                      metavar="PERCENT", callback=values.slowdown_fraction,
                      help="Times more than PERCENT % slower are \"worse\" (judged on the same machine only).")

def judging(output_help: str, report_help: str) -> Decorator:
    """The options `compare` and `history` share: --margin and --max_slowdown (Judging), --table_format,
    --output (.md, .csv, .json) and --report (an HTML page)."""
    return section("Judging and outputs", MARGIN, MAX_SLOWDOWN,
                   option("--table_format", type=click.Choice(tabulate_formats), default="github", show_default=True,
                          metavar="FORMAT", help="Any tabulate format: github, latex, html, plain, grid, ..."),
                   option("--output", type=click.Path(dir_okay=False), callback=values.writable_outputs,
                          multiple=True, help=output_help),
                   option("--report", type=click.Path(dir_okay=False), callback=values.writable_output,
                          metavar="PATH.html", help=report_help),
                   option("--report_title", metavar="TEXT", help="The HTML report's title, at its top and in the "
                                                                 "browser tab."))


against_a_baseline = section(
    "Against a saved baseline (also: mnist-compare compare BASE.json NEW.json)",
    option("--baseline", type=click.Path(exists=True, dir_okay=False), metavar="BASE.json",
           help="Compare this run with a results file saved by --output: better / same / worse per net and "
                "setting; exit 8 when anything is worse (a regression)."),
    MARGIN,
    MAX_SLOWDOWN,
    option("--history", type=click.Path(file_okay=False), callback=values.history_directory, metavar="DIR",
           help="Also save the results JSON into DIR, named by date, commit and dirty flag; `mnist-compare "
                "history DIR` shows every net's steps across the entries."),
)

keras = section(
    "Keras",
    option("--keras_backend", metavar="NAME[,NAME...]", callback=values.backend_list,
           help=f"Backends to train the twin on: {', '.join(BACKEND_NAMES)}; each its own row, keras_net[NAME] "
                f"[default: KERAS_BACKEND or {DEFAULT_BACKEND}, named keras_net]."),
    option("--steps_per_execution", type=click.IntRange(min=1), default=1, show_default=True,
           help="Train steps per call (Keras' speed lever; not on the torch backend)."),
    option("--jit_compile", type=click.Choice(["auto", "true", "false"]), default="auto", show_default=True,
           help="XLA-compile the train step (auto: Keras' choice per backend)."),
)

speed = section(
    "my_net's speed",
    option("--blas_threads", default="auto", show_default=True, metavar="auto|all|N",
           callback=values.blas_threads_value,
           help="my_net's BLAS threads (and keras_net[torch]'s): auto (one fewer for each core other processes "
                "hold, re-read every 0.25 s), all (BLAS's own count) or N. A seed gives my_net the same bits with "
                "any of them, under any load; TensorFlow's and JAX's rows are marked when the load distorts them."),
)

cluster = section(
    "On a Dask cluster",
    option("--scheduler", metavar="ADDRESS", envvar="MNIST_COMPARE_SCHEDULER",
           help="Run the jobs (one per setting and seed, all its nets) on the Dask cluster at this scheduler, "
                "e.g. tcp://host:8786 [env MNIST_COMPARE_SCHEDULER]; needs mnist-compare[dask]."),
    option("--worker_threads", type=click.IntRange(min=1),
           help="Threads for every library on each worker [default: the worker's cores]."),
)

EVERY_SECTION = (what_to_train, network, optimiser, outputs, against_a_baseline, grading, keras, speed,
                 cluster)


def every_option(command: Callable) -> Callable:
    """All sections, in --help's order."""
    for apply in reversed(EVERY_SECTION):
        command = apply(command)
    return command


def dashes_to_underscores(token: str) -> str:
    """Click's token normaliser: `--hidden-size` is `--hidden_size`, `he-normal` is `he_normal`; short
    options (-q) stay as they are."""
    return token if token.startswith("-") and not token.startswith("--") else token.replace("-", "_")


def format_sections(command: click.Command, ctx: click.Context, formatter: click.HelpFormatter,
                    extra: dict[str, list[tuple[str, str]]] | None = None) -> None:
    """The command's options in --help, by section, then the `extra` sections (a group's commands), all with
    their second column at one place on the page (Click aligns each section on its own)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
        if record is not None:
            sections.setdefault(getattr(param, "section", "Other"), []).append(record)
    sections.update(extra or {})
    width = min(HELP_TERM_WIDTH, max(len(term) for rows in sections.values() for term, _ in rows))
    for title, rows in sections.items():
        with formatter.section(title):
            formatter.write_dl([(term.ljust(width), text) for term, text in rows], col_max=width)


HELP_TERM_WIDTH = 30  # an option's name and value wider than this puts its help on the next line


class SectionedGroup(click.Group):
    """The command group whose default (no command named) trains: its --help lists the training options by
    section, after the examples of its docstring, then the commands (compare, grade, ...)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        limit = formatter.width - 6 - HELP_TERM_WIDTH
        rows = [(name, command.get_short_help_str(limit)) for name, command in commands if not command.hidden]
        format_sections(self, ctx, formatter, {"Commands": rows} if rows else None)


class SectionedCommand(click.Command):
    """A command whose --help lists its options by section."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        format_sections(self, ctx, formatter)


COMMAND_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110,
                    "token_normalize_func": dashes_to_underscores}  # every command of the group
