"""Trustworthy timing: the speed ratio with its uncertainty, start-up apart, fair order, warnings, time to a
target accuracy, and the machine on record. No test here asserts a speed."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from conftest import run_cli

from mnist_compare.nets import keras_net, my_net
from mnist_compare.output import verdict
from mnist_compare.records.results import RunResult
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs import runner


def run(net: type, seed: int, time_s: float, epochs: list[float], accuracy: float = 0.97,
        backend: str | None = None) -> RunResult:
    """A hand-made finished RunResult with the given fit time and epoch times."""
    result = RunResult(RunSpec(net, seed=seed, number_epochs=len(epochs)), train_time_s=time_s,
                       test_accuracy=accuracy, first_epoch_s=epochs[0],
                       steady_epoch_s=sorted(epochs[1:])[len(epochs[1:]) // 2] if len(epochs) > 1 else math.nan,
                       history={"epoch_time_s": epochs})
    if backend:
        result.net_info = {"keras_backend": backend}
    return result


def test_the_ratio_and_its_uncertainty_match_a_hand_computed_value():
    mine = [run(my_net.NeuralNetwork, s, t, [t / 3] * 3) for s, t in enumerate((1.0, 1.2, 1.1))]
    theirs = [run(keras_net.KerasNet, s, t, [t / 3] * 3) for s, t in enumerate((3.0, 3.6, 3.3))]
    # means 1.1 and 3.3, sample stds 0.1 and 0.3: r = 3.0, sigma = 3.0 * sqrt((0.1/1.1)^2 + (0.3/3.3)^2) = 0.3857
    ratio, sigma = verdict.speed_ratio([r.train_time_s for r in mine], [r.train_time_s for r in theirs])
    assert ratio == pytest.approx(3.0) and sigma == pytest.approx(0.38571, rel=1e-4)
    line = verdict.comparison_line(mine, theirs)
    assert line.startswith("my_net trained 3.00 ± 0.39x faster than keras_net (Welch's t-test on time p = ")


def test_a_slower_net_turns_the_ratio_over_with_the_same_relative_error():
    assert verdict.format_ratio(0.5, 0.05) == "2.00 ± 0.20x slower"


def test_one_run_each_has_no_uncertainty_and_says_so():
    line = verdict.comparison_line([run(my_net.NeuralNetwork, 0, 1.0, [0.27, 0.25, 0.25])],
                                   [run(keras_net.KerasNet, 0, 3.0, [1.4, 0.8, 0.8], backend="tensorflow")])
    assert "3.0x faster than keras_net (1 run each; steady epochs 3.2x faster; keras_net's first epoch includes " \
           "0.6 s of tracing)" in line
    assert "±" not in line.split(";")[0]


def test_odd_repeats_train_the_nets_in_reverse_order():
    contenders = [RunSpec(my_net.NeuralNetwork, seed=7), RunSpec(keras_net.KerasNet, seed=7)]
    specs = runner.plan_runs(contenders, [16], [0.1], [128], 4)
    assert [(s.net_name, s.seed) for s in specs] == [("my_net", 7), ("keras_net", 7), ("keras_net", 8),
                                                     ("my_net", 8), ("my_net", 9), ("keras_net", 9),
                                                     ("keras_net", 10), ("my_net", 10)]


def test_a_run_whose_epochs_vary_more_than_2x_is_flagged_as_busy():
    warnings = verdict.timing_warnings([run(my_net.NeuralNetwork, 0, 1.0, [0.2, 0.1, 0.25, 0.1])])
    assert warnings == ["my_net (seed 0): its epochs took 0.10-0.25 s: the machine was busy; compare ratios from "
                        "repeated runs"]
    assert verdict.timing_warnings([run(my_net.NeuralNetwork, 0, 1.0, [0.2, 0.1, 0.19, 0.1])]) == []


def test_a_first_run_much_slower_than_the_rest_is_flagged():
    runs = [run(my_net.NeuralNetwork, s, t, [t]) for s, t in enumerate((5.0, 1.0, 1.02, 0.98, 1.01))]
    (warning,) = verdict.timing_warnings(runs)
    assert warning.startswith("my_net: the first run took 5.00 s, significantly slower than the others")
    even = [run(my_net.NeuralNetwork, s, t, [t]) for s, t in enumerate((1.05, 1.0, 1.02, 0.98, 1.01))]
    assert verdict.timing_warnings(even) == []


def test_a_ratio_whose_uncertainty_spans_one_is_no_significant_difference():
    mine = [run(my_net.NeuralNetwork, s, t, [t]) for s, t in enumerate((1.0, 2.0, 1.5))]
    theirs = [run(keras_net.KerasNet, s, t, [t]) for s, t in enumerate((1.2, 2.1, 1.6))]
    assert verdict.timing_warnings(mine + theirs) == [
        "my_net against keras_net: no significant speed difference (the ratio's uncertainty spans 1.0)"]


@pytest.mark.parametrize("target,reached", [("90", True), ("99.9", False)])
def test_time_to_a_target_accuracy_on_a_real_short_run(tmp_path, target, reached):
    path = tmp_path / "r.json"
    result = run_cli("--hidden_size", "64", "--number_epochs", "3", "--seed", "0", "--quiet", "--target_accuracy",
                     target, "--output", str(path))
    assert result.exit_code == 0
    (record,) = json.loads(path.read_text())["runs"]
    header, _, row = result.stdout.splitlines()[:3]
    assert f"Time to {target}%(s)" in header
    if reached:
        epoch = record["target_epoch"]
        assert 1 <= epoch <= 3 and record["history"]["test_accuracy"][epoch - 1] >= 0.9
        assert all(a < 0.9 for a in record["history"]["test_accuracy"][:epoch - 1])
        assert 0 < record["time_to_target_s"] <= record["train_time_s"] and f"(epoch {epoch})" in row
    else:
        assert record["target_epoch"] is None and record["time_to_target_s"] is None and "not reached" in row


def test_the_machine_and_the_epoch_split_are_on_record(tmp_path):
    path = tmp_path / "r.json"
    assert run_cli("--hidden_size", "16", "--number_epochs", "3", "--seed", "0", "--quiet", "--output",
                   str(path)).exit_code == 0
    data = json.loads(path.read_text())
    machine = data["machine"]
    assert machine["blas"] and all(isinstance(b["num_threads"], int) and b["architecture"] for b in machine["blas"])
    assert isinstance(machine["thread_environment"], dict)
    assert all(isinstance(x, float) for x in machine["load_average_before"] + machine["load_average_after"])
    (record,) = data["runs"]
    assert record["first_epoch_s"] == record["history"]["epoch_time_s"][0]
    assert record["steady_epoch_s"] == pytest.approx(statistics.median(record["history"]["epoch_time_s"][1:]))
    assert record["net_info"]["blas"]["internal_api"] == "openblas"
