"""The command's shape: options defined once (dash spellings normalised), grouped help, and each mode
honouring an option or refusing it (exit 2, naming it); --check honours --optimizer and --init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
STUDENT = f"{ROOT / 'examples' / 'student_net.py'}:StudentNet"


def test_dash_spellings_reach_the_same_options(tmp_path):
    path = tmp_path / "r.json"
    result = run_cli("--hidden-size", "16", "--number-epochs", "1", "--seed", "0", "--blas-threads", "all",
                     "--init", "he-normal", "--quiet", "--output", str(path))
    assert result.exit_code == 0, result.stderr
    options = json.loads(path.read_text())["options"]
    assert options["hidden_size"] == [16] and options["number_epochs"] == 1 and options["blas_threads"] == "all"
    assert options["init"] == "he_normal"


def test_help_groups_the_options_under_sections_after_examples():
    text = run_cli("--help").stdout
    sections = ["What to train:", "The network and its training (a comma list sweeps):", "Optimiser",
                "Outputs and the CI gate:", "Keras:", "my_net's speed:", "On a Dask cluster:"]
    positions = [text.index(title) for title in sections]
    assert positions == sorted(positions) and text.index("Examples:") < positions[0]
    listed = text[positions[0]:]
    assert listed.count("--hidden_size") == 1 and "--hidden-size" not in listed  # declared once


@pytest.mark.parametrize("args,named", [
    (["--repeats", "2"], "--repeats"), (["--plot", "x.png"], "--plot"), (["--compare_nets"], "--compare_nets"),
    (["--keras_backend", "jax"], "--keras_backend"), (["--min_test_accuracy", "90"], "--min_test_accuracy"),
    (["--number_epochs", "3"], "--number_epochs"), (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler"),
    (["--hidden_size", "16,32"], "--hidden_size 16,32"), (["--blas_threads", "1"], "--blas_threads"),
])
def test_check_refuses_an_option_it_cannot_honour_naming_it(args, named):
    result = run_cli("--check", *args)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert named in line and ("no effect with --check" in line or "checks one setting" in line), result.stderr


def test_worker_threads_without_a_scheduler_is_refused():
    result = run_cli("--worker_threads", "2", "--number_epochs", "1")
    assert result.exit_code == 2 and "--worker_threads has no effect without --scheduler" in result.stderr


def test_verbose_on_a_cluster_is_refused_before_connecting():
    result = run_cli("--verbose", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2 and "--verbose has no effect with --scheduler" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args,recorded", [
    (["--optimizer", "adam", "--lr", "0.001"], {"optimizer": "adam", "beta_1": 0.9, "beta_2": 0.999, "lr": 0.001}),
    # Adam at lr 0.1 moves weights ~0.1 a step: its float32 round-off grows with the distance (trajectory's bound)
    (["--optimizer", "adam"], {"optimizer": "adam", "lr": 0.1}),
    (["--optimizer", "momentum", "--momentum", "0.8"], {"optimizer": "momentum", "momentum": 0.8}),
    (["--init", "he_normal"], {"init": "he_normal"}),
])
def test_check_runs_my_net_with_the_optimiser_and_initialiser_asked_for(tmp_path, args, recorded):
    path = tmp_path / "checks.json"
    result = run_cli("--net_type", "my", "--check", "--hidden_size", "32", "--seed", "0", *args, "--output", str(path))
    checks = json.loads(path.read_text())["checks"]
    assert result.exit_code == 0 and {c["status"] for c in checks} == {"PASS"}, result.stdout
    for check in checks:
        assert recorded.items() <= check["settings"].items(), check


@pytest.mark.slow
def test_check_with_a_wrong_initialiser_scale_for_he_normal_fails_the_initialisation(tmp_path):
    # my_net built with glorot_uniform but checked against he_normal's distribution: the check must see it.
    # (Through the CLI both always agree; here the net ignores --init as a user's net with an init argument
    # that does nothing would.)
    source = (ROOT / "mnist_compare" / "nets" / "my_net.py").read_text()
    assert "init: str = \"glorot_uniform\"" in source
    user = tmp_path / "stubborn.py"
    user.write_text("from mnist_compare.nets.my_net import NeuralNetwork\n\n"
                    "class Stubborn(NeuralNetwork):\n"
                    "    def __init__(self, d, h, c, lr, seed, init='glorot_uniform'):\n"
                    "        super().__init__(d, h, c, lr, seed)\n")
    result = run_cli("--net_type", f"{user}:Stubborn", "--check", "--hidden_size", "32", "--init", "he_normal")
    assert result.exit_code == 7
    row = next(line for line in result.stdout.splitlines() if line.startswith("| initialisation"))
    assert "FAIL" in row and "He-normal has std" in row


def test_check_refuses_adam_for_a_net_that_trains_by_plain_sgd():
    result = run_cli("--net_type", STUDENT, "--check", "--optimizer", "adam")
    assert result.exit_code == 2 and "trains by plain SGD" in result.stderr
