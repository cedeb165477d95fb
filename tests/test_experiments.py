"""Beyond the original: repeats with statistics, sweeps, learning curves, optimisers, confusion matrices."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from conftest import run_cli

from mnist_compare.nets import my_net
from mnist_compare.nets.optimizers import Adam, init_kernel
from mnist_compare.output import verdict
from mnist_compare.records.spec import OptimizerSettings
from mnist_compare.runs import runner

QUICK = ["--hidden_size", "16", "--number_epochs", "1", "--seed", "3", "--quiet"]


def test_two_repeats_show_mean_and_std_of_the_two_runs_kept_in_json(tmp_path):
    path = tmp_path / "r.json"
    result = run_cli(*QUICK, "--repeats", "2", "--output", str(path))
    assert result.exit_code == 0
    runs = json.loads(path.read_text())["runs"]
    assert [r["seed"] for r in runs] == [3, 4]
    accuracies = [100 * r["test_accuracy"] for r in runs]
    row = next(line for line in result.stdout.splitlines() if "my_net" in line)
    expected = f"{np.mean(accuracies):.2f} ± {np.std(accuracies, ddof=1):.2f}"
    assert row.split("|")[3].strip() == expected


def test_a_2x2_sweep_of_both_nets_gives_8_rows_in_order_with_setting_columns():
    result = run_cli("--hidden_size", "8,12", "--lr", "0.1,0.2", "--number_epochs", "1", "--seed", "0",
                     "--compare_nets", "--quiet")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")][:3] == ["hidden_size", "lr", "Net"]
    rows = [[c.strip() for c in line.strip("|").split("|")][:3] for line in lines[2:]]
    assert rows == [[h, lr, net] for h in ("8", "12") for lr in ("0.1", "0.2") for net in ("my_net", "keras_net")]
    assert sum("my_net trained" in line for line in result.stdout.splitlines()) == 4


def test_welch_p_value_separates_noise_from_a_real_difference():
    assert verdict.welch_p_value([97.1, 97.3, 97.2], [97.2, 97.0, 97.3]) > 0.5
    assert verdict.welch_p_value([97.1, 97.2, 97.15], [95.0, 95.1, 95.05]) < 0.001
    assert math.isnan(verdict.welch_p_value([97.0], [96.0]))


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_the_expected_size(tmp_path):
    path = tmp_path / "curves.png"
    result = run_cli("--hidden_size", "16", "--number_epochs", "2", "--seed", "0", "--quiet",
                     "--eval_every_epoch", "--plot", str(path))
    assert result.exit_code == 0
    assert png_size(path) == (1100, 450)


def test_eval_every_epoch_records_test_metrics_per_epoch(mnist_subset):
    result = runner.fit_and_test(my_net.NeuralNetwork, 16, 128, 2, 0.1, seed=0, data=mnist_subset,
                                 eval_every_epoch=True)
    assert len(result.history["test_accuracy"]) == 2
    assert result.history["test_accuracy"][-1] == pytest.approx(result.test_accuracy)


def test_adam_matches_a_hand_computed_two_step_update():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    w = {"w": np.array([0.5, -0.25], np.float32)}
    g1, g2 = np.array([1.0, -4.0]), np.array([-2.0, 0.5])
    adam = Adam(lr, b1, b2, eps)
    adam.step(w, {"w": g1.astype(np.float32)})
    adam.step(w, {"w": g2.astype(np.float32)})
    # by hand, in float64, except that the bias correction uses the float32 betas, as Keras does
    fb1, fb2 = float(np.float32(b1)), float(np.float32(b2))
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    w1 = np.array([0.5, -0.25]) - lr * math.sqrt(1 - fb2) / (1 - fb1) * m1 / (np.sqrt(v1) + eps)
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    w2 = w1 - lr * math.sqrt(1 - fb2**2) / (1 - fb1**2) * m2 / (np.sqrt(v2) + eps)
    np.testing.assert_allclose(w["w"], w2, rtol=1e-5)  # measured 2.1e-6: 1 - b2^t computed in float32


def test_momentum_accumulates_velocity_like_keras():
    net = my_net.NeuralNetwork(2, 2, 2, lr=0.5, optimizer=OptimizerSettings("momentum", momentum=0.9))
    w = {"w": np.array([1.0], np.float32)}
    for g in (2.0, 2.0):
        net.optimizer.step(w, {"w": np.array([g], np.float32)})
    # v1 = -0.5*2 = -1, w = 0; v2 = 0.9*(-1) - 1 = -1.9, w = -1.9
    np.testing.assert_allclose(w["w"], [-1.9], rtol=1e-6)


@pytest.mark.parametrize("kind,std", [("glorot_normal", math.sqrt(2 / (784 + 300))), ("he_normal", math.sqrt(2 / 784))])
def test_normal_initialisers_have_keras_variance_and_truncation(kind, std):
    W = init_kernel(np.random.default_rng(0), 784, 300, kind)
    assert W.std() == pytest.approx(std, rel=0.02)
    assert np.abs(W).max() <= 2 * std / 0.87962566103423978 + 1e-6


def test_confusion_rows_sum_to_the_test_class_counts(mnist):
    result = run_cli(*QUICK, "--confusion")
    assert result.exit_code == 0 and "confusion matrix on the test set" in result.stdout
    counts = np.bincount(mnist[3], minlength=10)
    table = [line for line in result.stdout.split("confusion matrix")[1].splitlines() if line.startswith("| ")][1:]
    rows = [[int(c) for c in line.strip("|").split("|")[1:11]] for line in table]
    np.testing.assert_array_equal(np.sum(rows, axis=1), counts)


def test_a_sweep_plots_one_png_per_setting(tmp_path):
    path = tmp_path / "curves.png"
    result = run_cli("--hidden_size", "8,12", "--number_epochs", "1", "--seed", "0", "--quiet", "--plot", str(path))
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves_hidden_size-12.png", "curves_hidden_size-8.png"]
