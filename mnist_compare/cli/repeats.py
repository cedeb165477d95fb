"""`--repeats auto`: repeat whole runs of a setting until its intervals are as narrow as asked, the cap, or the
time budget (BenchmarkDotNet's MaxRelativeError, torch's adaptive_autorange).

    after each repeat r >= 2 of a setting (every net of it trained at seed first + r - 1):
        half-width of each net's 95% interval of its test accuracy (pp): t(0.975, r - 1) s / sqrt(r)
        against --baseline: of the paired per-seed difference where the baseline ran those seeds
        stop the setting when every half-width <= --precision (and r >= the gate's floor),
        or r = --max_repeats, or --budget has run out (the command's, across settings)

The rule reads the intervals' width only, never a verdict (a rule that stopped on "worse" would find it far
more often than ALPHA). Width alone is not quite neutral: stopping when the sample's spread happens to be small
makes the t statistic larger, and with looks from 2 repeats on, a true drop of exactly the margin came out
"worse" in 8.4% of 4,000 simulated paired comparisons (6.0% unpaired) against the nominal 5%. So the first
look is after MIN_REPEATS = 5 (5.7% / 5.2%; 5.0% from 8 on), and a setting always gets 5 repeats, whatever
the budget (tests/test_repeats_auto.py). With --min_test_accuracy the calibrated gate's estimate of the
repeats it needs (stats.repeats_for) is a floor.
Not for: training (runs/runner.py) or the statistics themselves (output/stats.py).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from mnist_compare.output import stats
from mnist_compare.records.results import RunResult
from mnist_compare.records.saved import group_key
from mnist_compare.records.spec import RunSpec

MIN_REPEATS = 5  # the first look; fewer inflates "worse" at the margin's edge (simulated: 8.4% at 2, 5.7% at 5)


@dataclass
class RepeatRule:
    """Whether the next repeat of a setting is wanted (`wants`), and why each setting stopped (`stopped`)."""

    precision_pp: float
    max_repeats: int
    first_seed: int
    budget_s: float | None = None
    gate: float | None = None  # --min_test_accuracy as a fraction
    baseline: dict[tuple, dict[int, float]] = field(default_factory=dict)  # saved.group_key -> seed -> accuracy %
    started: float = field(default_factory=time.monotonic)
    stopped: dict[tuple, str] = field(default_factory=dict)  # setting -> why it stopped

    def wants(self, spec: RunSpec, results: list[RunResult]) -> bool:
        """False for every run of a setting that has stopped; a setting is judged when its next repeat would
        start (the first run of a repeat beyond MIN_REPEATS)."""
        setting = spec.setting()
        if setting in self.stopped:
            return False
        repeat = spec.seed - self.first_seed + 1
        done = [r for r in results if r.spec.setting() == setting and r.spec.seed - self.first_seed + 1 < repeat]
        started = any(r.spec.seed == spec.seed for r in results if r.spec.setting() == setting)  # mid-repeat
        if repeat <= min(MIN_REPEATS, self.max_repeats) or started:
            return True
        why = self.reason_to_stop(done, repeat - 1)
        if why:
            self.stopped[setting] = why
            return False
        return True

    def reason_to_stop(self, done: list[RunResult], repeats: int) -> str:
        widths = self.half_widths(done)
        widest = max(widths.values(), default=math.inf)
        measured = f"±{widest:.2f} pp" if math.isfinite(widest) else "no interval (a run did not finish)"
        floor = self.gate_floor(done)
        if widest <= self.precision_pp and repeats >= floor:
            return f"stopped after {repeats} repeats: {measured} <= {self.precision_pp:g} pp"
        if repeats >= self.max_repeats:
            return f"stopped at --max_repeats {self.max_repeats}: {measured} > {self.precision_pp:g} pp"
        if self.budget_s is not None and time.monotonic() - self.started >= self.budget_s:
            return f"stopped by --budget {self.budget_s:g} s after {repeats} repeats: {measured}"
        return ""

    def half_widths(self, done: list[RunResult]) -> dict[str, float]:
        """Each net's half-width (pp) of its accuracy's interval, or of its paired difference to the baseline."""
        widths = {}
        for name in dict.fromkeys(r.name for r in done):
            runs = [r for r in done if r.name == name]
            if not all(r.finished for r in runs):
                widths[name] = math.inf
                continue
            values = [100 * r.test_accuracy for r in runs]
            base = self.baseline.get(group_key({"name": name, "hyperparameters": runs[0].hyperparameters}), {})
            if all(r.seed in base for r in runs):
                values = stats.paired_differences(values, [base[r.seed] for r in runs])
            widths[name] = half_width(values)
        return widths

    def gate_floor(self, done: list[RunResult]) -> int:
        """The repeats the calibrated gate needs for the net nearest to failing it (1 without a gate)."""
        if self.gate is None:
            return 1
        floors = []
        for name in dict.fromkeys(r.name for r in done):
            values = [r.test_accuracy for r in done if r.name == name and r.finished]
            if len(values) >= 2 and statistics.stdev(values) > 0:
                needed = stats.repeats_for(values, self.gate, most=self.max_repeats)
                floors.append(self.max_repeats if needed is None else needed)
        return max(floors, default=1)

    def conclude(self, results: list[RunResult]) -> None:
        """Why each setting that ran to its last planned repeat (or was stopped by a signal) stopped."""
        for setting in dict.fromkeys(r.spec.setting() for r in results):
            if setting not in self.stopped:
                done = [r for r in results if r.spec.setting() == setting]
                repeats = len({r.seed for r in done})
                self.stopped[setting] = self.reason_to_stop(done, repeats) or \
                    f"stopped after {repeats} repeats by a signal: ±{max(self.half_widths(done).values()):.2f} pp"

    def record(self) -> list[dict[str, Any]]:
        return [{"setting": list(setting), "stopped": why} for setting, why in self.stopped.items()]


def half_width(values: list[float]) -> float:
    """t(0.975, n - 1) s / sqrt(n): the half-width of the mean's 95% interval (stats.mean_interval); 0 for
    values all equal, infinite for one value."""
    interval = stats.mean_interval(values)
    return math.inf if interval is None else (interval[1] - interval[0]) / 2
