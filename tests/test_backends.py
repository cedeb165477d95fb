"""Keras on every backend: the keras_net tests pass on JAX and PyTorch too, and one table holds all of them.

Keras fixes its backend at import, so each backend's tests run in a process of their own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from test_keras_net import METRIC_TOLERANCE, WEIGHT_TOLERANCE

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--hidden_size", "32", "--number_epochs", "2", "--seed", "0"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_keras_net_tests_pass_on_the_backend(backend):
    """Shapes, initialisation, gradients against jax.grad / torch.autograd, paired trajectories with their
    negative cases, divergence, no start-up noise, and the unpaired full-MNIST run, on `backend`."""
    out = subprocess.run([sys.executable, "-m", "pytest", "tests/test_keras_net.py", "-q", "-s", "-p",
                          "no:cacheprovider", "-W", "ignore::DeprecationWarning"], cwd=ROOT, capture_output=True,
                         text=True, timeout=1800, env={**os.environ, "KERAS_BACKEND": backend})
    assert out.returncode == 0, out.stdout[-3000:]
    assert re.search(r"\b15 passed\b", out.stdout) and "skipped" not in out.stdout, out.stdout[-2000:]
    differences = [float(x) for x in re.findall(rf"{backend}\w* ?\w*: paired max \|weight difference\| = (\S+),",
                                                 out.stdout)]
    assert len(differences) == 3 and max(differences) < WEIGHT_TOLERANCE, out.stdout


@pytest.mark.slow
def test_one_paired_table_holds_my_net_and_keras_on_three_backends(tmp_path):
    """One epoch on full MNIST: final losses and accuracies agree within the paired tolerance on every backend.
    (A second epoch makes JAX and PyTorch part from my_net and TensorFlow by ~1e-3, both by the very same
    amount: their categorical cross-entropy clips probabilities to [1e-7, 1 - 1e-7], so an example whose
    correct class falls below 1e-7 contributes no gradient; TensorFlow's uses the softmax's logits. README.)"""
    path = tmp_path / "r.json"
    out = subprocess.run([sys.executable, "main.py", "--compare_nets", "--paired", *QUICK, "--number_epochs", "1",
                          "--keras_backend",
                          "tensorflow,jax,torch", "--output", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    names = ["my_net", "keras_net[tensorflow]", "keras_net[jax]", "keras_net[torch]"]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "Net" not in line]
    assert [row.split("|")[1].strip() for row in rows] == names
    runs = json.loads(path.read_text())["runs"]
    assert [run["name"] for run in runs] == names
    assert [run["net_info"].get("keras_backend") for run in runs] == [None, "tensorflow", "jax", "torch"]
    assert all(run["net_info"]["versions"]["keras"] for run in runs[1:])
    for run in runs[1:]:
        for field in ("train_loss", "test_loss", "test_accuracy"):
            assert run[field] == pytest.approx(runs[0][field], abs=METRIC_TOLERANCE), (run["name"], field)


@pytest.mark.parametrize("args,env,message", [
    (["--keras_backend", "bogus"], {}, "bogus: not a Keras backend"),
    (["--keras_backend", "jax"], {"block": "jax"}, "--keras_backend=jax: the jax package is not installed"),
    (["--keras_backend", "torch,jax", "--steps_per_execution", "4"], {}, "torch backend does not support it"),
    (["--keras_backend", "jax,jax"], {}, "listed twice"),
])
def test_a_backend_that_cannot_run_is_refused_in_one_line_before_training(tmp_path, args, env, message):
    environment = dict(os.environ)
    if "block" in env:  # the package is not installed, as far as this process can tell
        (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{env['block']!r}] = None\n")
        environment["PYTHONPATH"] = str(tmp_path)
    out = subprocess.run([sys.executable, "main.py", "--compare_nets", *QUICK, *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=environment)
    assert out.returncode == 2 and out.stdout == ""
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], out.stderr


def test_keras_speed_levers_are_recorded_and_named_in_the_verdict(tmp_path):
    path = tmp_path / "r.json"
    result = run_cli("--compare_nets", *QUICK, "--quiet", "--steps_per_execution", "8", "--jit_compile", "false",
                     "--output", str(path))
    assert result.exit_code == 0, result.stderr
    assert "than keras_net (steps_per_execution 8, jit_compile false; 1 run each;" in result.stdout
    keras_run = json.loads(path.read_text())["runs"][1]
    assert keras_run["net_info"]["steps_per_execution"] == 8 and keras_run["net_info"]["jit_compile"] is False


def worker_processes() -> set[int]:
    """Pids of running `python -m worker` processes."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"\0-m\0worker" in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            pass
    return pids


@pytest.mark.slow
def test_sigterm_while_a_worker_trains_keeps_the_finished_rows_and_stops_the_worker(tmp_path):
    import signal
    import time

    path, before = tmp_path / "r.json", worker_processes()
    process = subprocess.Popen([sys.executable, "main.py", "--compare_nets", "--hidden_size", "64", "--number_epochs",
                                "40", "--seed", "0", "--keras_backend", "jax", "--verbose", "--output", str(path)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # a verbose epoch line relayed from the worker: it is training
        if line.startswith("keras_net[jax] h=64 lr=0.1 batch=128 seed=0 epoch 2/40"):
            break
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "| keras_net[jax] | interrupted |" in " ".join(stdout.split())
    runs = json.loads(path.read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [("my_net", "ok"), ("keras_net[jax]", "interrupted")]
    time.sleep(0.5)
    assert worker_processes() - before == set(), "the worker must be stopped"


def test_a_run_in_a_worker_that_diverges_is_reported_as_in_process():
    result = run_cli("--net_type", "keras", "--keras_backend", "torch", "--hidden_size", "16", "--number_epochs", "1",
                     "--seed", "0", "--lr", "1e20", "--quiet")
    assert result.exit_code == 3, result.stderr
    assert "| keras_net[torch] | diverged at epoch 1 |" in " ".join(result.stdout.split())
