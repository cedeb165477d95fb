"""The verdict under the table: how much faster, how sure, where the time went, and what to distrust.

    ratio r = mean(their times) / mean(my times);  its standard deviation, as hyperfine computes it:
    sigma_r = r * sqrt((s_mine / mean_mine)^2 + (s_theirs / mean_theirs)^2)     (sample standard deviations)

Start-up cost of a run: its first epoch's excess over its steady epoch (the median of epochs 2..n), which
holds Keras' tracing (TensorFlow) or XLA compilation (JAX). Not for: the table itself (report.py).
"""

from __future__ import annotations

import math
import statistics

from mnist_compare.output.stats import holm, untestable, welch_p
from mnist_compare.records.results import INTERRUPTED, RunResult
from mnist_compare.records.spec import SETTING_KEYS

OUTLIER_THRESHOLD = 14.0  # hyperfine's modified Z-score above which a first run is "significantly slower"
BUSY_SPREAD = 2.0  # steady epochs whose max/min exceeds this were measured on a busy machine
STARTUP_NAMES = {"tensorflow": "tracing", "jax": "XLA compilation"}  # what a Keras first epoch holds


def welch_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's t-test that the means of a and b are equal (NaN when undefined: one run on
    a side, or no spread on either)."""
    return math.nan if untestable(a, b) else welch_p(a, b, "two-sided")


def speed_ratio(mine: list[float], theirs: list[float]) -> tuple[float, float | None]:
    """(mean(theirs) / mean(mine), its standard deviation by error propagation); None with one run of
    either, where no spread can be estimated."""
    ratio = statistics.fmean(theirs) / statistics.fmean(mine)
    if len(mine) < 2 or len(theirs) < 2:
        return ratio, None
    relative = math.hypot(statistics.stdev(mine) / statistics.fmean(mine),
                          statistics.stdev(theirs) / statistics.fmean(theirs))
    return ratio, ratio * relative


def per_job_ratio(mine: list[RunResult], theirs: list[RunResult]) -> tuple[float, float | None]:
    """(mean, sample std) of their time / my time within each job (same seed, same worker): never raw seconds
    from different machines. The std is None with one job."""
    my_time = {r.seed: r.train_time_s for r in mine}
    ratios = [r.train_time_s / my_time[r.seed] for r in theirs if r.seed in my_time]
    return statistics.fmean(ratios), statistics.stdev(ratios) if len(ratios) > 1 else None


def format_ratio(ratio: float, sigma: float | None) -> str:
    """`3.1x faster`, `3.10 ± 0.12x faster`, or `1.5x slower` (a ratio below 1 turned over, same relative error)."""
    faster = ratio >= 1
    value = ratio if faster else 1 / ratio
    word = "faster" if faster else "slower"
    if sigma is None:
        return f"{value:.1f}x {word}"
    return f"{value:.2f} ± {value * sigma / ratio:.2f}x {word}"


def spans_one(ratio: float, sigma: float | None) -> bool:
    """True when the ratio's one-sigma interval includes 1: no significant speed difference."""
    return sigma is not None and ratio - sigma <= 1 <= ratio + sigma


def startup_phrase(runs: list[RunResult]) -> str:
    """`keras_net's first epoch includes 0.9 s of tracing` (mean over runs), or "" below 0.05 s."""
    excess = [r.first_epoch_s - r.steady_epoch_s for r in runs if math.isfinite(r.steady_epoch_s)]
    if not excess or statistics.fmean(excess) < 0.05:
        return ""
    what = STARTUP_NAMES.get(runs[0].net_info.get("keras_backend"), "start-up")
    return f"{runs[0].name}'s first epoch includes {statistics.fmean(excess):.1f} s of {what}"


def time_ratio(mine: list[RunResult], theirs: list[RunResult]) -> tuple[float, float | None, list[str]]:
    """(their time / my time, its sigma, notes): from means, or on a cluster the mean of per-job ratios (times
    measured on one machine only), with a note that says so."""
    hosts = {r.net_info.get("host") for r in mine + theirs} - {None}
    if hosts:
        ratio, sigma = per_job_ratio(mine, theirs)
        return ratio, sigma, [f"mean of per-job ratios on {len(hosts)} host{'s' * (len(hosts) > 1)}"]
    return (*speed_ratio([r.train_time_s for r in mine], [r.train_time_s for r in theirs]), [])


def speed_clause(mine: list[RunResult], theirs: list[RunResult]) -> str:
    """`trained 3.10 ± 0.12x faster than keras_net (Welch's t-test on time p = 0.001; steady epochs 2.6x;
    keras_net's first epoch includes 0.9 s of tracing)`, Keras' speed levers first when they were used."""
    ratio, sigma, how = time_ratio(mine, theirs)
    notes = keras_levers(theirs[0]) + how
    if sigma is None:
        notes.append("1 run each")
    else:
        p = welch_p_value([r.train_time_s for r in mine], [r.train_time_s for r in theirs])
        notes.append(f"Welch's t-test on time p = {p:.3g}" if not math.isnan(p) else "no spread in time")
    steady = [r.steady_epoch_s for r in mine + theirs]
    if all(math.isfinite(s) for s in steady):
        notes.append(f"steady epochs {format_ratio(*speed_ratio(steady[:len(mine)], steady[len(mine):]))}")
    notes += [phrase for phrase in (startup_phrase(theirs), startup_phrase(mine)) if phrase]
    return f"trained {format_ratio(ratio, sigma)} than {theirs[0].name} ({'; '.join(notes)})"


def keras_levers(result: RunResult) -> list[str]:
    """["steps_per_execution 32, jit_compile false"] when a run used Keras' speed levers away from their
    defaults, so that a verdict always says which Keras it measured; [] otherwise."""
    spec = result.spec
    levers = [f"steps_per_execution {spec.steps_per_execution}"] * (spec.steps_per_execution != 1)
    levers += [f"jit_compile {spec.jit_compile}"] * (spec.jit_compile != "auto")
    return [", ".join(levers)] if levers else []


def accuracy_p(mine: list[RunResult], theirs: list[RunResult]) -> float:
    """Welch's p on the two nets' test accuracies (NaN with one run of either)."""
    return welch_p_value([r.test_accuracy for r in mine], [r.test_accuracy for r in theirs])


def comparison_line(mine: list[RunResult], theirs: list[RunResult], p_holm: float | None = None,
                    family: int = 1) -> str:
    """`my_net trained 3.1x faster than keras_net (...); test accuracy difference +0.05 pp (Welch's t-test
    p = 0.41: no difference shown)`; with several lines, the p after Holm's correction over `family` tests.
    A p above 0.05 shows no difference, which is not a proof of equality (that is --baseline's TOST)."""
    my_acc, their_acc = ([100 * r.test_accuracy for r in runs] for runs in (mine, theirs))
    line = (f"{mine[0].name} {speed_clause(mine, theirs)}; test accuracy difference "
            f"{statistics.fmean(my_acc) - statistics.fmean(their_acc):+.2f} pp")
    p = accuracy_p(mine, theirs)
    if not math.isnan(p):
        adjusted = p if p_holm is None else p_holm
        holm = f", Holm over {family} tests {adjusted:.3f}" if family > 1 else ""
        verdict = "no difference shown" if adjusted >= 0.05 else "a difference at the 5% level"
        line += f" (Welch's t-test p = {p:.3f}{holm}: {verdict})"
    return line


def format_setting(value: object) -> str:
    """A setting as the table shows it: floats in the shortest form (0.1, 1e+10)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def grouped(results: list[RunResult]) -> dict[tuple, list[RunResult]]:
    """Runs keyed by (setting, net name), in the order they were first trained. A run that a stop signal
    interrupted is left out of a group in which other runs finished: the finished repeats keep their mean,
    their ± and the verdict (table_rows says how many were interrupted)."""
    groups: dict[tuple, list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.spec.setting(), result.name), []).append(result)
    return {key: [r for r in runs if r.status != INTERRUPTED] or runs for key, runs in groups.items()}


def first_against_others(groups: dict[tuple, list[RunResult]]) -> list[tuple[tuple, str, str]]:
    """(setting, the first net trained in it, another net of it) for every other net, in training order."""
    pairs = []
    for setting in dict.fromkeys(s for s, _ in groups):
        names = [name for s, name in groups if s == setting]
        pairs += [(setting, names[0], name) for name in names[1:]]
    return pairs


def varying_settings(results: list[RunResult]) -> list[str]:
    """The setting keys whose values differ between runs (the setting columns of the table)."""
    return [key for i, key in enumerate(SETTING_KEYS) if len({r.spec.setting()[i] for r in results}) > 1]


def summary_lines(results: list[RunResult]) -> list[str]:
    """Per setting, one comparison line of the first net trained against each other net, where both
    finished every run; the accuracy tests of all lines are one family for Holm's correction."""
    groups = grouped(results)
    vary = varying_settings(results)
    pairs = [(setting, groups[(setting, first)], groups[(setting, other)])
             for setting, first, other in first_against_others(groups)]
    pairs = [(s, mine, theirs) for s, mine, theirs in pairs if all(r.finished for r in mine + theirs)]
    raw = [accuracy_p(mine, theirs) for _, mine, theirs in pairs]
    tested = [i for i, p in enumerate(raw) if not math.isnan(p)]
    adjusted = dict(zip(tested, holm([raw[i] for i in tested]), strict=True))
    lines = []
    for i, (setting, mine, theirs) in enumerate(pairs):
        prefix = ", ".join(f"{key}={format_setting(value)}" for key, value in zip(SETTING_KEYS, setting, strict=True)
                           if key in vary)
        lines.append(f"{prefix}: " * bool(prefix) + comparison_line(mine, theirs, adjusted.get(i), len(tested)))
    return lines


def timing_warnings(results: list[RunResult]) -> list[str]:
    """One line per reason to distrust a time: a run other processes slowed (RunResult.time_distorted); a run
    whose steady epochs vary by more than 2x; a first run much slower than the rest of its group (hyperfine's
    modified Z-score above 14); a speed ratio whose uncertainty spans 1.0."""
    warnings = []
    for (_, name), runs in grouped(results).items():
        distorted = [r for r in runs if r.finished and r.time_distorted]
        if distorted:
            held = statistics.fmean(r.others_cores for r in distorted)
            warnings.append(f"{name}: other processes held {held:.1f} cores while {len(distorted)} of its "
                            f"{len(runs)} run{'s' * (len(runs) != 1)} trained, and its threads do not follow the "
                            "load: its time is distorted by the load; rerun on a quiet machine")
    for run in (r for r in results if r.finished and len(r.history.get("epoch_time_s", [])) > 2):
        steady = run.history["epoch_time_s"][1:]
        if max(steady) > BUSY_SPREAD * min(steady):
            warnings.append(f"{run.name} (seed {run.seed}): its epochs took {min(steady):.2f}-{max(steady):.2f} s: "
                            "the machine was busy; compare ratios from repeated runs")
    for (_, name), runs in grouped(results).items():
        times = [r.train_time_s for r in runs if r.finished]
        if len(times) > 2 and modified_zscores(times)[0] > OUTLIER_THRESHOLD:
            warnings.append(f"{name}: the first run took {times[0]:.2f} s, significantly slower than the others "
                            f"(median {statistics.median(times[1:]):.2f} s): caches, or another process")
    groups = grouped(results)
    for setting, first, other in first_against_others(groups):
        mine, theirs = ([r.train_time_s for r in groups[(setting, name)] if r.finished] for name in (first, other))
        if mine and theirs and spans_one(*speed_ratio(mine, theirs)):
            warnings.append(f"{first} against {other}: no significant speed difference (the ratio's "
                            "uncertainty spans 1.0)")
    return warnings


def modified_zscores(values: list[float]) -> list[float]:
    """(x - median) / (1.4826 MAD) for each value, as hyperfine scores outliers; 0 when MAD is 0."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return [(v - median) / (1.4826 * mad) if mad else 0.0 for v in values]
