"""The command's three modes, each a plain function of the Plan and the Options that returns what it made
(asv's `commands/`): train here, train on a Dask cluster, and --check. MODES maps Options.mode to them.

Not for: parsing options (options.py, values.py), planning and refusing (plan.py, refusals.py) or the ending
of a run (outcome.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import click

from mnist_compare.check.checks import run_checks
from mnist_compare.cli.plan import BUILTIN_NETS, Options, Plan
from mnist_compare.cli.progress import Progress
from mnist_compare.cli.repeats import RepeatRule
from mnist_compare.data import idx
from mnist_compare.nets import keras_net
from mnist_compare.nets.user_net import described, train_reporting_errors, users_code
from mnist_compare.records.check import Check
from mnist_compare.records.results import EpochCallback, RunResult
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs import runner, shipping
from mnist_compare.runs.sources import DataSource
from mnist_compare.runs.worker import Dispatcher, needs_worker
from mnist_compare.system.machine import install_hint, kernel_pin_warning
from mnist_compare.system.shutdown import SignalGuard


@dataclass(frozen=True)
class Made:
    """What a mode made: the training runs' results (and --profile's tables), or --check's checks."""

    results: list[RunResult] = field(default_factory=list)
    profiles: list[dict] | None = None
    checks: list[Check] | None = None
    repeats_auto: list[dict] | None = None  # --repeats auto: why each setting stopped (repeats.RepeatRule)


def check_mode(plan: Plan, options: Options, guard: SignalGuard) -> Made:
    """--check: every check of the net against the Keras twin at the plan's one setting (check/checks.py);
    the checks a stop signal prevented are marked INTERRUPTED."""
    return Made(checks=run_checks(plan.template, options.source.load(), keras_net.KerasNet))


def here_mode(plan: Plan, options: Options, guard: SignalGuard) -> Made:
    """Train the plan's runs on this machine, with progress on stderr; with --profile, one more epoch of each
    net under cProfile afterwards."""
    progress = Progress(len(plan.specs), options.quiet, options.verbose)
    progress.note(kernel_pin_warning() or "")
    where = options.data_dir or ("Keras" if options.source.keras else "the bundled files")
    progress.note(f"loading MNIST from {where}")
    rule = repeat_rule(plan, options)
    results, data = train_here(list(plan.specs), options.source, progress, guard, rule.wants if rule else None)
    if rule is not None:
        rule.conclude(results)
        for setting, why in rule.stopped.items() if not options.quiet else ():
            click.echo(f"--repeats auto at {', '.join(map(str, setting))}: {why}", err=True)
    profiles = None
    if options.profile and data is not None:
        with contextlib.suppress(KeyboardInterrupt):  # a stop signal while profiling: the timed runs are kept
            profiles = profiles_of(results, data, guard, progress.note)
    return Made(results, profiles, repeats_auto=rule.record() if rule else None)


def repeat_rule(plan: Plan, options: Options) -> RepeatRule | None:
    """--repeats auto's rule (repeats.py), with the baseline's accuracies by seed and the gate; None for N."""
    if options.repeats != "auto":
        return None
    base = {key: {run["seed"]: 100 * run["test_accuracy"] for run in runs}
            for key, runs in (plan.baseline.groups.items() if plan.baseline else ())}
    return RepeatRule(options.precision, options.max_repeats, plan.seed, options.budget, options.min_test_accuracy,
                      base)


def cluster_mode(plan: Plan, options: Options, guard: SignalGuard) -> Made:
    """Train the plan's runs as jobs on the Dask cluster at --scheduler."""
    return Made(train_on_cluster(list(plan.specs), options.source, options.scheduler, options.worker_threads,
                                 options.quiet))


MODES: dict[str, Callable[[Plan, Options, SignalGuard], Made]] = {
    "here": here_mode, "cluster": cluster_mode, "check": check_mode}


def train_here(specs: list[RunSpec], source: DataSource, progress: Progress, guard: SignalGuard,
               wanted: Callable[[RunSpec, list[RunResult]], bool] | None = None
               ) -> tuple[list[RunResult], idx.Dataset | None]:
    """Load the data, then train every spec (a Keras run on another backend in a worker process): the results
    and the data (None when a signal stopped the runs or came while it loaded). A signal keeps the finished
    runs and marks the running one (see shutdown.py); a data error raises idx.MnistDataError."""

    def start_run(spec: RunSpec) -> EpochCallback:
        guard.check()
        return guard.watching(progress.start(spec))

    dispatcher = Dispatcher(source)

    def train_one(spec: RunSpec, data: idx.Dataset, on_epoch_end: EpochCallback) -> RunResult:
        if spec.net in BUILTIN_NETS.values():
            return dispatcher(spec, data, on_epoch_end)
        return train_reporting_errors(dispatcher, spec, data, on_epoch_end)

    try:
        data = source.load()
    except KeyboardInterrupt:  # while the data loaded: no run had started
        progress.close()
        return [], None
    try:
        results, stopped = runner.run_all(specs, data, start_run, progress.finish, train_one, wanted)
    finally:
        progress.close()
    return results, None if stopped else data


def profiles_of(results: list[RunResult], data: idx.Dataset, guard: SignalGuard,
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


def cluster_client(address: str) -> tuple[object, list[str] | None]:
    """A Dask client of the scheduler at `address` and the workers that may take jobs (None: any); exit 2 when
    Dask is not installed, nothing answers there, or the cluster lacks this version of the package or this
    machine's library versions."""
    if importlib.util.find_spec("distributed") is None:
        raise click.UsageError(f"--scheduler needs Dask: {install_hint('dask')}")
    from mnist_compare.runs import cluster

    try:
        client = cluster.connect(address)
        return client, cluster.usable_workers(client, lambda line: click.echo(f"Warning: {line}", err=True))
    except cluster.ClusterError as err:
        raise click.UsageError(str(err)) from None


def train_on_cluster(specs: list[RunSpec], source: DataSource, address: str, threads: int | None,
                     quiet: bool) -> list[RunResult]:
    """The specs as jobs on the Dask cluster at `address` (runs/cluster.py); exit 2, before any training, when
    Dask is not installed, nothing answers there, or the cluster lacks this version of the package or this
    machine's library versions."""
    from mnist_compare.runs import cluster

    client, workers = cluster_client(address)
    try:
        shipping.ship_user_nets(client, specs)
    except cluster.ClusterError as err:
        client.close()
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
