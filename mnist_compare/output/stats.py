"""The statistics of a comparison: a three-way verdict against a margin, Holm's correction, and how often a
CI gate fails a net by chance. The tests are scipy.stats'; only Holm's step-down, which scipy lacks, is here.

For a difference d = mean(new) - mean(base) and a margin m > 0, with Welch's t-tests (unequal variances;
each side's values are assumed independent and roughly normal):

    worse   shown when H0: d >= -m is rejected          (one-sided: new + m < base)
    better  shown when H0: d <= +m is rejected          (one-sided: new - m > base)
    same    shown when both H0: d <= -m and H0: d >= +m are rejected (TOST: p = the larger of the two)

Paired by seed (the same seeds on both sides: a seed gives the same bits, so the seed-to-seed spread cancels),
the same three tests run on the per-seed differences d_i = new_i - base_i with one-sample t-tests
(scipy's ttest_1samp against -m and +m); differences that are all 0 are "same (identical on every seed)".

Each test can reject only when the estimate lies in its own region (below -m, beyond +m, within ±m), so
testing the one the estimate points to is the same as running all three. "inconclusive" when it does not
reject at ALPHA after Holm's correction across every test of the command.
Not for: reading files or matching rows (baseline.py).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05
BETTER, SAME, WORSE, INCONCLUSIVE = "better", "same", "worse", "inconclusive"
IDENTICAL = "identical on every seed"  # a paired verdict that needs no test
DECIMALS = 9  # differences of accuracies in pp rounded here: 0.01 pp steps, so only float noise goes


@dataclass
class Verdict:
    """A claim about new against base. `p` is the raw p-value of the test for the region the estimate lies
    in (None without a test: one run on a side, or no spread), `p_holm` that p after Holm's correction."""

    region: str  # BETTER, SAME or WORSE: where the estimate lies against the margin
    p: float | None
    p_holm: float | None = None
    why_untested: str = ""  # "1 run" or "no spread" when p is None

    @property
    def claim(self) -> str:
        """The region when it is shown (adjusted p < ALPHA, or no test possible), else INCONCLUSIVE."""
        if self.p is None:
            return self.region
        return self.region if self.p_holm is not None and self.p_holm < ALPHA else INCONCLUSIVE

    def describe(self) -> str:
        """`same (Holm p = 0.003)`, `worse (1 run: no test)`, `inconclusive (Holm p = 0.21)`."""
        if self.p is None:
            return f"{self.claim} ({self.why_untested})" if self.why_untested == IDENTICAL \
                else f"{self.claim} (no test: {self.why_untested})"
        return f"{self.claim} (Holm p = {self.p_holm:.3g})"


def scipy_stats():
    """scipy.stats, imported when a test runs: at the command's start it would add half a second to every
    run, and a Ctrl-C inside its import was swallowed (measured: exit 0 instead of 130)."""
    from scipy import stats

    return stats


def welch_p(new: list[float], base: list[float], alternative: str) -> float:
    """Welch's t-test from each side's mean, standard deviation and size. From the summaries, not the values:
    scipy's moment calculation computes the spread of identical values (two repeats with the same accuracy)
    as a tiny float and warns of precision loss on stderr, where statistics.stdev gives exactly 0."""
    return float(scipy_stats().ttest_ind_from_stats(*summary(new), *summary(base), equal_var=False,
                                                    alternative=alternative).pvalue)


def summary(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) of at least two values."""
    return statistics.fmean(values), statistics.stdev(values), len(values)


def untestable(new: list[float], base: list[float]) -> str:
    """Why no t-test applies ("1 run", "no spread"), or "" when one does."""
    if len(new) < 2 or len(base) < 2:
        return "1 run"
    if statistics.pvariance(new) == 0 and statistics.pvariance(base) == 0:
        return "no spread"
    return ""


def three_way(new: list[float], base: list[float], margin: float, higher_is_better: bool = True) -> Verdict:
    """The verdict on mean(new) - mean(base) against ±margin (module docstring); for a metric where lower is
    better (times), the regions are swapped."""
    d = statistics.fmean(new) - statistics.fmean(base)
    region = region_of(d, margin, higher_is_better)
    why = untestable(new, base)
    if why:
        return Verdict(region, None, why_untested=why)
    shifted_up, shifted_down = [x + margin for x in new], [x - margin for x in new]
    if d < -margin:
        p = welch_p(shifted_up, base, "less")
    elif d > margin:
        p = welch_p(shifted_down, base, "greater")
    else:
        p = max(welch_p(shifted_up, base, "greater"), welch_p(shifted_down, base, "less"))
    return Verdict(region, p)


def region_of(d: float, margin: float, higher_is_better: bool = True) -> str:
    above, below = (BETTER, WORSE) if higher_is_better else (WORSE, BETTER)
    return below if d < -margin else above if d > margin else SAME


def paired_differences(new: list[float], base: list[float]) -> list[float]:
    """new_i - base_i for values paired by seed, rounded to DECIMALS: a constant drop is exactly constant."""
    return [round(n - b, DECIMALS) for n, b in zip(new, base, strict=True)]


def paired_three_way(differences: list[float], margin: float) -> Verdict:
    """The verdict on the mean of per-seed differences against ±margin (module docstring): one-sample t-tests
    of the differences against -margin and +margin; identical on every seed is "same" without a test."""
    if all(d == 0 for d in differences):
        return Verdict(SAME, None, why_untested=IDENTICAL)
    d = statistics.fmean(differences)
    region = region_of(d, margin)
    if len(differences) < 2:
        return Verdict(region, None, why_untested="1 seed")
    if statistics.pvariance(differences) == 0:
        return Verdict(region, None, why_untested="the same difference on every seed")

    def p(mean: float, alternative: str) -> float:
        return float(scipy_stats().ttest_1samp(differences, mean, alternative=alternative).pvalue)

    if region == WORSE:
        return Verdict(region, p(-margin, "less"))
    if region == BETTER:
        return Verdict(region, p(margin, "greater"))
    return Verdict(region, max(p(-margin, "greater"), p(margin, "less")))


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """The t interval of the values' mean (scipy's ttest_1samp(...).confidence_interval): of per-seed
    differences, the paired interval. A point when every value is the same, None with one value."""
    if len(values) < 2:
        return None
    if statistics.pvariance(values) == 0:
        return values[0], values[0]
    interval = scipy_stats().ttest_1samp(values, 0.0).confidence_interval(level)
    return float(interval.low), float(interval.high)


def difference_interval(new: list[float], base: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Welch's confidence interval of mean(new) - mean(base): d ± t(level, df) sqrt(s_new²/n_new + s_base²/n_base)
    with Welch-Satterthwaite's df (scipy's ttest_ind(...).confidence_interval, from the summaries as welch_p);
    None without a spread to estimate it from."""
    if untestable(new, base):
        return None
    (mean_new, s_new, n_new), (mean_base, s_base, n_base) = summary(new), summary(base)
    v_new, v_base = s_new**2 / n_new, s_base**2 / n_base
    df = (v_new + v_base) ** 2 / (v_new**2 / (n_new - 1) + v_base**2 / (n_base - 1))  # Welch-Satterthwaite
    half = float(scipy_stats().t.ppf((1 + level) / 2, df)) * math.sqrt(v_new + v_base)
    d = mean_new - mean_base
    return d - half, d + half


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order: sorted ascending, the k-th smallest (from 0)
    becomes max over j <= k of min(1, (n - j) p_(j)). Controls the chance of any false claim at ALPHA."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def correct(verdicts: list[Verdict]) -> int:
    """Set p_holm on every tested verdict (one family: all of a command's tests); returns the family's size."""
    tested = [v for v in verdicts if v.p is not None]
    for verdict, adjusted in zip(tested, holm([v.p for v in tested]), strict=True):
        verdict.p_holm = adjusted
    return len(tested)


def gate_failure_rate(values: list[float], gate: float) -> float:
    """How often the mean of another len(values) runs of this net falls below `gate`: the predictive
    distribution of a new mean, mean + s sqrt(2/n) t(n-1) (Student's t from the n values measured)."""
    n, mean, s = len(values), statistics.fmean(values), statistics.stdev(values)
    if s == 0:
        return float(mean < gate)
    return float(scipy_stats().t.cdf((gate - mean) / (s * math.sqrt(2 / n)), df=n - 1))


def safe_gate(values: list[float], rate: float = ALPHA) -> float:
    """The gate that a net like this one fails `rate` of the time, by gate_failure_rate's distribution."""
    n, mean, s = len(values), statistics.fmean(values), statistics.stdev(values)
    return mean + float(scipy_stats().t.ppf(rate, df=n - 1)) * s * math.sqrt(2 / n)


def repeats_for(values: list[float], gate: float, rate: float = ALPHA, most: int = 20) -> int | None:
    """The fewest repeats k (up to `most`) whose mean, predicted from these values (spread s/sqrt(k) plus the
    uncertainty of their own mean), falls below `gate` at most `rate` of the time; None when none does."""
    n, mean, s = len(values), statistics.fmean(values), statistics.stdev(values)
    for k in range(n, most + 1):
        if scipy_stats().t.cdf((gate - mean) / (s * math.sqrt(1 / k + 1 / n)), df=n - 1) <= rate:
            return k
    return None
