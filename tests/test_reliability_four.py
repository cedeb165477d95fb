"""Reliability, round four: files that cannot hurt the gate. Every hostile results file is one line and exit
2 or 4 within seconds, from `compare` and from `--baseline` before any training; weights files, data files
and a report for a net whose path is not UTF-8 likewise. Real files, FIFOs, devices and processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, write_dataset

from mnist_compare.data.idx import MnistDataError, parse_idx
from mnist_compare.system.reading import MAX_JSON_DEPTH, FileRefused, json_depth, read_json

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference.json"
QUICK = ["--hidden_size", "16", "--number_epochs", "1", "--seed", "0"]


def tool(*args, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m mnist_compare ARGS` and its wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mnist_compare", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return done, time.perf_counter() - start


def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def with_run_field(key: str, value) -> dict:
    data = reference()
    data["runs"][0][key] = value
    return data


def in_percent() -> dict:
    data = reference()
    for run in data["runs"]:
        run["test_accuracy"] *= 100
    return data


def copied_ten_times() -> dict:
    data = reference()
    data["runs"] = data["runs"] * 10
    return data


HOSTILE_JSON = {  # name -> (the file's data, words its one error line must hold)
    "a zero time": (with_run_field("train_time_s", 0), "train_time_s 0, not a finite number of seconds > 0"),
    "a negative time": (with_run_field("train_time_s", -3.5), "train_time_s -3.5"),
    "a huge accuracy": (with_run_field("test_accuracy", 1e308), "not a fraction in [0, 1]"),
    "accuracies in percent": (in_percent(), "saved in percent?"),
    "a machine that is a string": ({**reference(), "machine": "fast"}, 'its machine is "fast", not an object'),
    "a blas that is a number": ({**reference(), "machine": {"blas": 3}}, "blas is 3, not a list of objects"),
    "a name that is a list": (with_run_field("name", ["my_net"]), 'has name ["my_net"], not a string'),
    "hyperparameters that are a string": (with_run_field("hyperparameters", "h30"), "not an object"),
    "a seed that is a string": (with_run_field("seed", "1"), 'has seed "1", not an integer'),
    "a run that is a number": ({**reference(), "runs": [7]}, "run 1 is 7, not an object"),
    "a format_version that is true": ({**reference(), "format_version": True}, "format_version true"),
    "every run copied ten times": (copied_ten_times(), "repeats run 1"),
}


def hostile_file(tmp_path: Path, name: str) -> tuple[Path, str, tuple[int, ...]]:
    """(path, words of the error line, the exit codes allowed) of the hostile file `name`."""
    path = tmp_path / "hostile.json"
    if name in HOSTILE_JSON:
        data, words = HOSTILE_JSON[name]
        path.write_text(json.dumps(data))
        return path, words, (4,)
    if name == "JSON nested 100,000 deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
        return path, f"deeper than {MAX_JSON_DEPTH} levels", (4,)
    if name == "JSON nested 500 deep":
        path.write_text('{"runs": ' + "[" * 500 + "]" * 500 + "}")
        return path, f"deeper than {MAX_JSON_DEPTH} levels", (4,)
    if name == "a FIFO":
        os.mkfifo(path)
        return path, "is a FIFO (named pipe), not a file", (2,)
    if name == "a 300 MiB file":
        with open(path, "wb") as f:
            f.truncate(300 << 20)  # sparse: its size is refused before a byte is read
        return path, "larger than 256 MiB", (4,)
    if name == "/dev/zero":
        return Path("/dev/zero"), "is a device, not a file", (2,)
    raise KeyError(name)


HOSTILE = [*HOSTILE_JSON, "JSON nested 100,000 deep", "JSON nested 500 deep", "a FIFO", "a 300 MiB file", "/dev/zero"]


@pytest.mark.parametrize("name", HOSTILE)
def test_compare_refuses_a_hostile_results_file_in_one_line(tmp_path, name):
    path, words, codes = hostile_file(tmp_path, name)
    for args in ([path, REFERENCE], [REFERENCE, path]):
        done, seconds = tool("compare", *args)
        assert done.returncode in codes, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ") and words in done.stderr, \
            done.stderr
        assert done.stdout == "" and seconds < 30


@pytest.mark.parametrize("name", HOSTILE)
def test_baseline_refuses_a_hostile_results_file_before_any_training(tmp_path, name):
    path, words, codes = hostile_file(tmp_path, name)
    out = tmp_path / "never.json"
    done, seconds = tool("--baseline", path, *QUICK, "--output", out)
    assert done.returncode in codes and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "" and not out.exists() and seconds < 30


def test_a_valid_but_odd_file_keeps_its_verdicts(tmp_path):
    """The reference file itself (format 0, one run per net, setting and seed) still compares: nothing valid
    is refused by the checks above."""
    done, _ = tool("compare", REFERENCE, REFERENCE)
    assert done.returncode == 0, done.stderr
    assert "no regression" in done.stdout


def test_json_depth_is_counted_without_recursion():
    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [1, {"b": []}]}) == 4
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    assert json_depth(nested) == MAX_JSON_DEPTH + 1  # stops counting at the first level beyond


def test_read_json_names_the_file_and_says_whether_the_path_or_the_content_is_wrong(tmp_path):
    with pytest.raises(FileRefused) as missing:
        read_json(tmp_path / "absent.json", "the baseline", 1 << 20)
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(FileRefused) as not_utf8:
        read_json(tmp_path / "bad.json", "the baseline", 1 << 20)
    assert missing.value.usage and "absent.json" in str(missing.value)
    assert not not_utf8.value.usage and "not UTF-8" in str(not_utf8.value)


# -- weights files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [(None, "is a FIFO (named pipe), not a file"),
                                            ("weights = 3\n", "its weights are 3, not a table"),
                                            ("forward = [1, 2]\n", "number >= 0")])
def test_a_bad_weights_file_is_one_line_and_exit_2_before_any_check(tmp_path, content, words):
    path = tmp_path / "weights.toml"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_text(content)
    done, seconds = tool("--check", "--check_weights", path, "--gradescope", tmp_path / "results.json")
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and seconds < 30


# -- data files -------------------------------------------------------------------------------------------------

def test_an_idx_header_with_255_dimensions_is_a_data_error_not_a_bug(tmp_path):
    header = b"\x00\x00\x08\xff" + (1).to_bytes(4, "big") * 255
    with pytest.raises(MnistDataError, match="255 dimensions"):
        parse_idx(header + b"\x07", "many.idx")
    write_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(header + b"\x07")
    done, _ = tool("--data_dir", tmp_path, *QUICK)
    assert done.returncode == 4 and "255 dimensions" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_gzip_bomb_is_refused_without_unpacking_it(tmp_path, monkeypatch):
    import gzip

    from mnist_compare.data import idx

    monkeypatch.setattr(idx, "IDX_LIMIT", 1 << 20)  # the rule at a size a test can afford: 2 MiB of zeros
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(2 << 20, np.uint8))))
    with pytest.raises(MnistDataError, match="unpacks to more than 1 MiB"):
        idx.read_file_bytes(path)


def test_a_data_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    os.mkfifo(tmp_path / "t10k-images-idx3-ubyte")
    done, seconds = tool("--data_dir", tmp_path, *QUICK)
    assert done.returncode == 4 and "is a FIFO" in done.stderr and seconds < 30, done.stderr


# -- a report for a net whose path is not UTF-8 ---------------------------------------------------------------

def test_the_report_of_a_net_whose_path_is_not_utf8_is_written(tmp_path):
    directory = tmp_path / os.fsdecode(b"caf\xe9")  # Latin-1 on a UTF-8 file system
    directory.mkdir()
    (directory / "student_net.py").write_text((ROOT / "examples" / "student_net.py").read_text())
    report, results = tmp_path / "report.html", tmp_path / "results.json"
    done, _ = tool("--net_type", f"{directory / 'student_net.py'}:StudentNet", *QUICK, "--quiet",
                   "--report", report, "--output", results, timeout=300)
    assert done.returncode == 0, done.stderr
    page = report.read_text(encoding="utf-8")
    assert "caf\\udce9" in page and "caf\\udce9" in results.read_text()  # escaped alike in both


# -- out of memory is its own message and exit code, after the finished rows -----------------------------------

def under_memory_limit(limit_bytes: int, *args) -> subprocess.CompletedProcess:
    """`python -m mnist_compare ARGS` with its address space capped (as `ulimit -v` caps it)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "mnist_compare", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=cap)


def test_a_refused_allocation_is_out_of_memory_not_a_bug_and_the_row_says_what_needed_it(tmp_path):
    out = tmp_path / "r.json"
    done = under_memory_limit(2500 << 20, "--hidden_size", "65536", "--number_epochs", "1", "--seed", "0", "-q",
                              "--output", out)  # evaluating 10,000 rows at 65,536 units needs 2.4 GiB
    assert done.returncode == 9, done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["status"] == "error" and run["error"].startswith("out of memory while training my_net h=65536")
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_a_library_that_cannot_be_mapped_costs_only_its_own_row(tmp_path):
    out = tmp_path / "r.json"
    done = under_memory_limit(1500 << 20, "--compare_nets", *QUICK, "-q", "--output", out)
    runs = {run["name"]: run for run in json.loads(out.read_text())["runs"]}
    assert done.returncode == 9, done.stderr
    assert runs["my_net"]["status"] == "ok"  # trained before Keras was loaded: kept, printed and written
    assert runs["keras_net"]["error"].startswith("out of memory") and "keras_net" in done.stdout


# -- -q is quiet; outputs stay where they were asked for ------------------------------------------------------

def test_tied_repeats_raise_no_library_warning():
    """Two repeats with the same accuracy made scipy warn of precision loss in the Welch test (on stderr, past
    -q); the tests now take each side's summary, whose spread statistics.stdev gives as exactly 0."""
    from mnist_compare.output import stats, verdict

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tied, spread = [97.12, 97.12], [97.0, 97.5]
        assert stats.three_way(tied, spread, 0.2).p is not None
        assert stats.difference_interval(tied, spread) is not None
        assert 0 < verdict.welch_p_value(tied, spread) <= 1


def test_quiet_prints_nothing_on_stderr_with_keras_rows_and_a_gate(tmp_path):
    done, _ = tool("--compare_nets", "--repeats", "2", "--hidden_size", "16", "--number_epochs", "1", "--seed", "3",
                   "--min_test_accuracy", "0.01", "-q", timeout=600)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "my_net" in done.stdout and "keras_net" in done.stdout


def test_a_net_that_changes_directory_leaves_the_outputs_where_they_were_asked_for(tmp_path):
    net = tmp_path / "wandering_net.py"
    init = "    def __init__(self"
    source = (ROOT / "examples" / "student_net.py").read_text()
    assert init in source
    net.write_text("import os\n" + source.replace("    def train_on_batch(self, X, y):\n",
                                                  "    def train_on_batch(self, X, y):\n        os.chdir('/')\n", 1))
    (tmp_path / "out").mkdir()
    done = subprocess.run([sys.executable, "-m", "mnist_compare", "--net_type", f"{net}:StudentNet", *QUICK, "-q",
                           "--output", "results.json", "--report", "report.html"], cwd=tmp_path / "out",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "results.json").is_file() and (tmp_path / "out" / "report.html").is_file()
