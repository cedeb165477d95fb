"""Sweeps on a Dask cluster: a real scheduler and two real workers on loopback, started and stopped here."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_compare.runs import cluster

ROOT = Path(__file__).resolve().parents[1]
# --paired: Keras takes the tool's batch order and initial weights, as my_net does. Unpaired, Keras' own shuffle
# gave one job's losses 2e-3 apart between a local and a worker run once in three CI runs, which is Keras'
# repeatability, not the cluster's.
# The default --blas_threads auto: two workers on one 2-core machine are a load that auto answers with one BLAS
# thread at moments that differ between the runs, and my_net's rows must still be bit-identical (blas.py).
SWEEP = ["--hidden_size", "16,32", "--lr", "0.1,0.05", "--repeats", "2", "--compare_nets",
         "--paired", "--number_epochs", "1", "--seed", "0", "--quiet"]


def without_pythonpath() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def dask_command(*args: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A Dask scheduler or worker started as on any cluster: in its own directory (the log's, a temporary one),
    loading mnist_compare as the installed package."""
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]], cwd=log.parent,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def start_cluster(directory: Path, workers: int, worker_env: dict[str, str]) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler on loopback and `workers` single-threaded workers, all in `directory` with no PYTHONPATH
    (the workers with worker_env); returns the scheduler's address and the processes, once the workers are in."""
    from distributed import Client

    address_file = directory / "scheduler.json"
    processes = [dask_command("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                              "--scheduler-file", str(address_file), log=directory / "scheduler.log",
                              env=without_pythonpath())]
    deadline = time.monotonic() + 60
    while not address_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(address_file.read_text())["address"]
    processes += [dask_command("worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                               "--local-directory", str(directory / f"w{i}"), log=directory / f"worker{i}.log",
                               env=worker_env)
                  for i in range(workers)]
    with Client(address, timeout=30) as client:
        client.wait_for_workers(workers, timeout=60)
    return address, processes


def stop_cluster(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert all(process.poll() is not None for process in processes)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """tcp://127.0.0.1:PORT of a scheduler with two single-threaded workers; every process stopped after."""
    address, processes = start_cluster(tmp_path_factory.mktemp("dask"), 2, without_pythonpath())
    yield address
    stop_cluster(processes)


def main_py(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def runs(path: Path) -> dict[tuple, dict]:
    return {(r["name"], r["hyperparameters"]["hidden_size"], r["hyperparameters"]["lr"], r["seed"]): r
            for r in json.loads(path.read_text())["runs"]}


@pytest.mark.slow
def test_a_sweep_on_the_cluster_gives_the_local_runs_results_with_a_host_per_row(scheduler, tmp_path):
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    assert main_py(*SWEEP, "--output", str(local)).returncode == 0
    out = main_py(*SWEEP, "--scheduler", scheduler, "--output", str(remote))
    assert out.returncode == 0, out.stderr
    mine, theirs = runs(local), runs(remote)
    assert sorted(mine) == sorted(theirs) and len(mine) == 16
    for key, run in theirs.items():
        assert run["net_info"]["host"] and run["net_info"]["thread_budget"] >= 1 and run["net_info"]["retries"] == 0
        fields = ("test_accuracy", "test_loss", "train_loss")
        if key[0] == "my_net":  # the same seeds, the same BLAS threads: bit-identical
            assert [run[f] for f in fields] == [mine[key][f] for f in fields], key
        else:
            assert [run[f] for f in fields] == pytest.approx([mine[key][f] for f in fields], abs=1e-4), key
    assert "mean of per-job ratios on 1 host" in out.stdout
    assert "runs several Dask workers" in out.stderr  # two workers on this one machine: warned


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_a_sweep_on_the_cluster_is_logged_into_mlflow_from_the_client(scheduler, tmp_path, monkeypatch):
    import mlflow

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    # run from tmp_path: MLflow puts a new experiment's artifacts under ./mlruns, which must not be the checkout
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--compare_nets", "--hidden_size", "8",
                           "--number_epochs", "1", "--repeats", "2", "--seed", "5", "--quiet", "--scheduler", scheduler,
                           "--output", "mlflow://cluster"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])  # set_tracking_uri sets it too
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["cluster"], output_format="list")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 5 and sorted(r.data.params["seed"] for r in children) == ["5", "5", "6", "6"]
    assert all(len(mlflow.MlflowClient().get_metric_history(r.info.run_id, "loss")) == 1 for r in children)


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_retried_and_the_run_completes(scheduler, tmp_path):
    from distributed import Client

    path = tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "main.py", "--hidden_size", "64", "--repeats", "2", "--compare_nets",
                                "--number_epochs", "3", "--seed", "0", "--quiet", "--scheduler", scheduler,
                                "--output", str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    with Client(scheduler, timeout=30) as client:
        deadline = time.monotonic() + 120
        busy = {}
        while not busy and time.monotonic() < deadline:
            busy = {w: tasks for w, tasks in client.processing().items() if tasks}
            time.sleep(0.2)
        assert busy, "no job started"
        time.sleep(3)  # into the job's training
        worker = next(iter(busy))
        os.kill(client.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    records = json.loads(path.read_text())["runs"]
    assert [r["status"] for r in records] == ["ok"] * 4
    assert sum(r["net_info"]["retries"] for r in records) >= 1
    assert "re-run after its worker died" in stderr


@pytest.mark.slow
def test_ctrl_c_on_the_client_keeps_the_finished_rows_and_exits_130(scheduler, tmp_path):
    path = tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "main.py", "--hidden_size", "16,256", "--compare_nets",
                                "--number_epochs", "8", "--seed", "0", "--scheduler", scheduler, "--output",
                                str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # the small job ends first; the large one is still training on the other worker
        if line.startswith("finished job h=16"):
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    records = [(r["hyperparameters"]["hidden_size"], r["status"]) for r in json.loads(path.read_text())["runs"]]
    assert records == [(16, "ok"), (16, "ok"), (256, "interrupted"), (256, "interrupted")]
    assert "| 16 " in stdout and "Traceback" not in stderr


def test_a_scheduler_address_where_nothing_listens_is_exit_2_within_seconds():
    started = time.monotonic()
    out = main_py("--hidden_size", "16", "--number_epochs", "1", "--scheduler", "tcp://127.0.0.1:9", timeout=60)
    assert out.returncode == 2 and time.monotonic() - started < 30
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "no Dask scheduler answered" in errors[0], out.stderr


def test_without_dask_installed_scheduler_is_a_usage_error(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['distributed'] = None\n")
    out = subprocess.run([sys.executable, "main.py", "--hidden_size", "16", "--scheduler", "tcp://127.0.0.1:9"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    hint = f"pip install -r {ROOT / 'requirements-dask.txt'}"  # a clone's hint; a wheel's: test_packaging
    assert out.returncode == 2 and hint in out.stderr, out.stderr


def test_a_local_run_never_imports_dask():
    code = ("import sys, main\ntry:\n    main.main(['--hidden_size', '8', '--number_epochs', '1', '--quiet'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', "
            "'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_a_worker_with_other_library_versions_is_refused_with_the_versions_named():
    here = {"numpy": "2.4.6", "scipy": "1.17.1", "tensorflow": "2.21.0", "keras": "3.15.1"}
    workers = {"tcp://a:1": dict(here), "tcp://b:2": {**here, "numpy": "1.26.4"}}
    assert cluster.mismatched(here, workers) == {
        "tcp://b:2": "worker tcp://b:2 refused for this run: numpy 1.26.4 (here 2.4.6)"}


def test_several_workers_on_one_host_are_reported():
    workers = {"a": {"host": "h1", "nthreads": 1}, "b": {"host": "h1", "nthreads": 1}, "c": {"host": "h2",
                                                                                           "nthreads": 1}}
    assert cluster.crowded_hosts(workers) == ["h1"]


def test_a_worker_without_the_package_is_refused_in_one_line_before_any_job(tmp_path):
    # The worker's Python cannot import mnist_compare (sitecustomize blocks it, in the nanny and the worker):
    # a machine of the cluster where the package was never installed.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text("import sys\nsys.modules['mnist_compare'] = None\n")
    address, processes = start_cluster(tmp_path, 1, {**without_pythonpath(), "PYTHONPATH": str(tmp_path / "site")})
    try:
        out = main_py("--hidden_size", "16", "--number_epochs", "1", "--scheduler", address, timeout=120)
    finally:
        stop_cluster(processes)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    (line,) = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    wheel = f"pip install 'mnist_compare-{cluster.__version__}-py3-none-any.whl[dask]'"  # not on PyPI: its wheel
    assert "has no mnist_compare" in line and wheel in line, out.stderr
    assert "Traceback" not in out.stderr


# -- faults: the cluster cannot make progress, a user's net on a worker (reliability, round three) -------------

EXAMPLE = ROOT / "examples" / "student_net.py"


def test_a_scheduler_address_where_a_web_server_answers_is_exit_2_within_seconds(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = int(server.stdout.readline().split("port ")[1].split()[0])
        started = time.monotonic()
        out = main_py("--hidden_size", "16", "--number_epochs", "1", "--scheduler", f"tcp://127.0.0.1:{port}",
                      timeout=120)
    finally:
        server.kill()
        server.wait()
    assert out.returncode == 2 and time.monotonic() - started < 30, out.stderr  # it waited 11 minutes before
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "no Dask scheduler answered" in errors[0], out.stderr


@pytest.mark.slow
def test_a_net_from_a_file_trains_on_the_cluster_and_its_failure_is_its_own_row(scheduler, tmp_path):
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    args = ["--net_type", f"{EXAMPLE}:StudentNet", "--compare_nets", "--paired", "--hidden_size", "16",
            "--number_epochs", "1", "--seed", "0", "--quiet"]
    assert main_py(*args, "--output", str(local)).returncode == 0
    out = main_py(*args, "--scheduler", scheduler, "--output", str(remote))
    assert out.returncode == 0, out.stderr  # the file was shipped to the workers (Dask's upload_file)
    mine, theirs = runs(local), runs(remote)
    assert sorted(mine) == sorted(theirs)
    for key, run in theirs.items():
        assert run["test_loss"] == pytest.approx(mine[key]["test_loss"], abs=1e-4), key
    exiting = tmp_path / "exiting_net.py"
    step = "    def train_on_batch(self, X, y):\n"
    exiting.write_text(EXAMPLE.read_text().replace(step, step + "        raise SystemExit(3)\n"))
    out = main_py("--net_type", f"{exiting}:StudentNet", *args[2:], "--scheduler", scheduler,
                  "--output", str(remote))
    assert out.returncode == 6, out.stderr
    statuses = {name: run["status"] for (name, *_), run in runs(remote).items()}
    assert statuses == {"StudentNet": "error", "keras_net": "ok"}  # the Keras row is not blamed
    assert "SystemExit: 3" in out.stdout


def sweep_past_its_first_job(address: str, epochs: int, path: Path) -> subprocess.Popen:
    """main.py training hidden 16 and 256 with --compare_nets on the cluster at `address`, writing `path`;
    returned once the hidden-16 job has finished (the hidden-256 one is then training)."""
    process = subprocess.Popen([sys.executable, "main.py", "--hidden_size", "16,256", "--compare_nets",
                                "--number_epochs", str(epochs), "--seed", "0", "--scheduler", address, "--output",
                                str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("finished job h=16"):
            break
    return process


@pytest.mark.slow
def test_a_scheduler_killed_mid_sweep_keeps_the_finished_rows_and_exits_6(tmp_path):
    address, processes = start_cluster(tmp_path, 1, without_pythonpath())
    path = tmp_path / "r.json"
    try:
        process = sweep_past_its_first_job(address, 8, path)
        os.killpg(processes[0].pid, signal.SIGKILL)  # the scheduler
        started = time.monotonic()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        stop_cluster(processes)
    assert process.returncode == 6 and time.monotonic() - started < 60, stderr
    records = [(r["hyperparameters"]["hidden_size"], r["status"]) for r in json.loads(path.read_text())["runs"]]
    assert records == [(16, "ok"), (16, "ok"), (256, "error"), (256, "error")]
    assert "the Dask scheduler stopped answering" in stdout and "| 16 " in stdout
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_sweep_goes_on_when_every_worker_is_restarted_under_a_new_address(tmp_path):
    from distributed import Client

    address, processes = start_cluster(tmp_path, 1, without_pythonpath())
    path = tmp_path / "r.json"
    try:
        process = sweep_past_its_first_job(address, 3, path)
        with Client(address, timeout=30) as client:  # the only worker dies; its nanny starts a new one
            (before,) = client.scheduler_info()["workers"]
            os.kill(client.run(os.getpid)[before], signal.SIGKILL)
            client.wait_for_workers(1, timeout=60)
            deadline = time.monotonic() + 60
            while before in client.scheduler_info()["workers"] and time.monotonic() < deadline:
                time.sleep(0.5)
            assert before not in client.scheduler_info()["workers"]  # a new address
        _, stderr = process.communicate(timeout=300)
    finally:
        stop_cluster(processes)
    assert process.returncode == 0, stderr  # jobs pinned to the old address waited for ever
    records = json.loads(path.read_text())["runs"]
    assert [r["status"] for r in records] == ["ok"] * 4 and records[-1]["net_info"]["retries"] >= 1


@pytest.mark.slow
def test_a_sweep_with_no_worker_left_stops_after_the_stall_time_keeping_what_finished(tmp_path):
    from distributed import Client

    from mnist_compare.nets.my_net import NeuralNetwork
    from mnist_compare.records.spec import RunSpec
    from mnist_compare.runs.sources import DataSource

    address, processes = start_cluster(tmp_path, 1, without_pythonpath())
    specs = [RunSpec(NeuralNetwork, hidden, number_epochs=20, seed=0) for hidden in (16, 32)]
    try:
        os.killpg(processes[1].pid, signal.SIGKILL)  # the worker and its nanny: nobody will take the jobs
        with Client(address, timeout=30) as client:
            started = time.monotonic()
            results, stopped = cluster.run_on_cluster(client, specs, DataSource(), 1, None, lambda _: None,
                                                      stall_s=5)
            waited = time.monotonic() - started
    finally:
        stop_cluster(processes[:1])
    assert not stopped and 5 < waited < 60
    assert [r.status for r in results] == ["error", "error"]
    assert all("no Dask worker for 5 s" in r.error for r in results)


@pytest.mark.slow
def test_a_net_file_s_helper_modules_travel_with_it_and_a_missing_module_is_named(scheduler, tmp_path):
    """A net file that imports a module and a package from its own directory trains on the workers (they
    were shipped with it, from any working directory); a net from a module the workers lack is its own error
    row naming that module, not a bug."""
    home = tmp_path / "nets"
    (home / "mylib").mkdir(parents=True)
    (home / "helpers.py").write_text("SCALE = 1.0\n")
    (home / "mylib" / "__init__.py").write_text("")
    (home / "mylib" / "acts.py").write_text("import numpy as np\n\ndef relu(z):\n    return np.maximum(z, 0)\n")
    step = "    def train_on_batch(self, X, y):\n"
    net = home / "helped_net.py"
    net.write_text("import helpers\nimport mylib.acts\n" + EXAMPLE.read_text().replace(
        step, step + "        assert helpers.SCALE == 1.0 and mylib.acts.relu(-1.0) == 0\n"))
    args = ["--hidden_size", "16", "--number_epochs", "1", "--seed", "0", "--quiet"]
    out = main_py("--net_type", f"{net}:StudentNet", *args, "--scheduler", scheduler,
                  "--output", str(tmp_path / "helped.json"))
    assert out.returncode == 0, out.stderr
    assert [r["status"] for r in runs(tmp_path / "helped.json").values()] == ["ok"]
    (tmp_path / "only_here").mkdir()
    (tmp_path / "only_here" / "local_nets.py").write_text(EXAMPLE.read_text())
    out = subprocess.run([sys.executable, "main.py", "--net_type", "local_nets:StudentNet", *args, "--scheduler",
                          scheduler], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "only_here")})
    assert out.returncode == 6, out.stderr
    assert "a worker cannot import local_nets" in out.stdout + out.stderr, out.stderr[-600:]
