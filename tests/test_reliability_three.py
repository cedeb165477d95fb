"""Reliability, round three: no user net, signal or closed stream can hang the tool, silence it, or lose a
finished row. Real processes, real signals, real user-net files (examples/student_net.py with one method
changed); the cluster's cases are in test_cluster.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_on_a_dumb_terminal

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "examples" / "student_net.py").read_text()
QUICK = ["--hidden_size", "16", "--number_epochs", "1", "--seed", "0"]
TRAIN_ON_BATCH = "    def train_on_batch(self, X, y):\n"


def user_net(tmp_path: Path, name: str, old: str, new: str) -> str:
    """examples/student_net.py with `old` replaced by `new`, as --net_type PATH.py:StudentNet."""
    assert old in EXAMPLE
    path = tmp_path / f"{name}.py"
    path.write_text(EXAMPLE.replace(old, new, 1))
    return f"{path}:StudentNet"


def main_py(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def start(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_line(process: subprocess.Popen, prefix: str) -> list[str]:
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no line starting {prefix!r}: {''.join(seen)}")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error")]


# 2: a stop signal while the data loads, in a loop (it failed about one run in ten) ----------------------------

def test_ctrl_c_while_the_data_loads_exits_130_every_time_and_writes_what_it_can(tmp_path):
    for attempt in range(8):
        markdown = tmp_path / f"r{attempt}.md"
        process = start(*QUICK, "--verbose", "--output", str(markdown))
        wait_for_line(process, "loading MNIST")
        time.sleep(0.05 * (attempt % 4))  # at several moments of the loading
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, (attempt, stderr)
        assert "Aborted" not in stderr and "Traceback" not in stderr and "internal error" not in stderr
        text = markdown.read_text()
        assert "No run started" in text or "| my_net" in text  # the signal may come after the run


# 3: a user's net that leaves by sys.exit or a KeyboardInterrupt of its own -------------------------------------

@pytest.mark.parametrize("statement,shown", [("import sys; sys.exit(0)", "SystemExit: 0"),
                                             ("raise KeyboardInterrupt('mine')", "KeyboardInterrupt: mine")])
def test_a_net_that_exits_or_raises_keyboard_interrupt_is_its_own_error_row(tmp_path, statement, shown):
    net = user_net(tmp_path, "leaves", TRAIN_ON_BATCH, TRAIN_ON_BATCH + f"        {statement}\n")
    path = tmp_path / "r.json"
    out = main_py("--net_type", net, "--compare_nets", *QUICK, "--min_test_accuracy", "50", "--output", str(path))
    assert out.returncode == 6, out.stderr
    runs = {r["name"]: r for r in json.loads(path.read_text())["runs"]}
    assert runs["StudentNet"]["status"] == "error" and runs["StudentNet"]["error"] == shown
    assert runs["keras_net"]["status"] == "ok" and runs["keras_net"]["test_accuracy"] > 0.85  # Keras trained
    assert f"error: {shown}" in out.stdout


def test_sys_exit_while_the_net_file_is_imported_is_a_usage_error(tmp_path):
    net = user_net(tmp_path, "exits_on_import", "import numpy as np\n", "import numpy as np\nimport sys\nsys.exit(3)\n")
    out = main_py("--net_type", net, *QUICK)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = error_lines(out.stderr)
    assert "importing it raised SystemExit: 3" in line


def test_check_of_a_net_raising_keyboard_interrupt_fails_those_checks_and_runs_the_rest(tmp_path):
    net = user_net(tmp_path, "interrupts", TRAIN_ON_BATCH, TRAIN_ON_BATCH + "        raise KeyboardInterrupt\n")
    out = main_py("--net_type", net, "--check", "--hidden_size", "16")
    assert out.returncode == 7, out.stderr
    rows = {line.split("|")[1].strip(): line for line in out.stdout.splitlines()[2:]}
    assert "FAIL" in rows["single step"] and "raised KeyboardInterrupt" in rows["single step"]
    assert "PASS" in rows["gradients"] and "PASS" in rows["initialisation"]  # the checks that need no step
    assert "Aborted" not in out.stderr


# 4: predictions that are not numbers ---------------------------------------------------------------------------

def test_nan_predictions_are_an_error_row_not_a_finished_run(tmp_path):
    net = user_net(tmp_path, "nan_predict", "        return np.exp(self.forward(X)[2])\n",
                   "        return np.full((len(X), 10), np.nan, np.float32)\n")
    path = tmp_path / "r.json"
    out = main_py("--net_type", net, "--compare_nets", *QUICK, "--output", str(path))
    assert out.returncode == 6, out.stderr
    runs = {r["name"]: r for r in json.loads(path.read_text())["runs"]}
    assert runs["StudentNet"]["status"] == "error" and "not finite" in runs["StudentNet"]["error"]
    assert runs["keras_net"]["status"] == "ok"
    assert "StudentNet trained" not in out.stdout  # no verdict compares it


# 6: signals during --check and after many repeats ------------------------------------------------------------

def test_sigterm_during_check_prints_and_writes_the_finished_checks_and_exits_143(tmp_path):
    # A net that says when it steps (its print reaches stderr) and steps slowly: the trajectory check, last,
    # takes ~10 s, and the signal comes inside it.
    net = user_net(tmp_path, "slow", TRAIN_ON_BATCH,
                   TRAIN_ON_BATCH + "        print('step', flush=True)\n        import time; time.sleep(0.1)\n")
    path = tmp_path / "checks.json"
    process = start("--net_type", net, "--check", "--hidden_size", "16", "--output", str(path))
    wait_for_line(process, "step")  # the first check that steps has begun
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    checks = json.loads(path.read_text())["checks"]
    statuses = [c["status"] for c in checks]
    assert statuses[0] == "PASS" and statuses[-1] == "INTERRUPTED", statuses
    assert statuses.index("INTERRUPTED") == len(statuses) - statuses.count("INTERRUPTED")  # the rest, after it
    assert "| interface" in stdout and "INTERRUPTED" in stdout
    assert "Aborted" not in stderr and "Traceback" not in stderr


def test_ctrl_c_after_many_repeats_keeps_the_finished_repeats_in_the_table_and_the_verdict(tmp_path):
    path = tmp_path / "r.json"
    process = start("--compare_nets", "--repeats", "1000", *QUICK, "--output", str(path))
    finished = 0
    for line in process.stderr:
        finished += line.startswith("finished keras_net")
        if finished == 3:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    runs = json.loads(path.read_text())["runs"]
    done = sum(r["name"] == "keras_net" and r["status"] == "ok" for r in runs)
    assert done >= 3
    row = next(line for line in stdout.splitlines() if line.startswith("| keras_net"))
    assert "interrupted" in row and "±" in row  # the finished repeats' mean ± std, and how many were stopped
    assert "my_net trained" in stdout  # the verdict on the finished repeats


# 7: standard streams and the terminal --------------------------------------------------------------------------

@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_a_closed_or_full_stdout_is_one_line_exit_5_with_the_files_written(tmp_path, stdout):
    path = tmp_path / "r.json"
    command = [sys.executable, "main.py", *QUICK, "--quiet", "--output", str(path)]
    if stdout == "closed":
        out = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", *command], cwd=ROOT, capture_output=False,
                             stderr=subprocess.PIPE, text=True, timeout=300)
    else:
        with open("/dev/full", "w") as full:
            out = subprocess.run(command, cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 5, out.stderr
    (line,) = error_lines(out.stderr)
    assert line.startswith("Error: cannot print the table to standard output")
    assert json.loads(path.read_text())["runs"][0]["status"] == "ok"


def test_a_nets_print_goes_to_stderr_not_into_the_table(tmp_path):
    net = user_net(tmp_path, "chatty", TRAIN_ON_BATCH, TRAIN_ON_BATCH + "        print('step!')\n")
    out = main_py("--net_type", net, *QUICK, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "step!" not in out.stdout and "step!" in out.stderr
    assert out.stdout.splitlines()[0].startswith("| Net")


def test_a_dumb_terminal_gets_plain_lines_and_no_bar():
    code, stderr = run_on_a_dumb_terminal("--repeats", "2", *QUICK)
    text = stderr.decode(errors="replace")
    assert code == 0, text
    assert "\r" not in text.replace("\r\n", "\n") and "runs:" not in text and "finished my_net" in text


# found on the way: a stop signal at any moment from the interpreter's start -----------------------------------

def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def test_ctrl_c_at_any_moment_of_the_start_exits_130_without_a_traceback():
    # The modules import for ~0.5 s, Keras' within the options' checks later: signals land in each phase. The
    # first lands just after the interpreter's own start (site's imports, ~0.02 s idle, measured here: a Ctrl-C
    # inside them is Python's "Fatal Python error: init_import_site", before any code of ours). Ctrl-C is
    # restored in the child: a test run from a background job (`pytest &`) would hand it SIGINT ignored, and
    # Python keeps an ignored SIGINT ignored (the command then rightly trains on: measured, exit 0 at 0.05 s).
    interpreter = min(timed([sys.executable, "-c", "pass"]) for _ in range(3))
    for delay in (2 * interpreter + 0.01, 0.15, 0.3, 0.5, 0.8, 1.2):
        process = start("--compare_nets", *QUICK, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, (delay, stderr)
        assert "Traceback" not in stderr and "Aborted" not in stderr, (delay, stderr)


def test_a_closed_stderr_is_no_reason_to_fail_and_worker_processes_inherit_a_valid_one():
    command = [sys.executable, "main.py", "--compare_nets", "--keras_backend", "jax", *QUICK, "--quiet"]
    out = subprocess.run(["bash", "-c", 'exec "$@" 2>&-', "bash", *command], cwd=ROOT, capture_output=False,
                         stdout=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 0  # it was 70: the first message, and the Keras worker, failed on the closed stream
    assert "| keras_net[jax]" in out.stdout and "my_net trained" in out.stdout


# found on the way: numbers at the edges of float32 ------------------------------------------------------------

@pytest.mark.parametrize("args,named", [(["--lr", "1e-46"], "--lr"), (["--lr", "0.1,1e39"], "--lr"),
                                        (["--optimizer", "adam", "--epsilon", "1e-46"], "--epsilon")])
def test_a_value_that_float32_makes_zero_or_infinite_is_refused_before_training(args, named):
    out = main_py(*QUICK, *args, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = error_lines(out.stderr)
    assert named in line and "in float32" in line  # 1e-46 trained nothing (10% accuracy), 1e39 is inf
    assert "RuntimeWarning" not in out.stderr  # NumPy's overflow warning for 1e39 said it first (round four)
