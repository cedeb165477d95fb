"""Sweeps on a Dask cluster (--scheduler ADDRESS): one job per setting and seed, all its nets in one worker.

A job trains every contender of one (setting, seed) one after the other on one machine, so that its
keras/my ratio compares times measured on the same hardware; the verdict then averages per-job ratios.
Each job gives every library the same thread budget (Dask's nanny would leave BLAS with one thread while
TensorFlow used every core), loads the data from the worker's own copy and verifies it, and records its host.
A worker that dies mid-job: Dask's scheduler runs the job again elsewhere, up to ALLOWED_FAILURES times, and
the rows say so. Dask is imported only here, only with --scheduler.
Not for: what a job trains (runs/runner.py) or how rows are shown (report.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from mnist_compare import __version__
from mnist_compare.nets.user_net import train_reporting_errors
from mnist_compare.records.results import RunFailed, RunResult
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs.shipping import missing_module
from mnist_compare.runs.sources import DataSource
from mnist_compare.runs.worker import Dispatcher
from mnist_compare.system.machine import installed_versions

ALLOWED_FAILURES = 3  # Dask's distributed.scheduler.allowed-failures: re-runs of a job whose worker died
COMPARED_LIBRARIES = ("numpy", "scipy", "tensorflow", "keras")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PACKAGE_PROBE = "__import__('mnist_compare').__version__"  # evaluated on each process of the cluster
POLL_S = 2  # how often a sweep that waits looks at the cluster
TIMEOUTS = (TimeoutError, asyncio.TimeoutError)  # one class from Python 3.11 on, two on 3.10
STALL_S = 120  # a sweep with no worker at all for this long stops: its finished rows are kept


class ClusterError(RuntimeError):
    """The cluster cannot run this sweep; the message is one line."""


def library_versions() -> dict[str, str | None]:
    """The versions that must match between client and workers for rows to be comparable."""
    return installed_versions(COMPARED_LIBRARIES)


def mismatched(client_versions: dict, worker_versions: dict[str, dict]) -> dict[str, str]:
    """worker address -> one line naming the versions that differ from the client's (matching workers absent)."""
    refused = {}
    for address, versions in worker_versions.items():
        differ = [f"{name} {versions.get(name)} (here {client_versions.get(name)})"
                  for name in COMPARED_LIBRARIES if versions.get(name) != client_versions.get(name)]
        if differ:
            refused[address] = f"worker {address} refused for this run: {', '.join(differ)}"
    return refused


def crowded_hosts(workers: dict[str, dict]) -> list[str]:
    """Hosts that run more than one worker or worker thread: parallel fits on one machine distort every time."""
    per_host = Counter()
    for info in workers.values():
        per_host[info.get("host")] += info.get("nthreads", 1)
    return [host for host, threads in per_host.items() if threads > 1]


def run_job(specs: list[RunSpec], source: DataSource, threads: int | None) -> list[RunResult]:
    """On a worker: train each spec of one (setting, seed) in order with `threads` threads (default: the
    machine's cores) for every library."""
    from threadpoolctl import threadpool_limits

    threads = threads or os.cpu_count() or 1
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})  # for TensorFlow and worker processes
    data = source.load()
    train_one = Dispatcher(source)
    host = socket.gethostname()
    results = []
    with threadpool_limits(limits=threads):
        for spec in specs:
            try:  # a net's failure of any kind is its own row, never the job's (the other nets still train)
                result = train_reporting_errors(train_one, spec, data, None)
            except RunFailed as err:
                result = RunResult(spec).mark_error(str(err))
            result.net_info.update({"host": host, "thread_budget": threads})
            results.append(result)
    return results


def jobs_of(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """The specs grouped by (setting, seed), in plan order: a job's nets keep the alternating order."""
    jobs: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        jobs.setdefault((spec.setting(), spec.seed), []).append(spec)
    return list(jobs.values())


def connect(address: str, timeout_s: float = 5) -> Any:
    """A Dask client of the scheduler at `address`; ClusterError when no Dask scheduler answers within
    timeout_s. Something else listening there (a web server) would keep Client() waiting for ever
    (measured: 11 minutes, then Ctrl-C), so the scheduler is first asked for its identity, with a deadline."""
    from distributed import Client

    # Dask, and tornado and asyncio under it, log a lost connection or a cancelled job with their tracebacks
    # (Dask's config sets levels logger by logger); this tool says what happened in one line per row
    for name in ["tornado", "asyncio", *logging.root.manager.loggerDict]:
        if name.split(".")[0] in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        identity = asyncio.run(scheduler_identity(address, timeout_s))
        if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
            raise ValueError(f"what answers is not a Dask scheduler ({str(identity)[:80]})")
        return Client(address, timeout=timeout_s)
    except (OSError, *TIMEOUTS, ValueError, MemoryError) as err:  # MemoryError: distributed 2025.1 (the
        # lower bound) reads a web server's reply as a frame length of exabytes
        raise ClusterError(f"--scheduler {address}: no Dask scheduler answered within {timeout_s:g} s "
                           f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None


async def scheduler_identity(address: str, timeout_s: float) -> Any:
    """The reply of the process at `address` to Dask's `identity` request, each step under a deadline."""
    from distributed.comm import connect as open_comm

    comm = await asyncio.wait_for(open_comm(address, timeout=timeout_s), timeout_s)
    try:
        await asyncio.wait_for(comm.write({"op": "identity"}), timeout_s)
        return await asyncio.wait_for(comm.read(), timeout_s)
    finally:
        comm.abort()


def package_versions(client: Any) -> dict[str, str | None]:
    """"scheduler" and each worker's address -> the mnist_compare version it imports (None: it cannot).

    The probe is the builtin eval of a constant expression: a builtin travels by name, so a process without
    the package still answers, where a function of ours could not even be unpickled there."""
    answers = client.run(eval, PACKAGE_PROBE, on_error="return")
    try:
        answers["scheduler"] = client.run_on_scheduler(eval, PACKAGE_PROBE)
    except Exception:  # the scheduler cannot import the package
        answers["scheduler"] = None
    return {where: answer if isinstance(answer, str) else None for where, answer in answers.items()}


def refuse_other_package_versions(versions: dict[str, str | None]) -> None:
    """ClusterError, naming the fix, when the scheduler or a worker does not import this very version."""
    wrong = {where: version for where, version in versions.items() if version != __version__}
    if wrong:
        where, version = next(iter(wrong.items()))
        found = f"mnist_compare {version}" if version else "no mnist_compare"
        place = "the scheduler" if where == "scheduler" else f"worker {where}"
        raise ClusterError(f"{place} has {found} (here {__version__}; {len(wrong)} of {len(versions)} "
                           f"processes differ): install mnist-compare {__version__} with its [dask] extra on every "
                           f"machine of the cluster (pip install 'mnist_compare-{__version__}-py3-none-any.whl[dask]' "
                           "from its wheel), then restart its scheduler and workers")


def usable_workers(client: Any, warn: Callable[[str], None]) -> list[str] | None:
    """The workers whose library versions match this process's, or None when every worker does (jobs then
    go to any worker, one the nanny restarts under a new address too); one warning line per refused worker
    and per crowded host. ClusterError when none is left, or when the scheduler or any worker does not import this
    version of mnist_compare."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        raise ClusterError("the Dask scheduler has no workers")
    refuse_other_package_versions(package_versions(client))
    refused = mismatched(library_versions(), client.run(library_versions))
    for line in refused.values():
        warn(line)
    for host in crowded_hosts(workers):
        warn(f"{host} runs several Dask workers or threads: fits running side by side distort every time; "
             "start one worker with --nworkers 1 --nthreads 1 per machine")
    usable = [address for address in workers if address not in refused]
    if not usable:
        raise ClusterError("no worker has this machine's library versions: " + "; ".join(refused.values()))
    return usable if refused else None


def job_error(err: Exception) -> str:
    """`<Type>: <message>` of a failed job, with the fix when the scheduler or a worker cannot load our code."""
    message = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    module = missing_module(err)
    if module is not None and not module.startswith("mnist_compare"):
        message += (f" (a worker cannot import {module}: install it on every worker's machine, as a net given as "
                    "package.module:CLASS must be)")
    elif "deserializ" in message.lower() or module is not None:
        message += (f" (install mnist-compare {__version__} with its [dask] extra on the scheduler's and every "
                    "worker's machine)")
    return message


def retries_of(client: Any, key: str) -> int:
    """How many times a worker died while it ran this job (the scheduler's count for the task)."""
    def suspicious(dask_scheduler: Any) -> int:
        task = dask_scheduler.tasks.get(key)
        return task.suspicious if task is not None else 0

    return client.run_on_scheduler(suspicious)


def run_on_cluster(client: Any, specs: list[RunSpec], source: DataSource, threads: int | None,
                   workers: list[str] | None, on_job_done: Callable[[list[RunResult]], None],
                   stall_s: float = STALL_S) -> tuple[list[RunResult], bool]:
    """Every job on the cluster, results streamed in as jobs finish (then put back in plan order): (results,
    stopped). `workers`: the only workers a job may run on (when some were refused), None for any, so that
    workers the nanny restarts under new addresses still take jobs. On a stop signal, cancel what is pending
    and keep what finished, marking the rest interrupted. When the cluster cannot make progress (the scheduler
    stops answering, or no worker is there for stall_s), keep what finished and mark the rest as errors."""
    jobs = jobs_of(specs)
    futures = {client.submit(run_job, job, source, threads, workers=workers, pure=False): index
               for index, job in enumerate(jobs)}
    finished: dict[int, list[RunResult]] = {}
    stopped, failure = False, None
    try:
        failure = collect(client, futures, jobs, finished, on_job_done, stall_s)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        stopped = True
    ordered = []
    for index, job in enumerate(jobs):
        unfinished = [RunResult(spec).mark_error(failure) if failure else RunResult(spec).mark_interrupted()
                      for spec in job]
        ordered += finished.get(index) or unfinished
    return ordered, stopped


def collect(client: Any, futures: dict, jobs: list[list[RunSpec]], finished: dict[int, list[RunResult]],
            on_job_done: Callable[[list[RunResult]], None], stall_s: float) -> str | None:
    """Wait for the jobs, filing each one's results in `finished` as it ends; None when all ended, or why
    the cluster could make no more progress."""
    from distributed import wait

    pending, idle_since = set(futures), None
    while pending:
        try:
            done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
        except TIMEOUTS:
            done = set()
        except Exception as err:  # Dask cancelled the futures (FuturesCancelledError): connection lost, restart
            if client.status == "running":
                return f"the Dask cluster cancelled the jobs (a restart of the cluster?) ({type(err).__name__})"
            return f"the Dask scheduler stopped answering ({type(err).__name__})"
        for future in done:
            finished[futures[future]] = job_results(client, future, jobs[futures[future]])
            on_job_done(finished[futures[future]])
        if done:
            idle_since = None
            continue
        if client.status != "running":
            return f"the Dask scheduler stopped answering (client {client.status})"
        if workers_now(client):
            idle_since = None
            continue
        idle_since = idle_since or time.monotonic()
        if time.monotonic() - idle_since > stall_s:
            return f"no Dask worker for {stall_s:g} s: the sweep could not go on"
    return None


def workers_now(client: Any) -> int:
    """How many workers the scheduler has now (0 when it cannot tell)."""
    try:
        return len(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.workers)))
    except Exception:
        return 0


def job_results(client: Any, future: Any, job: list[RunSpec]) -> list[RunResult]:
    """A finished job's results with the number of times its worker died, or error rows when the job failed
    as a whole (the cluster could not run it: each net's own failures are rows already, see run_job)."""
    try:
        results = future.result()
    except Exception as err:
        results = [RunResult(spec).mark_error(job_error(err)) for spec in job]
    retried = retries_of(client, future.key)
    for result in results:
        result.net_info["retries"] = retried
    return results
