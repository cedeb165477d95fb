"""--check for teachers and students (issue 28): Gradescope's results.json with weights, the README's
autograder script run as Gradescope runs it, --check on every Keras backend, and --profile's top functions
for my_net, the Keras twin and a user's net."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import mnist_compare_command as mnist_compare

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "student_net.py"
AUTOGRADER = ROOT / "examples" / "gradescope"
CHECKS = ["interface", "initialisation", "forward", "gradients", "single step", "short batch", "batch of one",
          "stability", "determinism", "trajectory"]

# Gradescope's documented results.json fields ("Autograder Specifications": top level and each test); nothing
# else is allowed, so a misspelt field fails here rather than vanish on Gradescope.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
GRADESCOPE_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number"}, "output": {"type": "string"},
        "output_format": FORMAT, "test_output_format": FORMAT, "test_name_format": FORMAT,
        "visibility": VISIBILITY, "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"},
        "leaderboard": {"type": "array"},
        "tests": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"}, "status": {"enum": ["passed", "failed"]},
                "name": {"type": "string"}, "name_format": FORMAT, "number": {"type": "string"},
                "output": {"type": "string"}, "output_format": FORMAT, "tags": {"type": "array"},
                "visibility": VISIBILITY, "extra_data": {"type": "object"}}}},
    },
}


def mutant(tmp_path: Path, original: str, buggy: str) -> Path:
    source = EXAMPLE.read_text()
    assert source.count(original) == 1
    path = tmp_path / "student_net.py"
    path.write_text(source.replace(original, buggy))
    return path


def test_gradescope_results_validate_and_score_by_weight(tmp_path):
    net = mutant(tmp_path, "        Z1 = X @ self.W1 + self.b1", "        Z1 = X @ self.W1")  # b1 forgotten
    results = tmp_path / "results.json"
    done = mnist_compare("--check", "--net_type", f"{net}:StudentNet", "--hidden_size", "32", "--seed", "0", "-q",
                         "--gradescope", results, "--check_weights", "forward=2,gradients=3,single_step=4")
    assert done.returncode == 7, done.stderr
    data = json.loads(results.read_text())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    tests = {test["name"]: test for test in data["tests"]}
    assert list(tests) == CHECKS and [t["number"] for t in data["tests"]] == [str(i) for i in range(1, 11)]
    assert tests["forward"]["status"] == "failed" and tests["forward"]["score"] == 0
    assert tests["forward"]["max_score"] == 2 and "the bias b1 is not added" in tests["forward"]["output"]
    assert tests["single step"] == {**tests["single step"], "score": 4, "max_score": 4, "status": "passed"}
    failed = {name for name, test in tests.items() if test["status"] == "failed"}
    assert failed == {"forward", "gradients", "trajectory"}
    weights = {"forward": 2, "gradients": 3, "single step": 4}
    assert data["score"] == sum(weights.get(name, 1) for name in CHECKS if name not in failed)


@pytest.mark.parametrize("weights, words", [("forwards=2", "forwards: not a check"), ("forward=-1", "number >= 0"),
                                            ("forward=two", "number >= 0"),
                                            ("missing.toml", "cannot read the weights file")])
def test_bad_weights_are_refused_before_any_check(weights, words):
    done = mnist_compare("--check", "--gradescope", "/tmp/never.json", "--check_weights", weights)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_gradescope_without_check_is_refused():
    done = mnist_compare("--gradescope", "/tmp/never.json", "--number_epochs", "1")
    assert done.returncode == 2 and "--gradescope has no effect without --check" in done.stderr


def autograder_folder(tmp_path: Path, submission: Path | None) -> Path:
    """Gradescope's layout: source/ (the autograder's files), submission/ (the student's), results/."""
    folder = tmp_path / "autograder"
    shutil.copytree(AUTOGRADER, folder / "source")
    (folder / "submission").mkdir()
    if submission is not None:
        shutil.copy(submission, folder / "submission" / "student_net.py")
    return folder


def run_autograder(folder: Path) -> dict:
    env = {**os.environ, "AUTOGRADER": str(folder), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(folder / "source" / "run_autograder")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((folder / "results" / "results.json").read_text())


def test_the_readmes_autograder_script_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert (AUTOGRADER / "run_autograder").read_text() in readme  # the README shows the file itself
    assert (AUTOGRADER / "weights.toml").read_text() in readme
    data = run_autograder(autograder_folder(tmp_path, EXAMPLE))
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    assert data["score"] == 15 and all(test["status"] == "passed" for test in data["tests"])


def test_the_autograder_scores_a_broken_submission_zero_with_the_reason(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\nraise RuntimeError('my net is not finished')\n")
    folder = autograder_folder(tmp_path, broken)
    data = run_autograder(folder)
    assert data["score"] == 0 and data["output"] == ("Your submission could not be checked: --net_type "
                                                     "student_net.py: importing it raised RuntimeError: my net is "
                                                     "not finished (line 2)")  # one line, no usage, no server path
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    missing = run_autograder(autograder_folder(tmp_path / "again", None))
    assert missing["score"] == 0 and "student_net.py" in missing["output"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_check_passes_my_net_and_the_example_on_the_backend(backend):
    for net in ("my", f"{EXAMPLE}:StudentNet"):
        done = mnist_compare("--check", "--net_type", net, "--hidden_size", "32", "--seed", "0", "-q",
                             env={**os.environ, "KERAS_BACKEND": backend})
        assert done.returncode == 0, done.stdout
        rows = [line.split("|")[1:3] for line in done.stdout.splitlines()[2:]]
        assert [name.strip() for name, _ in rows] == CHECKS and {s.strip() for _, s in rows} == {"PASS"}


def test_profile_prints_and_records_the_top_functions_of_each_net(tmp_path):
    out = tmp_path / "profile.json"
    done = mnist_compare("--net_type", f"{EXAMPLE}:StudentNet", "--compare_nets", "--hidden_size", "32",
                         "--number_epochs", "1", "--seed", "0", "--profile", "-q", "--output", out)
    assert done.returncode == 0, done.stderr
    profiles = {p["net"]: p for p in json.loads(out.read_text())["profiles"]}
    assert list(profiles) == ["StudentNet", "keras_net"]
    for name, profile in profiles.items():
        assert f"Profile of one epoch of {name}" in done.stdout
        functions = profile["functions"]
        assert len(functions) == 12 and functions[0]["cumulative_s"] <= profile["epoch_s"] * 1.01
        assert [f["cumulative_s"] for f in functions] == sorted((f["cumulative_s"] for f in functions), reverse=True)
    student = [f["function"] for f in profiles["StudentNet"]["functions"]]
    assert any("student_net.py" in f and "(train_on_batch)" in f for f in student)
    assert any("trainer.py" in f for f in (f["function"] for f in profiles["keras_net"]["functions"]))
    my = mnist_compare("--hidden_size", "32", "--number_epochs", "1", "--seed", "0", "--profile", "-q")
    assert "mnist_compare/nets/my_net.py" in my.stdout and "(train_step)" in my.stdout


def test_profile_is_refused_with_check_and_on_a_cluster():
    assert "--profile has no effect with --check" in mnist_compare("--check", "--profile").stderr
    assert "--profile has no effect with --scheduler" in mnist_compare("--profile", "--scheduler",
                                                                      "tcp://127.0.0.1:9").stderr


def test_a_rubric_sets_each_checks_visibility_and_can_hide_its_diagnosis(tmp_path):
    """gradescope-utils' @visibility and a hidden diagnosis, from the weights file, in Gradescope's own fields."""
    from mnist_compare.check.checks import DEFAULT_WEIGHTS
    from mnist_compare.output.gradescope import WeightsError, gradescope_results, parse_weights
    from mnist_compare.records.check import Check, Status

    rubric = tmp_path / "rubric.toml"
    rubric.write_text('forward = 2\ntrajectory = {weight = 3, visibility = "after_due_date", hide_diagnosis = true}\n'
                      '[gradients]\nvisibility = "hidden"\n')
    weights = parse_weights(str(rubric), DEFAULT_WEIGHTS)
    checks = [Check(name, Status.FAIL if name == "trajectory" else Status.PASS, "measured", "bound",
                    "first parts at epoch 1, step 3" if name == "trajectory" else "") for name in CHECKS]
    data = gradescope_results(checks, weights, "hw.py")
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    tests = {test["name"]: test for test in data["tests"]}
    assert tests["trajectory"]["visibility"] == "after_due_date" and tests["trajectory"]["output"] == "FAIL"
    assert tests["trajectory"]["max_score"] == 3 and tests["gradients"]["visibility"] == "hidden"
    assert tests["gradients"]["max_score"] == 1 and tests["forward"]["visibility"] == "visible"
    assert data["score"] == 2 + 8 * 1
    rubric.write_text('trajectory = {visibility = "later"}\n')
    with pytest.raises(WeightsError, match="visibility 'later' is not one of"):
        parse_weights(str(rubric), DEFAULT_WEIGHTS)
