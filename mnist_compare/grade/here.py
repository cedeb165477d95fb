"""Many submissions graded on this machine: one after another, or `jobs` at a time in worker processes of
their own (each loads MNIST and Keras once). The grades are the same either way: every check is
deterministic, and each submission's code runs in a process of its own per check.

Not for: a Dask cluster (cluster.py) or one submission's checks (grader.py).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from mnist_compare.check.sandbox import become_subreaper, children, kill_orphans
from mnist_compare.data.idx import Dataset
from mnist_compare.grade.grader import Graded, GradeSettings, grade_one
from mnist_compare.grade.submissions import Submission
from mnist_compare.runs.sources import DataSource

_data: Dataset | None = None  # a worker process's MNIST, loaded once


def start_worker(source: DataSource) -> None:
    """A worker process leaves stop signals to the command, which ends the workers itself."""
    global _data
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _data = source.load()


def grade_in_worker(submission: Submission, settings: GradeSettings) -> Graded:
    return grade_one(submission, settings, _data)


def grade_here(submissions: list[Submission], settings: GradeSettings, source: DataSource, jobs: int,
               done: Callable[[Graded], None]) -> list[Graded]:
    """Every submission's row, in the order given; done(row) as each finishes. A stop signal (a
    KeyboardInterrupt) ends the workers and their submissions' processes and propagates, after done() has
    seen every finished row."""
    if jobs == 1:
        data = source.load()
        rows = []
        for submission in submissions:
            rows.append(grade_one(submission, settings, data))
            done(rows[-1])
        return rows
    become_subreaper()  # a killed worker's submission processes come back to this one, to be ended
    others = children()
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                               initargs=(source,))
    try:
        return in_pool(pool, submissions, settings, done)
    finally:
        for process in list(getattr(pool, "_processes", {}).values()):  # the executor has no kill of its own
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        kill_orphans(others)


def in_pool(pool: ProcessPoolExecutor, submissions: list[Submission], settings: GradeSettings,
            done: Callable[[Graded], None]) -> list[Graded]:
    futures: dict[Future, int] = {pool.submit(grade_in_worker, s, settings): i for i, s in enumerate(submissions)}
    rows: dict[int, Graded] = {}
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            index = futures[future]
            rows[index] = future.result()
            done(rows[index])
    return [rows[i] for i in range(len(submissions))]
