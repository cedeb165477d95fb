"""`mnist-compare grade`: a folder of six submissions of our own (a correct .py, a correct notebook whose
training cell would never end, a notebook with a bug, a syntax error, an endless loop, a wrong class name)
graded into the expected scores, the same here, with --jobs 2 and on a real Dask cluster on loopback; the
audit of the built-in bugs; notebooks read as definitions only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
from conftest import mnist_compare_command
from mutants import MUTATIONS
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mnist_compare.nets.submission_source import SubmissionError, definitions, train_on_batch_class

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "examples" / "student_net.py").read_text()
SUMMED_LOSS = MUTATIONS["loss summed, not averaged"][0]
CHECKS_THAT_TRAIN = ["forward", "single step", "short batch", "batch of one", "stability", "determinism", "trajectory"]
TIMEOUT = "6"  # seconds of the net's own calls per check: the endless loop's budget
# what each of the six earns out of 10 (one point a check): the loop passes the three checks that never train
EXPECTED = {"alice": 10.0, "bob": 10.0, "carol": 6.0, "dave": 0.0, "erin": 3.0, "frank": 0.0}


def notebook(path: Path, *cells: str) -> Path:
    book = new_notebook(cells=[new_markdown_cell("# Homework 3")] + [new_code_cell(c) for c in cells])
    nbformat.write(book, str(path))
    return path


def hostile_prelude(out: Path) -> str:
    """Code that, on import, writes a grade of 0 for alice into the grade sheet and her Gradescope results."""
    targets = [str(out / "grades.csv"), str(out / "gradescope" / "alice" / "results.json")]
    return (f"import os\nfor target in {targets!r}:\n    try:\n"
            "        os.makedirs(os.path.dirname(target), exist_ok=True)\n"
            "        with open(target, 'w') as f:\n            f.write('submission,score\\nalice,0\\n')\n"
            "    except OSError:\n        pass\n\n\n")


def class_folder(root: Path, out: Path) -> Path:
    """Six submissions laid out as an LMS export: files, and subfolders of one file each. erin's endless loop
    also tries, every time it is imported, to give alice 0 in the outputs."""
    folder = root / "submissions"
    folder.mkdir()
    (folder / "alice.py").write_text(EXAMPLE)
    (folder / "bob").mkdir()
    notebook(folder / "bob" / "homework.ipynb", "%matplotlib inline\n!pip install numpy", EXAMPLE,
             "net = StudentNet(784, 32, 10, 0.1, 0)\nwhile True:\n    pass  # the training cell: never run")
    notebook(folder / "carol.ipynb", EXAMPLE.replace(*SUMMED_LOSS))
    (folder / "dave.py").write_text(EXAMPLE.replace("class StudentNet:", "class StudentNet"))
    looping = "\n\ndef looping(self, X, y):\n    while True:\n        pass\n\n\nStudentNet.train_on_batch = looping\n"
    (folder / "erin.py").write_text(hostile_prelude(out) + EXAMPLE + looping)
    (folder / "frank.py").write_text(EXAMPLE.replace("class StudentNet:", "class MyNetwork:"))
    return folder


def graded(folder: Path, out: Path, *extra: str) -> tuple[dict[str, dict], object]:
    sheet = out / "grades.csv"
    run = mnist_compare_command("grade", folder, "--net_class", "StudentNet", "--output",
                                sheet, "--output", out / "grades.json", "--check_timeout", TIMEOUT, "--quiet", *extra)
    rows = {row["submission"]: row for row in csv.DictReader(sheet.open())} if sheet.exists() else {}
    return rows, run


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """The six submissions graded one after another, with every output: (folder, output directory, rows, run)."""
    root = tmp_path_factory.mktemp("grade")
    out = root / "out"
    out.mkdir()
    folder = class_folder(root, out)
    rows, run = graded(folder, out, "--gradescope_dir", out / "gradescope", "--report", out / "grades.html")
    return folder, out, rows, run


def scores(rows: dict[str, dict]) -> dict[str, float]:
    return {name: float(row["score"]) for name, row in rows.items()}


@pytest.mark.slow
def test_six_submissions_get_their_expected_scores_and_reasons_in_words(six):
    _, out, rows, run = six
    assert run.returncode == 0, run.stderr[-3000:]  # a student's failure is a grade, not an error
    # alice's 10 is in the sheet although erin's code wrote "alice,0" there while it was checked
    assert scores(rows) == EXPECTED, {n: (r["score"], r["first_failure"], r["error"]) for n, r in rows.items()}
    assert list(rows) == sorted(rows) and all(float(r["max_score"]) == 10 for r in rows.values())
    assert [rows["erin"][name] for name in CHECKS_THAT_TRAIN] == ["TIMEOUT"] * len(CHECKS_THAT_TRAIN)
    assert "timed out after 6 s in train_on_batch (call 1)" in rows["erin"]["first_failure"]
    assert {rows["carol"][name] for name in ("gradients", "single step", "short batch", "trajectory")} == {"FAIL"}
    assert "the loss is summed over the batch, not averaged" in rows["carol"]["first_failure"]
    line = EXAMPLE.splitlines().index("class StudentNet:") + 1  # where dave's colon is missing
    assert rows["dave"]["error"] == f"dave.py: line {line} is not valid Python (expected ':')"
    assert rows["frank"]["error"] == "frank.py: no class StudentNet; it defines MyNetwork"
    assert str(out.parent) not in rows["dave"]["error"]  # the student reads their file's name, not our paths
    grades = {g["submission"]: g for g in json.loads((out / "grades.json").read_text())["grades"]}
    assert {n: g["score"] for n, g in grades.items()} == EXPECTED
    assert grades["bob"]["file"].endswith("homework.ipynb")  # the notebook, its training cell never run


@pytest.mark.slow
def test_each_submission_gets_its_gradescope_results_and_the_class_its_report(six):
    out = six[1]
    for name, expected in EXPECTED.items():  # alice's 10 too, whatever erin's code wrote there while it ran
        results = json.loads((out / "gradescope" / name / "results.json").read_text())
        assert results["score"] == expected
        assert len(results["tests"]) == (10 if name not in ("dave", "frank") else 0)
    page = (out / "grades.html").read_text()
    assert "data:image/svg+xml;base64," in page and "What the class got wrong" in page
    assert "the loss is summed over the batch, not averaged" in page and "no class StudentNet" in page


@pytest.mark.slow
def test_two_jobs_give_the_same_grades(six, tmp_path):
    folder, _, rows, _ = six
    again, run = graded(folder, tmp_path, "--jobs", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert {n: {k: v for k, v in r.items() if k != "seconds"} for n, r in again.items()} == \
        {n: {k: v for k, v in r.items() if k != "seconds"} for n, r in rows.items()}


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_grades(six, tmp_path):
    from test_cluster import start_cluster, stop_cluster, without_pythonpath

    folder, _, rows, _ = six
    (tmp_path / "dask").mkdir()
    address, processes = start_cluster(tmp_path / "dask", 2, without_pythonpath())
    try:
        again, run = graded(folder, tmp_path, "--scheduler", address)
    finally:
        stop_cluster(processes)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {n: {k: v for k, v in r.items() if k != "seconds"} for n, r in again.items()} == \
        {n: {k: v for k, v in r.items() if k != "seconds"} for n, r in rows.items()}


@pytest.mark.slow
def test_the_audit_scores_every_built_in_bug_under_the_weights(tmp_path):
    weights = tmp_path / "rubric.toml"
    weights.write_text("trajectory = 0\nforward = 2\n")  # a rubric that gives the trajectory nothing
    run = mnist_compare_command("grade", "--audit", "--check_weights", weights, "--jobs", "2", "--output",
                                tmp_path / "audit.csv", "--quiet")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {row["submission"]: row for row in csv.DictReader((tmp_path / "audit.csv").open())}
    assert list(rows) == ["no bug (the example itself)", *MUTATIONS]
    assert float(rows["no bug (the example itself)"]["score"]) == 10.0
    assert all(float(rows[bug]["score"]) < 10 for bug in MUTATIONS if bug != "learning rate halved after 59 steps")
    # only the trajectory catches a learning rate that changes mid-run: this rubric lets it through
    assert float(rows["learning rate halved after 59 steps"]["score"]) == 10.0
    assert rows["learning rate halved after 59 steps"]["trajectory"] == "FAIL"


def test_a_notebook_gives_its_definitions_only(tmp_path):
    path = notebook(tmp_path / "hw.ipynb", "import numpy as np\n%timeit np.zeros(3)\nSIZE = 3\nsize = 4",
                    "%%bash\necho hi", "def f():\n    !ls\n    return 1",
                    "print('training')\nwhile True:\n    pass", "class Net:\n    def train_on_batch(self, X, y): ...")
    text = definitions(path)
    assert "import numpy as np" in text and "SIZE = 3" in text and "class Net" in text and "def f():" in text
    assert "size = 4" not in text and "while True" not in text and "echo" not in text and "%" not in text
    assert train_on_batch_class(path, None) == "Net"


@pytest.mark.parametrize("content,message", [
    ("{not json", "not a readable notebook"),
    (None, "no class defines train_on_batch (it defines Helper)"),
    ("two", "2 classes define train_on_batch (A, B): name one with --net_class"),
])
def test_a_notebook_that_is_no_submission_is_an_error_in_words(tmp_path, content, message):
    path = tmp_path / "hw.ipynb"
    if content == "two":
        notebook(path, "class A:\n    def train_on_batch(self, X, y): ...",
                 "class B:\n    def train_on_batch(self, X, y): ...")
    elif content is None:
        notebook(path, "class Helper:\n    pass")
    else:
        path.write_text(content)
    with pytest.raises(SubmissionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_on_batch_class(path, None)


def test_a_notebook_trains_as_net_type_and_its_training_cell_never_runs(tmp_path):
    path = notebook(tmp_path / "hw.ipynb", EXAMPLE, "net = StudentNet(784, 32, 10, 0.1, 0)\nwhile True:\n    pass")
    run = mnist_compare_command("--net_type", f"{path}:StudentNet", "--hidden_size", "16", "--number_epochs", "1",
                                "--seed", "0", "--quiet", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| StudentNet" in run.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_rows_exits_130_and_leaves_no_process(tmp_path):
    """A stop signal while the second submission is checked: the first's row is printed and written, the
    second (interrupted) is not, and no submission process is left."""
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "two"
    folder.mkdir()
    (folder / "a.py").write_text(EXAMPLE)
    step = "    def train_on_batch(self, X, y):\n"
    assert step in EXAMPLE  # b is slow, so that it is surely still being checked when the signal comes
    (folder / "b.py").write_text("import time\n" + EXAMPLE.replace(step, step + "        time.sleep(0.2)\n"))
    sheet = tmp_path / "grades.csv"
    grading = subprocess.Popen([sys.executable, "-m", "mnist_compare", "grade", str(folder), "--output", str(sheet)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "a: 10 of 10" not in seen and grading.poll() is None:
        seen += grading.stderr.readline()
    time.sleep(3)  # b's checks are running
    grading.send_signal(signal.SIGINT)
    stdout, _ = grading.communicate(timeout=120)
    assert grading.returncode == 130
    assert [row["submission"] for row in csv.DictReader(sheet.open())] == ["a"] and "| a " in stdout
    leftover = subprocess.run(["pgrep", "-f", "mnist_compare.check.sandbox_child"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
