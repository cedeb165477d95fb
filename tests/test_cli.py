"""main.py: the command line, the table, results files, exit codes, and bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_dataset

from mnist_compare import __version__
from mnist_compare.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--net_type", "my", "--hidden_size", "16", "--number_epochs", "1", "--seed", "0"]
HEADER = "| Net | Time(s) | Test accuracy(%) | Test loss | Train accuracy(%) | Train loss |"


def run_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def squeeze(line: str) -> str:
    return " ".join(line.split())


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The Markdown table's data rows keyed by net name (cells stripped)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in ("my_net", "keras_net"):
            rows[cells[0]] = cells
    return rows


def test_seed_command_line_prints_both_rows_with_all_five_columns_and_relative():
    out = run_script("--net_type", "my", "--hidden_size", "30", "--lr", "0.1", "--batch_size", "128",
                     "--number_epochs", "1", "--compare_nets")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert squeeze(lines[0]) == HEADER + " Relative |"
    rows = table_rows(out.stdout)
    assert list(rows) == ["my_net", "keras_net"]
    for cells in rows.values():
        time_s, test_acc, test_loss, train_acc, train_loss, relative = map(float, cells[1:])
        assert relative >= 1 or cells[0] == "keras_net"
        assert time_s > 0 and 85 < test_acc <= 100 and 85 < train_acc <= 100
        assert 0 < test_loss < 1 and 0 < train_loss < 1
    times = {name: float(cells[1]) for name, cells in rows.items()}
    assert rows["my_net"][6] == "1.00"  # one run each: the ratio of the two times, to the table's rounding
    assert float(rows["keras_net"][6]) == pytest.approx(times["keras_net"] / times["my_net"], rel=0.05, abs=0.02)
    assert lines[-1].startswith("my_net trained") and "than keras_net (1 run each" in lines[-1]
    assert "test accuracy difference" in lines[-1]
    assert "Traceback" not in out.stderr


def test_net_type_my_does_not_import_tensorflow():
    code = ("import sys, main\n"
            "try:\n    main.main(['--hidden_size', '8', '--number_epochs', '1', '--quiet'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


@pytest.mark.parametrize("threshold", ["99.9", "0.999"])
def test_a_net_below_min_test_accuracy_exits_1_naming_it(threshold):
    result = run_cli(*QUICK, "--min_test_accuracy", threshold)
    assert result.exit_code == 1
    assert "Error: my_net test accuracy" in result.stderr and "is below the required 99.90%" in result.stderr
    assert "my_net" in table_rows(result.stdout)


@pytest.mark.parametrize("threshold", ["50", "0.5"])
def test_a_net_above_min_test_accuracy_exits_0(threshold):
    assert run_cli(*QUICK, "--min_test_accuracy", threshold).exit_code == 0


@pytest.mark.parametrize("args,message", [
    (["--hidden_size", "0"], "'--hidden_size'"),
    (["--lr", "-1"], "'--lr'"),
    (["--lr", "nan"], "'--lr'"),
    (["--lr", "abc"], "'--lr'"),
    (["--batch_size", "0"], "'--batch_size'"),
    (["--number_epochs", "0"], "'--number_epochs'"),
    (["--net_type", "foo"], "'--net_type'"),
    (["--data_dir", "/nonexistent"], "'--data_dir'"),
    (["--table_format", "nope"], "'--table_format'"),
    (["--output", "results.txt"], "'--output'"),
    (["--output", "/nonexistent/dir/out.json"], "cannot write there"),
    (["--min_test_accuracy", "150"], "'--min_test_accuracy'"),
    (["--hidden_size", "100000000"], "GiB"),
    (["--paired"], "--paired needs --compare_nets"),
    (["--no_such_option"], "No such option"),
])
def test_bad_input_exits_2_with_one_error_line_and_no_traceback(args, message):
    result = run_cli(*args)
    assert result.exit_code == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unwritable_output_is_refused_before_training(tmp_path):
    start = time.perf_counter()
    result = run_cli("--number_epochs", "20", "--hidden_size", "300", "--output", str(tmp_path / "no" / "r.json"))
    assert result.exit_code == 2 and time.perf_counter() - start < 5


@pytest.mark.parametrize("suffix", [".json", ".csv", ".md"])
def test_each_output_format_parses(tmp_path, suffix):
    path = tmp_path / f"results{suffix}"
    result = run_cli(*QUICK, "--output", str(path))
    assert result.exit_code == 0
    text = path.read_text()
    if suffix == ".json":
        data = json.loads(text)
        run = data["runs"][0]
        assert run["name"] == "my_net" and run["hyperparameters"]["hidden_size"] == 16 and run["seed"] == 0
        assert len(run["history"]["loss"]) == 1 and 0.5 < run["test_accuracy"] <= 1
        assert data["libraries"]["numpy"] and data["cpu"] and data["date"] and data["command_line"]
        assert data["options"]["output"] == [str(path)] and data["options"]["seed"] == 0
    elif suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["name"] == "my_net" and 0.5 < float(rows[0]["test_accuracy"]) <= 1
        assert len(rows[0]["test_loss"]) > 8  # full precision, not the table's 4 decimals
    else:
        assert squeeze(text.splitlines()[0]) == HEADER and "my_net" in table_rows(text)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file may be left behind"


@pytest.mark.parametrize("table_format,marker", [("latex", "\\begin{tabular}"), ("html", "<table>"),
                                                 ("plain", "my_net"), ("grid", "+====")])
def test_table_formats(table_format, marker):
    result = run_cli(*QUICK, "--table_format", table_format)
    assert result.exit_code == 0 and marker in result.stdout


def test_help_documents_every_option_and_version_prints():
    help_text = run_cli("--help").stdout
    for param in main.main.params:
        assert param.opts[0] in help_text
    assert "[default: 0.1]" in help_text and "[default: 128]" in help_text
    assert __version__ in run_cli("--version").stdout


def test_data_errors_exit_4_with_one_line(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 8)
    result = run_cli(*QUICK, "--data_dir", str(tmp_path))
    assert result.exit_code == 4
    assert result.stderr.strip().count("\n") == 0 and "train-images-idx3-ubyte" in result.stderr


def test_a_fashion_mnist_style_directory_trains(tmp_path):
    write_dataset(tmp_path, n_train=300, n_test=50, compress=True)
    result = run_cli(*QUICK, "--data_dir", str(tmp_path))
    assert result.exit_code == 0 and "my_net" in table_rows(result.stdout)


def test_a_diverging_run_says_so_keeps_the_other_row_and_exits_3():
    result = run_cli("--hidden_size", "16", "--number_epochs", "2", "--seed", "0", "--lr", "0.1,1e10")
    assert result.exit_code == 3
    rows = [squeeze(line) for line in result.stdout.splitlines() if "my_net" in line]
    assert rows[0].startswith("| 0.1 | my_net |") and float(rows[0].split("|")[4]) > 80
    assert rows[1].startswith("| 1e+10 | my_net | diverged at epoch 1 |")
    assert "diverged at epoch 1" in result.stderr and "try a smaller learning rate" in result.stderr
    assert "RuntimeWarning" not in result.stderr and "Traceback" not in result.stderr


def test_a_large_but_finite_learning_rate_warns_when_the_loss_rises():
    result = run_cli("--hidden_size", "16", "--number_epochs", "3", "--seed", "0", "--lr", "50")
    assert result.exit_code == 0
    assert "training loss rose" in result.stderr and "my_net" in table_rows(result.stdout)


@pytest.mark.parametrize("args", [["--batch_size", "70000"], ["--hidden_size", "1"], ["--number_epochs", "3"],
                                  ["--number_epochs", "4"]])
def test_edge_values_train(args):
    options = {**dict(zip(QUICK[::2], QUICK[1::2], strict=True)), **dict(zip(args[::2], args[1::2], strict=True))}
    result = run_cli(*[x for pair in options.items() for x in pair])
    assert result.exit_code == 0 and "my_net" in table_rows(result.stdout)


@pytest.mark.slow
def test_batch_size_1_trains():
    result = run_cli("--hidden_size", "4", "--number_epochs", "1", "--batch_size", "1", "--lr", "0.01", "--seed", "0")
    assert result.exit_code == 0 and float(table_rows(result.stdout)["my_net"][2]) > 80


def test_ctrl_c_after_the_first_net_prints_the_partial_table_writes_output_and_exits_130(tmp_path):
    output = tmp_path / "partial.json"
    process = subprocess.Popen(
        [sys.executable, "main.py", "--compare_nets", "--hidden_size", "64", "--number_epochs", "30", "--seed", "0",
         "--output", str(output)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("finished my_net"):
            break
    time.sleep(3)  # well inside keras_net's 30 epochs
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    rows = table_rows(stdout)
    assert float(rows["my_net"][2]) > 90 and rows["keras_net"][1] == "interrupted"
    runs = json.loads(output.read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [("my_net", "ok"), ("keras_net", "interrupted")]
    assert "Traceback" not in stderr


def test_quiet_run_writes_nothing_to_stderr():
    result = run_cli(*QUICK, "--quiet")
    assert result.exit_code == 0 and result.stderr == ""


def test_verbose_run_prints_an_epoch_summary_line():
    result = run_cli(*QUICK, "--verbose")
    assert "my_net h=16 lr=0.1 batch=128 seed=0 epoch 1/1: loss" in result.stderr


def test_main_runs_as_a_script_and_as_python_dash_m():
    for command in ([sys.executable, "main.py", "--version"], [sys.executable, "-m", "main", "--version"],
                    [sys.executable, "-m", "mnist_compare", "--version"]):
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ}, timeout=60)
        assert out.returncode == 0 and __version__ in out.stdout


@pytest.mark.parametrize("args", [["--margin", "nan"], ["--margin", "inf"], ["--max_slowdown", "nan"],
                                  ["--momentum", "nan"], ["--check_timeout", "inf"], ["--epsilon", "nan"]])
def test_a_number_that_is_not_finite_is_refused_before_anything_runs(args):
    """Click's FloatRange lets nan through (no comparison with nan is true): `--margin nan` made a gate that
    could never fail ("judged against ±nan pp")."""
    result = run_cli(*args)
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output


def test_compare_refuses_a_margin_that_is_not_finite(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text("{}")
    result = run_cli("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--margin", "nan")
    assert result.exit_code == 2 and "'--margin': nan is not a finite number" in result.output, result.output
