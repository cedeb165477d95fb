"""--repeats auto: repeats until the interval is as narrow as --precision, the --max_repeats cap or the --budget,
and says why; the rule reads widths only, so the comparison that follows keeps its level (simulated)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import mnist_compare_command as mnist_compare

from mnist_compare.cli.repeats import MIN_REPEATS, RepeatRule, half_width
from mnist_compare.nets.my_net import NeuralNetwork
from mnist_compare.output import stats
from mnist_compare.records.results import RunResult
from mnist_compare.records.saved import group_key
from mnist_compare.records.spec import RunSpec

MARGIN = 0.2
SMALL = ["--hidden_size", "16", "--number_epochs", "1", "--seed", "1", "-q"]


def record(path) -> tuple[list[dict], list[dict]]:
    data = json.loads(path.read_text())
    return data["runs"], data["repeats_auto"]


def test_auto_stops_by_itself_at_the_precision_and_says_why(tmp_path):
    out = tmp_path / "auto.json"
    done = mnist_compare("--repeats", "auto", "--precision", "0.5", "--max_repeats", "6", *SMALL[:-1],
                         "--output", out)
    assert done.returncode == 0, done.stderr
    runs, (why,) = record(out)
    repeats = len(runs)
    assert MIN_REPEATS <= repeats < 6 and why["stopped"].startswith(f"stopped after {repeats} repeats: ±")
    widest = float(why["stopped"].split("±")[1].split(" ")[0])
    assert widest <= 0.5 and widest == pytest.approx(half_width([100 * r["test_accuracy"] for r in runs]), abs=0.006)
    assert f"--repeats auto at 16, 0.1, 128, sgd, glorot_uniform: {why['stopped']}" in done.stderr


@pytest.mark.parametrize("args, words, repeats", [(["--precision", "0.001", "--max_repeats", "3"],
                                                   "stopped at --max_repeats 3: ±", 3),
                                                  (["--precision", "0.001", "--budget", "0.1s"],
                                                   "stopped by --budget 0.1 s after 5 repeats", 5)])
def test_auto_stops_at_the_cap_or_the_budget(tmp_path, args, words, repeats):
    out = tmp_path / "auto.json"
    done = mnist_compare("--repeats", "auto", *args, *SMALL, "--output", out)
    assert done.returncode == 0, done.stderr
    runs, (why,) = record(out)
    assert len(runs) == repeats and why["stopped"].startswith(words), why


def test_against_a_baseline_the_paired_difference_decides_and_identical_runs_stop_at_the_first_look(tmp_path):
    base = tmp_path / "base.json"
    assert mnist_compare("--repeats", "6", *SMALL, "--output", base).returncode == 0
    out = tmp_path / "auto.json"
    done = mnist_compare("--repeats", "auto", "--precision", "0.01", *SMALL, "--baseline", base, "--output", out)
    assert done.returncode == 0, done.stderr
    runs, (why,) = record(out)
    assert len(runs) == MIN_REPEATS and why["stopped"] == f"stopped after {MIN_REPEATS} repeats: ±0.00 pp <= 0.01 pp"


@pytest.mark.parametrize("args, words", [(["--precision", "0.2"], "--precision has no effect without --repeats auto"),
                                         (["--repeats", "zero"], "a number of repeats (1 or more) or auto"),
                                         (["--repeats", "auto", "--budget", "ten minutes"], "a duration such as"),
                                         (["--repeats", "auto", "--precision", "nan"], "--precision"),
                                         (["--repeats", "auto", "--scheduler", "tcp://127.0.0.1:9"],
                                          "--repeats auto decides between repeats on this machine")])
def test_bad_auto_settings_are_refused_before_training(args, words):
    done = mnist_compare(*args, *SMALL)
    assert done.returncode == 2 and words in done.stderr and done.stdout == "", done.stderr


# -- the level holds: the rule never looks at a verdict ----------------------------------------------------------

def simulated_runs(accuracies_pp: list[float], first_seed: int = 0) -> list[RunResult]:
    runs = []
    for offset, accuracy in enumerate(accuracies_pp):
        result = RunResult(RunSpec(NeuralNetwork, 16, 0.1, 128, 1, first_seed + offset))
        result.test_accuracy = accuracy / 100
        runs.append(result)
    return runs


def stopped_after(rule: RepeatRule, draw, most: int) -> list[RunResult]:
    """Draw repeats one at a time, as here_mode does, until the rule stops the setting."""
    runs = simulated_runs([draw() for _ in range(MIN_REPEATS)])
    while len(runs) < most and not rule.reason_to_stop(runs, len(runs)):
        runs += simulated_runs([draw()], len(runs))
    return runs


@pytest.mark.parametrize("paired", [False, True])
def test_under_no_difference_worse_comes_out_at_most_at_the_nominal_rate(paired):
    """No difference beyond the margin, at its least favourable: new runs exactly MARGIN below the baseline's
    (H0 of "worse", d >= -MARGIN, holds with equality). Stopped by the rule, "worse" must come out at most
    ALPHA of the time (plus three Monte Carlo standard errors)."""
    rng = np.random.default_rng(36)
    trials, worse = 4000, 0
    for _ in range(trials):
        base = 97.0 + rng.normal(0, 0.3, 20)
        if paired:  # the same seeds: each new run is its baseline seed's plus a small noise, no shift
            values = iter(list(base - MARGIN + rng.normal(0, 0.1, 20)))
            key = group_key({"name": "my_net", "hyperparameters": simulated_runs([0.0])[0].hyperparameters})
            rule = RepeatRule(0.1, 20, 0, baseline={key: dict(enumerate(base))})
            runs = stopped_after(rule, lambda values=values: next(values), 20)
            verdict = stats.paired_three_way(stats.paired_differences(
                [100 * r.test_accuracy for r in runs], list(base[:len(runs)])), MARGIN)
        else:
            rule = RepeatRule(0.1, 20, 0)
            runs = stopped_after(rule, lambda: 97.0 - MARGIN + rng.normal(0, 0.3), 20)
            verdict = stats.three_way([100 * r.test_accuracy for r in runs], list(base[:5]), MARGIN)
        verdict.p_holm = verdict.p
        worse += verdict.claim == stats.WORSE
    rate = worse / trials
    print(f"paired={paired}: 'worse' in {worse} of {trials} trials at a true drop of the margin ({100 * rate:.1f}%)")
    assert rate <= stats.ALPHA + 3 * (stats.ALPHA * (1 - stats.ALPHA) / trials) ** 0.5  # 6.0%: looks from 2 on, 8.4%


def test_the_calibrated_gate_s_repeats_are_a_floor():
    accuracies = [90.1, 90.3, 89.9, 90.2, 90.0]  # ±0.20 pp: narrow enough for --precision 1
    runs = simulated_runs(accuracies)
    needed = stats.repeats_for([a / 100 for a in accuracies], 0.899, most=20)
    assert needed is not None and needed > len(runs)
    with_gate, without = RepeatRule(1.0, 20, 0, gate=0.899), RepeatRule(1.0, 20, 0)
    assert with_gate.gate_floor(runs) == needed and with_gate.reason_to_stop(runs, len(runs)) == ""
    assert without.reason_to_stop(runs, len(runs)).startswith("stopped after 5 repeats: ±0.20 pp <= 1 pp")
