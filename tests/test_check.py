"""--check and your own network: the student-style example passes every check, each classic bug fails exactly
the check that should catch it with the right diagnosis, and bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from mnist_compare.check import checks as check
from mnist_compare.nets import keras_net, user_net
from mnist_compare.records.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "student_net.py"
ALL_CHECKS = ["interface", "initialisation", "forward", "gradients", "single step", "short batch", "batch of one",
              "stability", "determinism", "trajectory"]

# One classic bug each: (the example's line, the buggy line), the checks it must fail, and their diagnosis.
MUTATIONS = {
    "learning rate 1% too large": (
        ("self.lr = np.float32(lr)", "self.lr = np.float32(lr * 1.01)"),
        {"single step": "the learning rate is off by +1.00%", "short batch": "off by +1.00%",
         "batch of one": "off by +1.00%", "trajectory": ""}),
    "loss summed, not averaged": (
        ("        dZ2 = (P - Y) / n", "        dZ2 = P - Y"),
        {"gradients": "the loss is summed over the batch, not averaged",
         "single step": "128 = n times Keras': the loss is summed", "short batch": "96 = n times", "trajectory": ""}),
    "last batch averaged over batch_size": (
        ("        dZ2 = (P - Y) / n", "        dZ2 = (P - Y) / 128"),
        {"short batch": "the batch of 96 is averaged over batch_size 128, not over its own size",
         "batch of one": "the batch of 1 is averaged over batch_size 128", "trajectory": ""}),
    "softmax without the max shift": (
        ("        Z2 = Z2 - Z2.max(axis=1, keepdims=True)", "        Z2 = Z2"),
        {"stability": "subtract the row maximum before exp"}),
    "initialisation of the wrong scale": (
        ("limit1 = np.sqrt(6 / (input_size + hidden_size))", "limit1 = np.sqrt(1 / (input_size + hidden_size))"),
        {"initialisation": "W1: std 0.0"}),
    "wrong sign in one gradient": (
        ("db2 = dZ2.sum(axis=0)", "db2 = -dZ2.sum(axis=0)"),
        {"gradients": "b2 differs most", "single step": "b2 differs most (relative error 2) (its sign is flipped)",
         "short batch": "b2 differs most", "batch of one": "b2 differs most", "trajectory": ""}),
    # issue 28: the forward pass, the seed, a batch of one, and where a trajectory parts
    "the hidden bias b1 not added": (
        ("        Z1 = X @ self.W1 + self.b1", "        Z1 = X @ self.W1"),
        {"forward": "predict does not change with b1: the bias b1 is not added?",
         "gradients": "disagree with finite differences", "trajectory": "first parts at epoch 1, step 2"}),
    "softmax normalised over the wrong axis": (
        ("np.exp(Z2).sum(axis=1, keepdims=True)", "np.exp(Z2).sum(axis=0, keepdims=True)"),
        {"forward": "softmax normalised over the wrong axis", "gradients": "", "single step": "",
         "short batch": "", "batch of one": "", "stability": "", "trajectory": ""}),
    "the seed ignored: a global random state": (
        ("rng = np.random.default_rng(seed)", "rng = np.random"),
        {"determinism": "the seed is ignored: two nets built with the same seed start with different weights"}),
    "np.squeeze on the inputs": (
        ("        Z1 = X @ self.W1 + self.b1", "        X = np.squeeze(X)\n        Z1 = X @ self.W1 + self.b1"),
        {"batch of one": "on a batch of one example (X of shape (1, 784)): np.squeeze"}),
    "learning rate halved after 59 steps": (
        ("        self.W1 -= self.lr * dW1",
         "        self.steps = getattr(self, 'steps', 0) + 1\n        if self.steps == 60:\n"
         "            self.lr = self.lr / 2\n        self.W1 -= self.lr * dW1"),
        {"trajectory": "first parts at epoch 2, step 13 (global step 60), W2 first, after 59 identical steps"}),
}


@pytest.fixture(scope="module")
def data(mnist):
    return mnist


def checks_of(path: Path, data, hidden: int = 32) -> dict[str, check.Check]:
    spec = RunSpec(user_net.load_class(f"{path}:StudentNet"), hidden_size=hidden, seed=0)
    return {c.name: c for c in check.run_checks(spec, data, keras_net.KerasNet)}


def test_the_example_passes_every_check(data):
    results = checks_of(EXAMPLE, data)
    assert list(results) == ALL_CHECKS
    assert all(c.status == "PASS" and not c.diagnosis for c in results.values()), results


@pytest.mark.parametrize("bug", list(MUTATIONS))
def test_each_classic_bug_fails_exactly_its_checks_with_the_right_diagnosis(tmp_path, data, bug):
    (original, buggy), expected = MUTATIONS[bug]
    source = EXAMPLE.read_text()
    assert source.count(original) == 1
    path = tmp_path / f"mutant_{len(bug)}.py"
    path.write_text(source.replace(original, buggy))
    results = checks_of(path, data)
    failed = {name for name, c in results.items() if c.status == "FAIL"}
    assert failed == set(expected), {name: (c.status, c.measured, c.diagnosis) for name, c in results.items()}
    for name, phrase in expected.items():
        assert phrase in results[name].diagnosis, (name, results[name].diagnosis)
    if "trajectory" in expected:  # where the paired runs part is in its JSON entry too
        record = results["trajectory"].to_dict()
        where = record["first_divergence"]
        assert where["global_step"] == 47 * (where["epoch"] - 1) + where["step"] and record["first_parameter"]


def test_a_check_that_passes_records_no_divergence(data):
    record = checks_of(EXAMPLE, data)["trajectory"].to_dict()
    assert record["first_divergence"] is None and record["first_parameter"] is None


def test_my_net_passes_every_check_through_the_cli(tmp_path):
    path = tmp_path / "checks.json"
    result = run_cli("--net_type", "my", "--check", "--hidden_size", "32", "--output", str(path))
    assert result.exit_code == 0, result.stdout
    checks = json.loads(path.read_text())["checks"]
    assert [c["name"] for c in checks] == ALL_CHECKS and {c["status"] for c in checks} == {"PASS"}
    assert set(checks[0]) == {"name", "status", "measured", "tolerance", "diagnosis", "settings"}
    assert checks[-1]["first_divergence"] is None  # trajectory: the runs never part
    assert all(c["settings"]["hidden_size"] == 32 and c["settings"]["optimizer"] == "sgd" for c in checks)
    assert "| trajectory " in result.stdout


def test_a_failing_check_exits_7_and_records_it(tmp_path):
    mutant = tmp_path / "mutant.py"
    mutant.write_text(EXAMPLE.read_text().replace("self.lr = np.float32(lr)", "self.lr = np.float32(lr * 1.01)"))
    path = tmp_path / "checks.json"
    result = run_cli("--net_type", f"{mutant}:StudentNet", "--check", "--hidden_size", "32", "--output", str(path))
    assert result.exit_code == 7
    statuses = {c["name"]: c["status"] for c in json.loads(path.read_text())["checks"]}
    assert statuses["single step"] == "FAIL" and statuses["interface"] == "PASS"


def test_a_users_net_trains_beside_keras_with_its_class_name_as_the_row(tmp_path):
    path = tmp_path / "r.json"
    result = run_cli("--net_type", f"{EXAMPLE}:StudentNet", "--compare_nets", "--hidden_size", "32",
                     "--number_epochs", "2", "--seed", "0", "--paired", "--quiet", "--output", str(path))
    assert result.exit_code == 0, result.stderr
    runs = json.loads(path.read_text())["runs"]
    assert [r["name"] for r in runs] == ["StudentNet", "keras_net"]
    assert runs[0]["test_loss"] == pytest.approx(runs[1]["test_loss"], abs=1e-5)
    assert "StudentNet trained" in result.stdout


def test_a_users_net_importable_as_a_module_loads(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    result = run_cli("--net_type", "student_net:StudentNet", "--hidden_size", "16", "--number_epochs", "1",
                     "--seed", "0", "--quiet")
    assert result.exit_code == 0 and "| StudentNet " in result.stdout


def test_a_users_net_that_raises_keeps_the_other_rows_shows_its_traceback_and_exits_6(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text(EXAMPLE.read_text().replace("        loss = float(-np.mean(log_P[np.arange(len(y)), y]))",
                                                  "        raise ValueError('my bug')"))
    out = subprocess.run([sys.executable, "main.py", "--net_type", f"{broken}:StudentNet", "--compare_nets",
                          "--hidden_size", "16", "--number_epochs", "1", "--seed", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 6
    assert "| StudentNet | error: ValueError: my bug |" in " ".join(out.stdout.split())
    assert "| keras_net |" in " ".join(out.stdout.split()) and "Traceback" in out.stderr and "broken.py" in out.stderr


@pytest.mark.parametrize("net_type,message", [
    ("nowhere/net.py:Net", "nowhere/net.py: no such file"),
    ("no_such_module_xyz:Net", "no_such_module_xyz: no such module"),
    (f"{EXAMPLE}:Missing", "has no class Missing"),
    ("missing_method", "has no method predict"),
    ("wrong_shapes", "get_weights() has shapes"),
    ("nonsense", "expected my, keras, PATH.py:CLASS or package.module:CLASS"),
])
def test_bad_user_nets_are_one_line_and_exit_2_before_training(tmp_path, net_type, message):
    if net_type == "missing_method":
        path = tmp_path / "m.py"
        path.write_text(EXAMPLE.read_text().replace("    def predict(self, X):", "    def predicted(self, X):"))
        net_type = f"{path}:StudentNet"
    elif net_type == "wrong_shapes":
        path = tmp_path / "w.py"
        path.write_text(EXAMPLE.read_text().replace("return [self.W1.copy(), self.b1.copy(),",
                                                    "return [self.W1.T.copy(), self.b1.copy(),"))
        net_type = f"{path}:StudentNet"
    result = run_cli("--net_type", net_type, "--hidden_size", "16", "--number_epochs", "1")
    assert result.exit_code == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_help_says_that_a_users_net_is_their_code_run():
    assert "loading it runs that file's code" in " ".join(run_cli("--help").stdout.split())
