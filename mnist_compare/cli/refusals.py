"""What each mode honours, and the refusals that must come before any work: an option the mode would
ignore, an option without the one it works with, a --baseline with nothing in common, a hidden layer too
large for this machine's memory. Each is a usage error: one `Error:` line and exit 2.

Not for: checking one option's value (values.py) or the plan (plan.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from mnist_compare.output import baseline, trackers
from mnist_compare.records import saved
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs import runner

COMMAND_LINE, ENVIRONMENT = "command line", "environment"  # where a given option came from (Options.given)

# Options a mode cannot honour, with the reason the refusal gives. --check trains nothing: it runs its own
# fixed steps on one setting, against the Keras twin on this process's backend.
NOT_HONOURED = {
    "check": {
        "compare_nets": "--check always compares the net with the Keras twin",
        "paired": "--check's step and trajectory checks always pair the nets",
        "repeats": "--check runs once, from --seed",
        "number_epochs": "--check's trajectory trains its own 2 epochs on 6,000 images",
        "plot": "--check trains no learning curves",
        "eval_every_epoch": "--check trains no epochs to evaluate",
        "confusion": "--check makes no predictions on the test set",
        "min_test_accuracy": "--check's gate is its exit code 7",
        "target_accuracy": "--check trains no epochs to time",
        "keras_backend": "--check runs the twin on this process's backend: set KERAS_BACKEND instead",
        "steps_per_execution": "--check steps the twin one batch at a time",
        "jit_compile": "--check uses Keras' default compilation",
        "blas_threads": "--check times nothing",
        "scheduler": "--check runs here, not on a cluster",
        "worker_threads": "--check runs here, not on a cluster",
        "baseline": "--check trains no runs to compare: compare two training runs' results files",
        "history": "--check trains no runs to record: save --output results.json of training runs",
        "margin": "--check trains no runs to compare",
        "max_slowdown": "--check trains no runs to compare",
        "profile": "--check trains no epochs to profile",
    },
    "cluster": {
        "verbose": "per-epoch lines are not sent back from cluster workers (stderr shows each finished job)",
        "profile": "--profile profiles epochs on this machine: run without --scheduler",
    },
    "here": {
        "worker_threads": "it sets the threads of cluster workers: add --scheduler ADDRESS",
    },
}
SWEEPS = ("hidden_size", "lr", "batch_size")  # comma lists, which --check cannot sweep
MODE_NAMES = {"check": "with --check", "cluster": "with --scheduler", "here": "without --scheduler"}


def refuse_what_the_mode_ignores(mode: str, given: Mapping[str, str], sweeps: Mapping[str, list]) -> None:
    """A usage error (exit 2) naming the first option given on the command line that `mode` would ignore;
    a value from the environment (MNIST_COMPARE_SCHEDULER) is only noted on stderr. `given`: option name ->
    COMMAND_LINE or ENVIRONMENT; `sweeps`: the comma-list options' values."""
    for name, why in NOT_HONOURED[mode].items():
        if given.get(name) == COMMAND_LINE:
            raise click.UsageError(f"--{name} has no effect {MODE_NAMES[mode]}: {why}")
        if given.get(name) == ENVIRONMENT:
            click.echo(f"Note: {name} from the environment has no effect {MODE_NAMES[mode]}", err=True)
    if mode == "check":
        for name in SWEEPS:
            if len(sweeps[name]) > 1:
                raise click.UsageError(f"--{name} {','.join(map(str, sweeps[name]))}: --check checks one "
                                       "setting; give one value")



def refuse_without_what_they_need(given: Mapping[str, str], options_given: dict[str, bool]) -> None:
    """A usage error for an option given without the one it works with: --margin and --max_slowdown judge a
    --baseline comparison, --gradescope and --check_weights write --check's results."""
    needs = {"margin": ("baseline", "--baseline BASE.json"), "max_slowdown": ("baseline", "--baseline BASE.json"),
             "gradescope": ("check", "--check"), "check_weights": ("check", "--check"),
             "check_timeout": ("check", "--check"), "check_memory": ("check", "--check"),
             "precision": ("repeats_auto", "--repeats auto"), "max_repeats": ("repeats_auto", "--repeats auto"),
             "budget": ("repeats_auto", "--repeats auto"), "report_title": ("report", "--report PATH.html")}
    for name, (needed, spelled) in needs.items():
        if not options_given[needed] and given.get(name) == COMMAND_LINE:
            raise click.UsageError(f"--{name} has no effect without {spelled}")


def refuse_trackers_with_check(check: bool, outputs: tuple[str, ...]) -> None:
    """A usage error for --check with an MLflow or TensorBoard output: the trackers log training runs; the
    check table goes to a .md, .csv or .json file."""
    logged = [target for target in outputs if trackers.tracker_of(target)]
    if check and logged:
        raise click.UsageError(f"--output {logged[0]}: trackers log training runs; with --check write the check "
                               f"table to a .md, .csv or .json file")


def refuse_unmatched(base: saved.SavedRuns | None, specs: list[RunSpec]) -> None:
    """A usage error before training when no planned net and setting is in the --baseline file."""
    if base is None:
        return
    planned = {saved.group_key({"name": s.net_name, "hyperparameters": s.hyperparameters()}): None for s in specs}
    if not any(key in base.groups for key in planned):
        raise click.UsageError(f"--baseline {base.label} has no finished run of a net and setting this command "
                               f"trains ({baseline.describe_keys(base.groups)} against "
                               f"{baseline.describe_keys(planned)})")




def refuse_oversized(hidden_sizes: list[int], batch_sizes: list[int]) -> None:
    """A usage error, before any work, when a hidden size would not fit in memory."""
    available = runner.physical_memory_bytes()
    for hidden in hidden_sizes:
        needed = max(runner.estimated_memory_bytes(hidden, b) for b in batch_sizes)
        if needed > 0.8 * available:
            raise click.BadParameter(f"{hidden} needs about {needed / 2**30:.1f} GiB, more than this machine's "
                                     f"{available / 2**30:.1f} GiB allows", param_hint="'--hidden_size'")
