"""A submitted net cannot hang, crash or fool --check: each hostile submission runs in real processes with short
limits, costs only its own checks, and the table, the JSON and a valid Gradescope file always come out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jsonschema import validate
from test_grading import GRADESCOPE_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "student_net.py"
STEP = "    def train_on_batch(self, X, y):\n"
LIMITS = ["--check_timeout", "3", "--check_memory", "1GiB"]
STEPPING = ["forward", "single step", "short batch", "batch of one", "stability", "determinism", "trajectory"]


def submission(tmp_path: Path, name: str, in_step: str = "", at_import: str = "", source: str | None = None) -> str:
    """The example with `in_step` at the top of train_on_batch and `at_import` at the end of the file."""
    text = (source or EXAMPLE.read_text()).replace(STEP, STEP + in_step) + at_import
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return f"{path}:StudentNet"


def check(tmp_path: Path, net: str, *extra: str, cwd: Path = ROOT, timeout: float = 400):
    """--check of `net` as a student runs it: (process, {check: entry}, gradescope results, seconds)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    results, grades = tmp_path / "checks.json", tmp_path / "grades.json"
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "mnist_compare", "--net_type", net, "--check", "--hidden_size", "16",
                          "--seed", "0", *LIMITS, "--output", str(results), "--gradescope", str(grades), *extra],
                         cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.monotonic() - start
    checks = {c["name"]: c for c in json.loads(results.read_text())["checks"]} if results.exists() else {}
    graded = json.loads(grades.read_text()) if grades.exists() else None
    if graded is not None:
        validate(graded, GRADESCOPE_SCHEMA)
    return out, checks, graded, seconds


def failed(checks: dict) -> set[str]:
    return {name for name, c in checks.items() if c["status"] == "FAIL"}


@pytest.mark.parametrize("name,in_step,reason", [
    ("endless_loop", "        while True:\n            pass\n", "timed out after 3 s in train_on_batch (call 1)"),
    ("eight_gib", "        big = np.ones((1024, 1024, 1024), np.float64)\n",
     "needed more than 1 GiB in train_on_batch (call 1) on a batch of 128"),
    ("exits", "        import os\n        os._exit(0)\n",
     "the net's code ended its process (exit status 0) in train_on_batch (call 1)"),
    ("segfault", "        import ctypes\n        ctypes.string_at(0)\n",
     "the net's code ended its process (signal 11, SIGSEGV) in train_on_batch (call 1)"),
])
def test_a_hostile_train_on_batch_fails_its_checks_with_the_reason_and_the_rest_are_scored(tmp_path, name, in_step,
                                                                                            reason):
    out, checks, graded, seconds = check(tmp_path, submission(tmp_path, name, in_step))
    assert out.returncode == 7, out.stderr[-2000:]
    assert failed(checks) == set(STEPPING), {n: c["diagnosis"] for n, c in checks.items()}
    assert reason in checks["forward"]["diagnosis"] and "Traceback" not in out.stderr
    assert {checks[n]["status"] for n in ("interface", "initialisation", "gradients")} == {"PASS"}
    assert graded["score"] == 3 and sum(t["max_score"] for t in graded["tests"]) == 10
    assert reason in " ".join(out.stdout.split())
    assert seconds < 7 * 3 + 120  # each stepping check at most its 3 s, the rest as for a correct net


def test_no_process_of_the_submission_outlives_the_check(tmp_path):
    marker = "3117.5"  # a sleep no other process runs
    in_step = ("        import os, subprocess\n        if not getattr(self, 'forked', False):\n"
               "            self.forked = True\n"
               f"            subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
               "            if os.fork() == 0:\n                os.setsid()\n"
               f"                os.execvp('sleep', ['sleep', '{marker}'])\n")
    out, checks, _, seconds = check(tmp_path, submission(tmp_path, "forks", in_step))
    assert out.returncode == 0 and not failed(checks), {n: c["diagnosis"] for n, c in checks.items()}
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.split()
    assert left == [] and seconds < 120


def test_a_submission_that_patches_the_tools_check_code_scores_what_its_arithmetic_deserves(tmp_path):
    halved = EXAMPLE.read_text().replace("self.lr = np.float32(lr)", "self.lr = np.float32(lr / 2)")
    patch = ("\nimport mnist_compare.records.check as record\nimport mnist_compare.check.steps as steps\n"
             "always = lambda name, passed, *rest: record.Check(name, record.PASS, 'patched', '', '')\n"
             "record.verdict = steps.verdict = always\nrecord.Check.passed = property(lambda self: True)\n")
    _, honest, honest_grades, _ = check(tmp_path / "honest", submission(tmp_path, "honest", source=halved))
    out, patched, patched_grades, _ = check(tmp_path / "patched", submission(tmp_path, "patched", "", patch, halved))
    assert out.returncode == 7 and failed(patched) == failed(honest) == {"single step", "short batch",
                                                                         "batch of one", "trajectory"}
    assert patched_grades["score"] == honest_grades["score"] == 6 and "patched" not in out.stdout


def test_a_submission_that_changes_directory_leaves_the_outputs_where_the_command_line_said(tmp_path):
    net = submission(tmp_path, "wanders", "        import os\n        os.chdir('/')\n", "import os\nos.chdir('/')\n")
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run([sys.executable, "-m", "mnist_compare", "--net_type", net, "--check", "--hidden_size", "16",
                          "--seed", "0", *LIMITS, "--output", "rel.json", "--gradescope", "grades.json"], cwd=work,
                         capture_output=True, text=True, timeout=400, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (work / "rel.json").is_file() and (work / "grades.json").is_file()


def test_megabytes_of_prints_are_capped_in_the_report_and_on_stderr(tmp_path):
    out, checks, _, _ = check(tmp_path, submission(tmp_path, "chatty", "        print('x' * 3_000_000)\n"))
    assert out.returncode == 0 and not failed(checks)
    assert len(out.stderr) < 100_000 and "more bytes not shown" in out.stderr
    assert all(len(c.get("printed", "")) < 2200 for c in checks.values()) and "printed" in checks["forward"]


def test_a_file_that_ends_its_process_on_import_is_one_line_and_exit_2(tmp_path):
    net = submission(tmp_path, "dies", at_import="import os\nos._exit(0)\n")
    out, checks, graded, _ = check(tmp_path, net)
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert out.returncode == 2 and len(errors) == 1 and not checks and graded is None
    assert "ended its process (exit status 0) in importing it" in errors[0]


def test_ctrl_c_of_the_grader_during_a_hanging_check_exits_130_with_the_finished_checks(tmp_path):
    net = submission(tmp_path, "hangs", "        while True:\n            pass\n")
    results = tmp_path / "checks.json"
    process = subprocess.Popen([sys.executable, "-m", "mnist_compare", "--net_type", net, "--check", "--hidden_size",
                                "16", "--seed", "0", "--check_timeout", "100", "--output", str(results)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    time.sleep(15)  # past the start, inside the forward check's endless train_on_batch
    start = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 130 and time.monotonic() - start < 20
    statuses = [c["status"] for c in json.loads(results.read_text())["checks"]]
    assert statuses[:2] == ["PASS", "PASS"] and "INTERRUPTED" in statuses and "| interface" in stdout
    assert subprocess.run(["pgrep", "-f", "sandbox_child"], capture_output=True).stdout == b""
