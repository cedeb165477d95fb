"""--output mlflow://EXPERIMENT and --output tensorboard://DIR, read back with the trackers' own APIs: MLflow's
search_runs and get_metric_history against a real SQLite store, TensorBoard's event reader against real event
files, all in a temporary directory; the results JSON of the same command is the yardstick."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

QUICK = ["--hidden_size", "16", "--number_epochs", "2", "--seed", "0", "--quiet"]
needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed")


def tool(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m mnist_compare ARGS` in `cwd` (MLflow's default store is ./mlflow.db there)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, "-m", "mnist_compare", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**environment, **(env or {})})


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[Path, dict]:
    """The issue's command (smaller nets): both nets, two repeats, into MLflow's default store and TensorBoard."""
    folder = tmp_path_factory.mktemp("trackers")
    done = tool("--compare_nets", "--repeats", "2", "--eval_every_epoch", *QUICK, "--output", "mlflow://demo",
                "--output", "tensorboard://tb", "--output", "run.json", "--report", "report.html", cwd=folder)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return folder, json.loads((folder / "run.json").read_text())


@needs_mlflow
def test_mlflow_holds_one_parent_and_a_child_per_net_and_seed_with_its_history(logged, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    folder, saved = logged
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set_tracking_uri sets it too: restored after the test
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    runs = mlflow.search_runs(experiment_names=["demo"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4 and len(runs) == 5
    parent = parents[0]
    assert parent.data.params["command_line"].startswith("python -m mnist_compare --compare_nets")
    assert parent.data.params["repeats"] == "2" and parent.data.tags["mnist_compare.version"] == saved["tool_version"]
    assert parent.data.tags["mnist_compare.summary"] == "\n".join(saved["summary"])
    by_name = {}
    for run in saved["runs"]:
        by_name.setdefault(run["name"], []).append(run["test_accuracy"])
    for name, values in by_name.items():
        assert parent.data.metrics[f"{name}/test_accuracy_mean"] == pytest.approx(sum(values) / 2, rel=1e-12)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"results.json", "report.html"}
    for child in children:
        run = next(r for r in saved["runs"] if r["name"] == child.data.params["net"]
                   and str(r["seed"]) == child.data.params["seed"])
        assert child.info.status == "FINISHED" and child.data.params["hidden_size"] == "16"
        for key in ("loss", "accuracy", "epoch_time_s", "test_accuracy"):
            history = client.get_metric_history(child.info.run_id, key)
            assert [m.step for m in history] == [1, 2]
            assert [m.value for m in history] == pytest.approx(run["history"][key], rel=1e-12)
        assert child.data.metrics["final/test_accuracy"] == pytest.approx(run["test_accuracy"], rel=1e-12)


@needs_tensorboard
def test_tensorboard_holds_a_run_per_net_and_seed_with_scalars_and_hparams(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, saved = logged
    (stamp,) = (folder / "tb").iterdir()
    directories = sorted(p for p in stamp.iterdir() if p.is_dir())
    assert [p.name for p in directories] == ["keras_net_seed_0", "keras_net_seed_1", "my_net_seed_0", "my_net_seed_1"]
    experiment = EventAccumulator(str(stamp))
    experiment.Reload()
    assert "_hparams_/experiment" in experiment.Tags()["tensors"]
    for directory in directories:
        name, seed = directory.name.rsplit("_seed_", 1)
        run = next(r for r in saved["runs"] if r["name"] == name and r["seed"] == int(seed))
        events = EventAccumulator(str(directory))
        events.Reload()
        assert "_hparams_/session_start_info" in events.Tags()["tensors"]
        for key in ("loss", "accuracy", "test_accuracy"):
            scalars = events.Scalars(key)
            assert [s.step for s in scalars] == [1, 2]
            assert [s.value for s in scalars] == pytest.approx(run["history"][key], rel=1e-6)  # float32 on file
        assert events.Scalars("final/test_accuracy")[0].value == pytest.approx(run["test_accuracy"], rel=1e-6)


@needs_mlflow
def test_a_sweep_on_two_backends_against_a_baseline_logs_every_row_and_the_verdicts(tmp_path, monkeypatch):
    import mlflow

    base = tool("--compare_nets", "--hidden_size", "8,16", "--number_epochs", "1", "--seed", "3", "--quiet",
                "--output", "base.json", cwd=tmp_path)
    assert base.returncode == 0, base.stderr
    done = tool("--compare_nets", "--hidden_size", "8,16", "--number_epochs", "1", "--seed", "3", "--quiet",
                "--keras_backend", "tensorflow,jax", "--baseline", "base.json", "--output", "mlflow://sweep/nightly",
                cwd=tmp_path)
    assert done.returncode in (0, 8), done.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["sweep"], output_format="list")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == "nightly" and len(runs) == 1 + 2 * 3
    names = sorted(r.info.run_name for r in runs if r is not parent)
    assert "keras_net[jax] hidden_size_16 seed 3" in names and "my_net hidden_size_8 seed 3" in names
    assert "keras_net_jax/hidden_size_8/test_accuracy_mean" in parent.data.metrics
    assert "regression" in parent.data.tags["mnist_compare.baseline"]
    assert any(key.startswith("mnist_compare.baseline/my_net/") for key in parent.data.tags)


@needs_mlflow
def test_an_unreachable_tracking_server_is_exit_5_after_training_with_every_other_output_written(tmp_path):
    done = tool(*QUICK, "--output", "mlflow://demo", "--output", "run.json", cwd=tmp_path,
                env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert done.returncode == 5 and (tmp_path / "run.json").is_file() and "my_net" in done.stdout
    assert done.stderr.splitlines() == [done.stderr.splitlines()[0]] and done.stderr.startswith(
        "Error: cannot write mlflow://demo:")


def test_a_tracker_output_is_refused_before_training_when_it_cannot_be_used(tmp_path):
    for args, said in [([*QUICK, "--output", "mlflow://"], "name the experiment"),
                       (["--check", "--hidden_size", "16", "--output", "tensorboard://tb"], "trackers log training"),
                       ([*QUICK, "--output", "tensorboard://a_file/tb"], "cannot write there")]:
        (tmp_path / "a_file").write_text("not a directory")
        done = tool(*args, cwd=tmp_path)
        if said == "trackers log training" and importlib.util.find_spec("tensorboard") is None:
            said = "needs the tensorboard package"  # refused while the options are read, before the mode's rules
        assert done.returncode == 2 and said in done.stderr and not done.stdout, done.stderr
    compare = tool("compare", "a.json", "b.json", "--output", "mlflow://x", cwd=tmp_path)
    assert compare.returncode == 2


@pytest.mark.parametrize("scheme", ["mlflow", "tensorboard"])
def test_a_tracker_that_is_not_installed_is_refused_before_training_with_the_install_line(tmp_path, scheme):
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{scheme!r}] = None\n")  # as if absent
    done = tool(*QUICK, "--output", f"{scheme}://demo", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2 and not done.stdout
    assert f"logging to {scheme} needs the {scheme} package: pip install" in done.stderr, done.stderr


def test_a_plain_run_imports_neither_tracker(tmp_path):
    code = ("import sys\nfrom mnist_compare.cli.main import main\ntry:\n    main(['--hidden_size', '8', "
            "'--number_epochs', '1', '--quiet', '--output', 'r.json'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'tensorboard'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]" and (tmp_path / "r.json").is_file(), done.stderr


@needs_mlflow
@needs_tensorboard
def test_the_readmes_read_back_script_reads_both_trackers(logged):
    folder, _ = logged
    script = Path(__file__).resolve().parents[1] / "examples" / "trackers_readback.py"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True, timeout=300,
                          env=environment)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 1 + 4 + 1 + 4, done.stdout + done.stderr
    assert lines[0].startswith("parent") and "report.html" in lines[5] and "HParams session True" in lines[-1]


@needs_mlflow
def test_repeats_auto_logs_each_repeat_it_chose(tmp_path, monkeypatch):
    import mlflow

    done = tool("--compare_nets", "--repeats", "auto", "--max_repeats", "2", "--hidden_size", "8", "--number_epochs",
                "1", "--seed", "0", "--quiet", "--output", "mlflow://auto", "--output", "run.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # set_tracking_uri sets it too
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["auto"], output_format="list")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    saved = json.loads((tmp_path / "run.json").read_text())
    assert parent.data.params["repeats"] == "auto" and len(runs) == 1 + len(saved["runs"]) == 5
