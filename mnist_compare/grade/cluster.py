"""Submissions graded as tasks on a Dask cluster: each task carries one submission's file (its bytes, so the
workers need no shared disk), grades it on a worker with the limits per check, and returns its row. A task
that fails as a whole (its worker lost) is submitted once more; a second failure is that row's error.

Not for: connecting and checking the workers' versions (runs/cluster.py does, for sweeps too).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_compare.data.idx import Dataset
from mnist_compare.grade.grader import Graded, GradeSettings, grade_one, not_graded
from mnist_compare.grade.submissions import Submission
from mnist_compare.runs.cluster import job_error
from mnist_compare.runs.sources import DataSource

_data: dict[DataSource, Dataset] = {}  # a worker's MNIST, loaded once per source


def grade_task(name: str, file_name: str, content: bytes, settings: GradeSettings, source: DataSource) -> Graded:
    """On a worker: the submission written to a directory of its own, graded there."""
    if source not in _data:
        _data[source] = source.load()
    with tempfile.TemporaryDirectory(prefix="mnist-compare-grade-") as directory:
        path = Path(directory) / file_name
        path.write_bytes(content)
        row = grade_one(Submission(name, path), settings, _data[source])
    row.file = file_name
    return row


def grade_on_cluster(client: Any, submissions: list[Submission], settings: GradeSettings, source: DataSource,
                     workers: list[str] | None, done: Callable[[Graded], None]) -> tuple[list[Graded], list[str]]:
    """Every submission's row, in the order given, and the names of those the cluster could not grade (their
    rows say why). A stop signal cancels what is pending and propagates."""
    from distributed import as_completed

    rows: dict[int, Graded] = {}
    lost: list[str] = []
    futures = {}
    for index, submission in enumerate(submissions):
        if submission.path is None:
            rows[index] = not_graded(submission, settings, submission.problem)
            done(rows[index])
            continue
        futures[submit(client, submission, settings, source, workers)] = (index, 0)
    queue = as_completed(list(futures))
    try:
        for future in queue:
            index, attempt = futures.pop(future)
            submission = submissions[index]
            try:
                rows[index] = future.result()
            except Exception as err:
                if attempt == 0:
                    again = submit(client, submission, settings, source, workers)
                    futures[again] = (index, 1)
                    queue.add(again)
                    continue
                rows[index] = not_graded(submission, settings, f"the cluster could not grade it twice: "
                                                               f"{job_error(err)}")
                lost.append(submission.name)
            done(rows[index])
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        raise
    return [rows[i] for i in sorted(rows)], lost


def submit(client: Any, submission: Submission, settings: GradeSettings, source: DataSource,
           workers: list[str] | None) -> Any:
    return client.submit(grade_task, submission.name, submission.path.name, submission.path.read_bytes(), settings,
                         source, workers=workers, pure=False, allow_other_workers=False)
