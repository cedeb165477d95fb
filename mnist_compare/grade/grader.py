"""One submission graded: its class found by reading it, loaded in a process of its own, every check of
`--check` run against the Keras twin under the limits, and its row of the grade sheet.

    row = grade_one(submission, settings, data)       # a Graded: score, max_score, a status per check, ...

A submission's failure is its grade, never an error of the command: a file that cannot be read or loaded, a
class that is not there, a constructor that cannot take the settings is its row's `error`, with score 0.

Not for: many submissions at once (here.py, cluster.py) or the sheet's files (sheet.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from mnist_compare.check.checks import CHECK_NAMES, run_checks
from mnist_compare.check.sandbox import Limits, remote_class
from mnist_compare.data.idx import Dataset
from mnist_compare.grade.submissions import Submission
from mnist_compare.nets import keras_net
from mnist_compare.nets.submission_source import SubmissionError, train_on_batch_class
from mnist_compare.nets.user_net import NetLoadError, settings_problem
from mnist_compare.records.check import FAIL, PASS, Check
from mnist_compare.records.spec import RunSpec

STATUSES = ("PASS", "FAIL", "TIMEOUT", "MEMORY", "ERROR", "NOT RUN")  # a check's cell in the grade sheet
STOPPED = {"timeout": "TIMEOUT", "memory": "MEMORY", "ended": "ERROR", "raised": "ERROR"}


@dataclass(frozen=True)
class GradeSettings:
    """What every submission is checked with: the --check settings (a RunSpec whose net is filled in per
    submission), each check's points, the limits per check, and the class name when --net_class gives it."""

    template: RunSpec
    weights: dict[str, float]
    limits: Limits = field(default_factory=Limits)
    net_class: str | None = None


@dataclass
class Graded:
    """One row of the grade sheet, and the checks behind it."""

    submission: str
    score: float
    max_score: float
    statuses: dict[str, str]
    first_failure: str
    seconds: float
    error: str = ""
    file: str = ""
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"submission": self.submission, "score": self.score, "max_score": self.max_score,
                "checks": self.statuses, "first_failure": self.first_failure, "seconds": round(self.seconds, 2),
                "error": self.error, "file": self.file, "details": [c.to_dict() for c in self.checks]}


def status_of(check: Check) -> str:
    """A check's cell: PASS, FAIL, or how the submission's process stopped it (TIMEOUT, MEMORY, ERROR)."""
    if check.status == PASS:
        return "PASS"
    if check.measured == "not run":
        return "NOT RUN"
    return STOPPED.get(check.details.get("stopped", ""), "FAIL" if check.status == FAIL else str(check.status))


def max_score(weights: dict[str, float]) -> float:
    return float(sum(weights[name] for name in CHECK_NAMES))


def not_graded(submission: Submission, settings: GradeSettings, error: str, seconds: float = 0.0) -> Graded:
    """The row of a submission that could not be checked at all: score 0, every check NOT RUN, the reason."""
    return Graded(submission.name, 0.0, max_score(settings.weights), dict.fromkeys(CHECK_NAMES, "NOT RUN"), error,
                  seconds, error, str(submission.path or ""))


def graded(submission: Submission, settings: GradeSettings, checks: list[Check], seconds: float) -> Graded:
    """The row of a submission whose checks ran: a passed check scores its weight."""
    statuses = {name: "NOT RUN" for name in CHECK_NAMES} | {c.name: status_of(c) for c in checks}
    failed = next((c for c in checks if c.status != PASS), None)
    score = sum(settings.weights[c.name] for c in checks if c.status == PASS)
    first = f"{failed.name}: {failed.diagnosis or failed.measured}" if failed else ""
    return Graded(submission.name, float(score), max_score(settings.weights), statuses, first, seconds, "",
                  str(submission.path), checks)


def grade_one(submission: Submission, settings: GradeSettings, data: Dataset) -> Graded:
    """Every check of one submission; whatever the submission does costs only its own row."""
    start = time.perf_counter()
    if submission.path is None:
        return not_graded(submission, settings, submission.problem)
    try:
        name = train_on_batch_class(submission.path, settings.net_class)
        net = remote_class(f"{submission.path}:{name}", settings.limits)
    except (SubmissionError, NetLoadError) as err:
        return not_graded(submission, settings, one_line(str(err), submission), time.perf_counter() - start)
    spec = replace(settings.template, net=net)
    problem = settings_problem(spec)
    if problem:
        return not_graded(submission, settings, problem, time.perf_counter() - start)
    checks = run_checks(spec, data, keras_net.KerasNet)
    return graded(submission, settings, checks, time.perf_counter() - start)


def one_line(message: str, submission: Submission) -> str:
    """A load error without the grader's absolute paths: the submission's file named as the sheet names it."""
    if submission.path is not None:
        message = message.replace(str(submission.path.resolve()), submission.path.name)
        message = message.replace(str(submission.path), submission.path.name)
    return message.splitlines()[0] if message else message
