"""`--gradescope results.json`: --check's table in Gradescope's autograder format, one test per check.

    {"score": 7.0, "output": "...", "visibility": "visible", "stdout_visibility": "visible",
     "tests": [{"name": "forward", "number": "3", "score": 2.0, "max_score": 2.0, "status": "passed",
                "output": "predict 5.96e-08 from Keras' ... (tolerance 1e-05)", "visibility": "visible"}, ...]}

A passed check scores its weight, a failed one 0; the output of a failed check is its diagnosis. Weights are
each check's default (check/checks.py's table: 1 each) unless `--check_weights` gives others, as
`forward=2,gradients=3` or a TOML file of `name = weight` lines (a [weights] table also works). In a TOML
file a check may also be a table, as gradescope-utils' decorators set a test's fields:

    trajectory = {weight = 3, visibility = "after_due_date", hide_diagnosis = true}

visibility is Gradescope's (visible, hidden, after_due_date, after_published); hide_diagnosis shows the
student only PASS or FAIL for that check.
Not for: running the checks (check/).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

from mnist_compare.records.results import atomic_write
from mnist_compare.system.reading import MIB, FileRefused, read_text

WEIGHTS_LIMIT = MIB
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class WeightsError(ValueError):
    """--check_weights that cannot be read: an unknown check, a weight that is not a number >= 0, a bad file."""


class Weights(dict):
    """Each check's points (a dict: check name -> weight), and how Gradescope shows each check (`shown`: check
    name -> {"visibility": ..., "hide_diagnosis": bool}; a check not there is visible with its diagnosis)."""

    def __init__(self, weights: dict[str, float], shown: dict[str, dict] | None = None) -> None:
        super().__init__(weights)
        self.shown = shown or {}


def parse_weights(text: str, defaults: dict[str, float]) -> dict[str, float]:
    """Weights by check name from `name=weight,...` or a TOML file's path; check names may use _ or - for
    spaces (single_step). Every check not given keeps its weight in `defaults` (check name -> weight)."""
    path = Path(text)
    if path.suffix.lower() == ".toml" or os.path.lexists(path):
        pairs = list(weights_table(path).items())
    else:
        pairs = [tuple(item.split("=", 1)) if "=" in item else (item, None) for item in text.split(",")]
    weights, names, shown = dict(defaults), tuple(defaults), {}
    for name, value in pairs:
        key = str(name).strip().replace("_", " ").replace("-", " ")
        if key not in weights:
            raise WeightsError(f"{name}: not a check; the checks are {', '.join(names)}")
        if isinstance(value, dict):
            shown[key] = shown_fields(name, value)
            value = value.get("weight", weights[key])
        weights[key] = weight_value(name, value)
    return Weights(weights, shown)


def weights_table(path: Path) -> dict[str, Any]:
    """The weights file's table of checks (its [weights] table, or the whole file), read by the guarded
    reader: a FIFO, a device, a huge file or TOML whose weights are not a table is a WeightsError."""
    try:
        table = tomllib.loads(read_text(path, "the weights file", WEIGHTS_LIMIT))
    except FileRefused as err:
        raise WeightsError(str(err)) from None
    except tomllib.TOMLDecodeError as err:
        raise WeightsError(f"{path}: cannot read it as TOML ({err})") from None
    weights = table.get("weights", table)
    if not isinstance(weights, dict):
        raise WeightsError(f"{path}: its weights are {weights!r}, not a table of check = weight")
    return weights


def shown_fields(name: str, table: dict) -> dict:
    """A check's table in the weights file: its visibility and hide_diagnosis, checked."""
    unknown = set(table) - {"weight", "visibility", "hide_diagnosis"}
    if unknown:
        raise WeightsError(f"{name}: unknown field {', '.join(sorted(unknown))} (weight, visibility, hide_diagnosis)")
    visibility = table.get("visibility", "visible")
    if visibility not in VISIBILITIES:
        raise WeightsError(f"{name}: visibility {visibility!r} is not one of {', '.join(VISIBILITIES)}")
    if not isinstance(table.get("hide_diagnosis", False), bool):
        raise WeightsError(f"{name}: hide_diagnosis must be true or false")
    return {"visibility": visibility, "hide_diagnosis": table.get("hide_diagnosis", False)}


def weight_value(name: str, value: Any) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise WeightsError(f"{name}={value}: a weight must be a number >= 0") from None
    if not weight >= 0 or weight == float("inf"):
        raise WeightsError(f"{name}={value}: a weight must be a number >= 0")
    return weight


def shown_output(check: Any) -> str:
    """What the student reads for one check: the diagnosis of a failure, else what was measured."""
    if check.passed:
        return f"PASS: {check.measured} (tolerance {check.tolerance})"
    return (f"{check.status}: {check.diagnosis or check.measured} (measured {check.measured}; "
            f"tolerance {check.tolerance})")


def gradescope_results(checks: list, weights: dict[str, float], net_type: str) -> dict[str, Any]:
    """Gradescope's results.json for the checks (its documented fields only); `weights` has every check's."""
    shown = getattr(weights, "shown", {})
    tests = [{"name": check.name, "number": str(number),
              "score": weights[check.name] if check.passed else 0.0,
              "max_score": weights[check.name], "status": "passed" if check.passed else "failed",
              "output": ("PASS" if check.passed else "FAIL") if shown.get(check.name, {}).get("hide_diagnosis")
              else shown_output(check), "visibility": shown.get(check.name, {}).get("visibility", "visible")}
             for number, check in enumerate(checks, 1)]
    passed = sum(test["status"] == "passed" for test in tests)
    return {"score": sum(test["score"] for test in tests),
            "output": f"mnist-compare --check of {net_type}: {passed} of {len(tests)} checks passed against the "
                      "Keras twin (each test's output says what was measured, and for a failure what is wrong)",
            "visibility": "visible", "stdout_visibility": "visible", "tests": tests}


def write_gradescope(path: str | Path, checks: list, weights: dict[str, float], net_type: str) -> None:
    text = json.dumps(gradescope_results(checks, weights, net_type), indent=2) + "\n"
    with atomic_write(path, "w") as f:
        f.write(text)
