"""One row of `--check`'s table: a check's name, its status (a value, not a string to compare), what it
measured against what bound, and for a failure the diagnosis. Not for: running the checks (check/).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


class Status(str, Enum):
    """How a check ended: it passed, failed, or a stop signal came first. A str, so results files and tables
    carry its plain name ("PASS"); `str()` and f-strings give that name too, on Python 3.10 as on 3.11
    (enum.StrEnum, which does so by itself, is 3.11+)."""

    PASS = "PASS"
    FAIL = "FAIL"
    INTERRUPTED = "INTERRUPTED"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


PASS, FAIL, INTERRUPTED = Status.PASS, Status.FAIL, Status.INTERRUPTED


@dataclass
class Check:
    """One row of the check table. `details` holds what a check found beyond its row (trajectory:
    first_divergence, first_parameter)."""

    name: str
    status: Status
    measured: str
    tolerance: str
    diagnosis: str = ""
    settings: dict = field(default_factory=dict)  # what the check ran with: sizes, lr, optimiser, init, seed
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    def to_dict(self) -> dict:
        """The check as results files record it, its details flattened in (`first_divergence`, ...)."""
        record = asdict(self)
        record["status"] = str(self.status)
        details = record.pop("details")
        return {**record, **details}


def verdict(name: str, passed: bool, measured: str, tolerance: str, diagnosis: str) -> Check:
    return Check(name, PASS if passed else FAIL, measured, tolerance, "" if passed else diagnosis)
