"""The command's three modes, each a plain function of typed values (asv's `commands/`): train here, train
on a Dask cluster, and --check; and what each mode honours, so that an option it would ignore is refused.

Not for: parsing options (options.py, values.py) or the ending of a run (outcome.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable

import click
from click.core import ParameterSource

from mnist_compare.cli import outcome, plan
from mnist_compare.cli.progress import Progress
from mnist_compare.nets import keras_net
from mnist_compare.nets.check import Check, run_checks
from mnist_compare.nets.user_net import described, train_reporting_errors, users_code
from mnist_compare.output import baseline, report
from mnist_compare.records import mnist
from mnist_compare.records.results import EpochCallback, RunResult
from mnist_compare.records.shutdown import SignalGuard
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs import runner
from mnist_compare.runs.sources import DataSource
from mnist_compare.runs.worker import Dispatcher, needs_worker

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


def refuse_what_the_mode_ignores(ctx: click.Context, mode: str) -> None:
    """A usage error (exit 2) naming the first option given on the command line that `mode` would ignore;
    a value from the environment (MNIST_COMPARE_SCHEDULER) is only noted on stderr."""
    for name, why in NOT_HONOURED[mode].items():
        source = ctx.get_parameter_source(name)
        if source == ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--{name} has no effect {MODE_NAMES[mode]}: {why}")
        if source == ParameterSource.ENVIRONMENT:
            click.echo(f"Note: {name} from the environment has no effect {MODE_NAMES[mode]}", err=True)
    if mode == "check":
        for name in SWEEPS:
            if len(ctx.params[name]) > 1:
                raise click.UsageError(f"--{name} {','.join(map(str, ctx.params[name]))}: --check checks one "
                                       "setting; give one value")



def refuse_without_what_they_need(ctx: click.Context, options_given: dict[str, bool]) -> None:
    """A usage error for an option given without the one it works with: --margin and --max_slowdown judge a
    --baseline comparison, --gradescope and --check_weights write --check's results."""
    needs = {"margin": ("baseline", "--baseline BASE.json"), "max_slowdown": ("baseline", "--baseline BASE.json"),
             "gradescope": ("check", "--check"), "check_weights": ("check", "--check")}
    for name, (needed, spelled) in needs.items():
        if not options_given[needed] and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--{name} has no effect without {spelled}")


def refuse_unmatched(base: baseline.SavedRuns | None, specs: list[RunSpec]) -> None:
    """A usage error before training when no planned net and setting is in the --baseline file."""
    if base is None:
        return
    planned = {baseline.group_key({"name": s.net_name, "hyperparameters": s.hyperparameters()}): None for s in specs}
    if not any(key in base.groups for key in planned):
        raise click.UsageError(f"--baseline {base.label} has no finished run of a net and setting this command "
                               f"trains ({baseline.describe_keys(base.groups)} against "
                               f"{baseline.describe_keys(planned)})")


def check_net(spec: RunSpec, source: DataSource, table_format: str, outputs: tuple[str, ...], report_path: str | None,
              grading: tuple[str | None, dict | None], meta: dict, guard: SignalGuard) -> int:
    """--check: every check of spec.net against the Keras twin, printed and written; 0 when all pass, 7 when
    any fails, 5 when an output file could not be written, 128 + N when signal N stopped it (the checks
    that finished are printed and written, the others marked INTERRUPTED)."""
    checks: list[Check] = run_checks(spec, load_data_or_exit(source), keras_net.KerasNet)
    guard.training_done()
    written = outcome.write_checks(checks, meta, outputs)
    written &= outcome.write_report(report_path, meta, checks=checks)
    written &= outcome.write_gradescope(*grading, checks, meta["options"]["net_type"])
    stdout = outcome.Stdout()
    stdout.echo(report.render_checks(checks, table_format))
    written &= stdout.ok
    if guard.stopped:
        return guard.exit_code()
    if any(c.status == "FAIL" for c in checks):
        return outcome.EXIT_CHECK_FAILED
    return 0 if written else outcome.EXIT_OUTPUT_ERROR


def train_here(specs: list[RunSpec], source: DataSource, progress: Progress, guard: SignalGuard,
               profile: bool = False) -> list[RunResult]:
    """Load the data, then train every spec (a Keras run on another backend in a worker process); a signal
    keeps the finished runs and marks the running one (see shutdown.py). Exit 4 on a data error. With
    `profile`, one more epoch of each net under cProfile afterwards (ctx.meta["profiles"])."""

    def start_run(spec: RunSpec) -> EpochCallback:
        guard.check()
        return guard.watching(progress.start(spec))

    dispatcher = Dispatcher(source)

    def train_one(spec: RunSpec, data: mnist.Dataset, on_epoch_end: EpochCallback) -> RunResult:
        if spec.net in plan.BUILTIN_NETS.values():
            return dispatcher(spec, data, on_epoch_end)
        return train_reporting_errors(dispatcher, spec, data, on_epoch_end)

    try:
        data = load_data_or_exit(source)
        results, stopped = runner.run_all(specs, data, start_run, progress.finish, train_one)
    except KeyboardInterrupt:  # while the data loaded: no run had started
        results, stopped = [], True
    progress.close()
    if profile and not stopped:
        with contextlib.suppress(KeyboardInterrupt):  # a stop signal while profiling: the timed runs are kept
            click.get_current_context().meta["profiles"] = profiles_of(results, data, guard, progress.note)
    return results


def profiles_of(results: list[RunResult], data: mnist.Dataset, guard: SignalGuard,
                note: Callable[[str], None]) -> list[dict]:
    """One profiled epoch (runs/profile.py) of each net that trained in this process, at its first setting and
    seed that finished; a net trained in a worker process (another Keras backend) is named, not profiled."""
    from mnist_compare.runs.profile import profile_one_epoch

    profiles, seen = [], set()
    for result in (r for r in results if r.finished and r.name not in seen):
        seen.add(result.name)
        guard.check()
        if needs_worker(result.spec):
            profiles.append({"net": result.name, "functions": [], "note": "trained in a worker process (another "
                             "Keras backend): not profiled; set KERAS_BACKEND to profile it here"})
            continue
        note(f"profiling one epoch of {result.name}")
        try:
            with users_code():
                profiles.append(profile_one_epoch(result.spec, data))
        except Exception as err:
            profiles.append({"net": result.name, "functions": [], "note": f"profiling raised {described(err)}"})
    return profiles


def train_on_cluster(specs: list[RunSpec], source: DataSource, address: str, threads: int | None,
                     quiet: bool) -> list[RunResult]:
    """The specs as jobs on the Dask cluster at `address` (runs/cluster.py); exit 2, before any training, when
    Dask is not installed, nothing answers there, or the cluster lacks this version of the package or this
    machine's library versions."""
    if importlib.util.find_spec("distributed") is None:
        raise click.UsageError("--scheduler needs Dask: pip install 'mnist-compare[dask]' "
                               "(or pip install -r requirements-dask.txt in a clone)")
    from mnist_compare.runs import cluster

    try:
        client = cluster.connect(address)
        workers = cluster.usable_workers(client, lambda line: click.echo(f"Warning: {line}", err=True))
        cluster.ship_user_nets(client, specs)
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


def load_data_or_exit(source: DataSource) -> mnist.Dataset:
    """The four arrays of mnist.load_data, from the IDX files or Keras' copy; exit 4 on a data error."""
    try:
        return source.load()
    except mnist.MnistDataError as err:
        outcome.error(str(err))
        sys.exit(outcome.EXIT_DATA_ERROR)


def refuse_oversized(hidden_sizes: list[int], batch_sizes: list[int]) -> None:
    """A usage error, before any work, when a hidden size would not fit in memory."""
    available = runner.physical_memory_bytes()
    for hidden in hidden_sizes:
        needed = max(runner.estimated_memory_bytes(hidden, b) for b in batch_sizes)
        if needed > 0.8 * available:
            raise click.BadParameter(f"{hidden} needs about {needed / 2**30:.1f} GiB, more than this machine's "
                                     f"{available / 2**30:.1f} GiB allows", param_hint="'--hidden_size'")
