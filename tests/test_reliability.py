"""No finished run is lost, and every failure has its own exit code: pipes, signals, write errors, bad input.

Real subprocesses and real signals; a real full filesystem where the machine lets us mount one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, run_on_a_dumb_terminal, write_dataset, write_idx

from mnist_compare.data import idx as read_mnist
from mnist_compare.records import results
from mnist_compare.system import shutdown

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--net_type", "my", "--hidden_size", "16", "--number_epochs", "1", "--seed", "0"]
LONG_PAIR = ["--compare_nets", "--hidden_size", "64", "--number_epochs", "30", "--seed", "0"]


def strict_json(path: Path) -> dict:
    """json.loads that refuses NaN and Infinity, as JavaScript's JSON.parse does."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def start(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_line(process: subprocess.Popen, prefix: str) -> None:
    for line in process.stderr:
        if line.startswith(prefix):
            return
    raise AssertionError(f"the process ended before printing {prefix!r}")


def runs_of(path: Path) -> list[tuple[str, str]]:
    return [(run["name"], run["status"]) for run in strict_json(path)["runs"]]


# 1 -----------------------------------------------------------------------------------------------------------

def test_a_reader_that_closed_stdout_loses_no_results(tmp_path):
    output = tmp_path / "r.json"
    process = start(*QUICK, "--output", str(output))
    process.stdout.close()  # the reader is gone before the table is printed: every write to it is EPIPE
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert runs_of(output) == [("my_net", "ok")]


# 2 -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_keep_the_finished_rows_and_exit_128_plus_the_signal(tmp_path, signum, code):
    output = tmp_path / "r.json"
    process = start(*LONG_PAIR, "--output", str(output))
    wait_for_line(process, "finished my_net")
    time.sleep(2)  # well inside keras_net's 30 epochs
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert runs_of(output) == [("my_net", "ok"), ("keras_net", "interrupted")]
    assert "| keras_net | interrupted |" in " ".join(stdout.split())
    assert "Traceback" not in stderr


def test_a_signal_while_keras_imports_waits_for_the_import_and_then_interrupts():
    """A real SIGTERM inside signals_deferred (where keras_backends imports Keras and TensorFlow) is recorded, and
    raised as Interrupted only when the block ends: raised inside TensorFlow's initialisation it left TensorFlow
    half-made (an ImportError or a segfault in about 1 of 10 runs signalled 2 s after my_net finished)."""
    with shutdown.SignalGuard() as guard:
        with pytest.raises(shutdown.Interrupted) as interrupted, shutdown.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs at the next bytecode: here, inside the block
            inside = guard.signum
        assert inside == signal.SIGTERM and interrupted.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not guard.handle  # the handlers are put back


@pytest.mark.parametrize("delay_s", [0.2, 0.45, 0.7, 0.95, 1.2])
def test_a_signal_while_keras_trains_is_raised_between_two_steps_never_inside_one(delay_s):
    """A real SIGINT at some moment of a Keras fit is raised before the next batch, by the Keras twin's own
    callback: raised wherever TensorFlow's step happened to be running Python, its C++ went on with the failed
    call and the run ended in "SystemError: Objects/listobject.c:338" (exit 70; CI, 1 run in a few hundred)."""
    from mnist_compare.nets.keras_net import KerasNet

    X = np.random.default_rng(0).random((2048, 784), dtype=np.float32)
    y = np.arange(2048) % 10
    net = KerasNet(hidden_size=16, seed=0)
    with shutdown.SignalGuard():
        signaller = threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGINT))
        signaller.start()
        with pytest.raises(shutdown.Interrupted) as interrupted:
            net.fit(X, y, 32, 1000)
    where = [frame.name for frame in traceback.extract_tb(interrupted.value.__traceback__)]
    assert where[-3:] == ["on_train_batch_begin", "stop_if_signalled", "check"], where


# 3 -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gap_s", [0.0, 0.15])
def test_two_quick_ctrl_cs_still_print_and_write_the_finished_rows(tmp_path, gap_s):
    output = tmp_path / "r.json"
    process = start(*LONG_PAIR, "--output", str(output))
    wait_for_line(process, "finished my_net")
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    time.sleep(gap_s)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (process.returncode, stdout, stderr)
    assert runs_of(output) == [("my_net", "ok"), ("keras_net", "interrupted")]
    assert "my_net" in stdout and "Aborted" not in stderr and "Traceback" not in stderr


def test_ctrl_c_while_the_data_loads_exits_130():
    process = start(*QUICK, "--verbose")
    wait_for_line(process, "loading MNIST")  # reading, checking and scaling the files takes ~0.5-1 s
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Aborted" not in stderr and "Traceback" not in stderr


# 4 -----------------------------------------------------------------------------------------------------------

def test_an_output_that_fails_to_write_is_one_line_exit_5_and_the_others_are_written(tmp_path, monkeypatch):
    failing, fine = tmp_path / "full.json", tmp_path / "fine.csv"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".full.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(results.os, "fsync", fsync)  # an injected ENOSPC on one file only
    result = run_cli(*QUICK, "--output", str(failing), "--output", str(fine))
    assert result.exit_code == 5
    assert result.stderr.strip().splitlines()[-1] == f"Error: cannot write {failing}: No space left on device"
    assert fine.exists() and not failing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fine.csv"], "no temporary file may be left behind"
    assert "my_net" in result.stdout


@pytest.fixture
def full_filesystem(tmp_path):
    """A 64 KiB tmpfs, nearly filled; skipped where mounting is not permitted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    (mount / "filler").write_bytes(b"\0" * 60 * 1024)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_keeps_the_table_and_writes_what_fits(full_filesystem, tmp_path):
    markdown, plot, csv_file = full_filesystem / "r.md", full_filesystem / "p.png", tmp_path / "r.csv"
    out = subprocess.run([sys.executable, "main.py", *QUICK, "--output", str(markdown), "--output", str(csv_file),
                          "--plot", str(plot)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 5
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert f"Error: cannot write {plot}: No space left on device" in errors
    assert csv_file.exists() and "my_net" in out.stdout and "Traceback" not in out.stderr
    assert sorted(p.name for p in full_filesystem.iterdir()) == ["filler"] + ["r.md"] * markdown.exists()


def test_a_path_under_proc_is_one_line_and_exit_5():
    out = subprocess.run([sys.executable, "main.py", *QUICK, "--output", "/proc/r.json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    if out.returncode == 2:
        pytest.skip("not root here: the up-front check already refuses /proc")
    assert out.returncode == 5 and "Error: cannot write /proc/r.json" in out.stderr
    assert "Traceback" not in out.stderr and "my_net" in out.stdout


def test_a_non_utf8_output_path_is_written_with_the_command_line_in_it(tmp_path):
    path = os.fsencode(tmp_path) + b"/r\xff.md"
    out = subprocess.run([sys.executable.encode(), b"main.py", *map(str.encode, QUICK), b"--output", path],
                         cwd=ROOT, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = Path(os.fsdecode(path)).read_text(encoding="utf-8")
    assert "my_net" in text and "--output" in text and "\ufffd.md" in text


# 5 -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--seed", "-1"], ["--seed", str(2**70)],
                                  ["--seed", str(2**32 - 1), "--repeats", "2"]])
def test_a_seed_that_some_net_cannot_take_is_refused_before_training(args):
    started = time.perf_counter()
    result = run_cli("--compare_nets", "--hidden_size", "8", "--number_epochs", "1", *args)
    assert result.exit_code == 2 and "'--seed'" in result.stderr and result.stdout == ""
    assert time.perf_counter() - started < 5


def test_the_largest_seed_trains():
    assert run_cli(*QUICK[:-1], str(2**32 - 1), "--quiet").exit_code == 0


# 6 -----------------------------------------------------------------------------------------------------------

def test_an_unknown_keras_backend_is_refused_before_training():
    out = subprocess.run([sys.executable, "main.py", "--compare_nets", *QUICK[2:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "KERAS_BACKEND": "bogus"})
    assert out.returncode == 2 and out.stdout == ""
    (line,) = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert "KERAS_BACKEND=bogus" in line and "installed here: " in line and "tensorflow" in line


def test_a_keras_backend_whose_package_is_missing_is_refused_before_training(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['jax'] = None  # jax: not installed\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "main.py", "--compare_nets", *QUICK[2:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert "Error: KERAS_BACKEND=jax: the jax package is not installed" in out.stderr


# 7 -----------------------------------------------------------------------------------------------------------

def idx_header(dtype_code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, dtype_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("case", ["test images 28x29", "zero images", "a zero-size dimension",
                                  "2^31 x 2^31 x 4", "(2^32-1, 65536, 65536)"])
def test_data_files_that_cannot_train_exit_4_in_one_line_before_training(tmp_path, case):
    write_dataset(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte"
    if case == "test images 28x29":
        write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 29), np.uint8))
    elif case == "zero images":
        write_idx(images, np.zeros((0, 28, 28), np.uint8))
        write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    elif case == "a zero-size dimension":
        write_idx(images, np.zeros((12, 0, 28), np.uint8))
    elif case == "2^31 x 2^31 x 4":
        images.write_bytes(idx_header(0x08, (2**31, 2**31, 4)) + bytes(16))
    else:
        images.write_bytes(idx_header(0x08, (2**32 - 1, 65536, 65536)) + bytes(16))
    result = run_cli(*QUICK, "--data_dir", str(tmp_path))
    assert result.exit_code == 4 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert " -" not in result.stderr, "a negative byte count"


# 8 -----------------------------------------------------------------------------------------------------------

def test_output_files_honour_the_umask_and_keep_an_existing_files_mode(tmp_path):
    new, existing = tmp_path / "new.json", tmp_path / "old.csv"
    existing.write_text("old")
    existing.chmod(0o640)
    previous = os.umask(0o022)
    try:
        assert run_cli(*QUICK, "--quiet", "--output", str(new), "--output", str(existing)).exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640 and existing.read_text() != "old"


# 9 -----------------------------------------------------------------------------------------------------------

def test_json_of_a_diverged_run_is_strict_json_with_null(tmp_path):
    path = tmp_path / "r.json"
    result = run_cli("--hidden_size", "16", "--number_epochs", "1", "--seed", "0", "--lr", "1e10", "--output",
                     str(path))
    assert result.exit_code == 3
    (run,) = strict_json(path)["runs"]
    assert run["status"] == "diverged" and run["test_accuracy"] is None and run["train_time_s"] is None


# 10 ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("verbose", [False, True])
def test_an_internal_error_exits_70_with_one_line_naming_the_log(monkeypatch, verbose):
    from mnist_compare.output import report

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(report, "render_table", broken)
    result = run_cli(*QUICK, "--quiet", *["--verbose"] * verbose)
    assert result.exit_code == 70
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: internal error") and "RuntimeError: a bug" in last
    log = Path(last.split("the traceback is in ")[1])
    assert "Traceback" in log.read_text() and 'raise RuntimeError("a bug")' in log.read_text()
    assert ("Traceback" in result.stderr) == verbose
    log.unlink()


# 11 ----------------------------------------------------------------------------------------------------------

def test_the_verdict_is_not_a_row_of_the_markdown_table():
    result = run_cli("--compare_nets", *QUICK[2:], "--quiet")
    lines = result.stdout.splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("my_net trained"))
    assert lines[verdict - 1] == "" and lines[verdict - 2].startswith("| keras_net")


def test_a_dumb_terminal_gets_no_cursor_escape_codes():
    code, stderr = run_on_a_dumb_terminal(*QUICK, timeout=120)
    assert code == 0 and b"\x1b[" not in stderr and b"finished my_net" in stderr


def test_help_names_the_comma_list_options_values():
    help_text = " ".join(run_cli("--help").stdout.split())
    assert "--hidden_size N[,N...]" in help_text and "--lr X[,X...]" in help_text
    assert "Every option also takes dashes: --hidden-size, --number-epochs." in help_text
    assert "--batch_size N[,N...]" in help_text


def test_a_value_listed_twice_in_a_sweep_is_refused():
    result = run_cli("--hidden_size", "16,16")
    assert result.exit_code == 2 and "16 is listed twice" in result.stderr


def test_a_bad_mnist_data_dir_is_named_as_such(monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", "/nonexistent")
    result = run_cli(*QUICK)
    assert result.exit_code == 2 and "Error: MNIST_DATA_DIR=/nonexistent: directory does not exist" in result.stderr
    assert "--data_dir" not in result.stderr.splitlines()[-1]


def test_a_tilde_data_dir_is_expanded(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data", n_train=300, n_test=50)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run_cli(*QUICK, "--quiet", "--data_dir", "~/data").exit_code == 0


def test_the_recorded_command_line_keeps_its_quoting(tmp_path):
    path = tmp_path / "with space.json"
    out = subprocess.run([sys.executable, "main.py", *QUICK, "--output", str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0
    assert f"--output '{path}'" in strict_json(path)["command_line"]


def test_a_data_dir_with_a_manifest_is_verified(tmp_path):
    for source in read_mnist.BUNDLED_DIR.iterdir():
        shutil.copy(source, tmp_path / source.name)
    labels = next(tmp_path.glob("t10k-labels-idx1-ubyte*"))
    content = read_mnist.read_file_bytes(labels)
    labels.unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(content[:-1] + bytes([(content[-1] + 1) % 10]))
    result = run_cli(*QUICK, "--data_dir", str(tmp_path))
    assert result.exit_code == 4 and "checksum mismatch" in result.stderr


# 12 ----------------------------------------------------------------------------------------------------------

def test_the_readme_says_what_a_usage_error_looks_like():
    readme = (ROOT / "README.md").read_text()
    result = run_cli("--lr", "abc")
    assert result.stderr.splitlines()[0].startswith("Usage:") and result.stderr.splitlines()[-1].startswith("Error:")
    assert "Usage / Try / Error" in readme and "never a traceback" in readme
