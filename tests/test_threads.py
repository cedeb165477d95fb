"""--blas_threads: BLAS gets one thread fewer while another process holds a core, and all of them back after;
and whatever the count, every product and so every run of a seed has the same bits.

Real processes keep a core busy; nothing is simulated but the absence of /proc/stat (a machine without it).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_cli
from threadpoolctl import ThreadpoolController

from mnist_compare.nets import my_net
from mnist_compare.nets.blas import ONE_THREAD_MNK, gemm, single_call
from mnist_compare.nets.threads import SPARE_CORE_SHARE, CpuLoad, threads_for

CORES = os.cpu_count() or 1
needs_two_cores = pytest.mark.skipif(CORES < 2 or not os.path.exists("/proc/stat"),
                                     reason="needs two cores and Linux's /proc/stat")


def busy_core(after_s: float = 0.0, for_s: float = 60.0) -> subprocess.Popen:
    """Another process that keeps one core busy for `for_s` seconds, starting `after_s` from now."""
    code = (f"import time\ntime.sleep({after_s})\nend = time.monotonic() + {for_s}\n"
            "while time.monotonic() < end:\n    pass\n")
    return subprocess.Popen([sys.executable, "-c", code])


def blas_threads_now() -> int:
    return max(info["num_threads"] for info in ThreadpoolController().select(user_api="blas").info())


@pytest.mark.parametrize("others,most,threads", [(0.0, 2, 2), (0.39, 2, 2), (0.41, 2, 1), (1.0, 2, 1), (1.8, 2, 1),
                                                 (0.0, 8, 8), (0.5, 8, 7), (1.0, 8, 7), (1.5, 8, 6), (9.0, 8, 1),
                                                 (0.0, 1, 1), (5.0, 1, 1)])
def test_one_thread_fewer_for_each_core_others_hold(others, most, threads):
    assert threads_for(others, most) == threads


def others_while_sleeping(seconds: float = 0.5) -> float:
    """The cores other processes hold now, as this test measures it before it adds its own helper: the
    baseline that a machine busy with other work (a CI runner, a user's laptop) sets."""
    load = CpuLoad()
    time.sleep(seconds)
    return load.others()


def needs_a_free_core(before: float) -> None:
    if before > CORES - 1 + SPARE_CORE_SHARE:
        pytest.skip(f"other processes hold {before:.1f} of {CORES} cores: no core left to measure a helper on")


@needs_two_cores
def test_cpu_load_counts_another_process_and_not_this_one():
    before = others_while_sleeping()
    needs_a_free_core(before)
    load = CpuLoad()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:  # this process busy: not "others"
        pass
    alone = load.others()
    helper = busy_core()
    try:
        time.sleep(0.2)
        load.others()
        time.sleep(0.6)
        loaded = load.others()
    finally:
        helper.kill()
        helper.wait()
    print(f"others' cores: {before:.2f} before, {alone:.2f} while this process ran, {loaded:.2f} with a helper")
    assert alone < before + 0.6 and 0.6 < loaded - before < 1.4


def dense_data() -> tuple[np.ndarray, np.ndarray]:
    """X (20000, 784) float32 with no zero pixels to skip, y (20000,) labels."""
    return np.random.default_rng(0).random((20_000, 784), dtype=np.float32), np.arange(20_000) % 10


def epochs_lasting(seconds: float, hidden: int = 128) -> int:
    """How many epochs of fit_under take at least `seconds` on this machine when it is quiet (under load they
    take longer), timed on two quiet epochs: a fixed count lasted 3 s on one CPU and 1.3 s on another."""
    X, y = dense_data()
    epoch_s = min(my_net.NeuralNetwork(784, hidden, seed=0, blas_threads="all").fit(X, y, 128, 2)["epoch_time_s"])
    return math.ceil(seconds / epoch_s)


def fit_under(helper: subprocess.Popen | None, epochs: int, blas_threads: str = "auto",
              hidden: int = 128) -> my_net.NeuralNetwork:
    X, y = dense_data()
    net = my_net.NeuralNetwork(784, hidden, seed=0, blas_threads=blas_threads)
    try:
        net.fit(X, y, 128, epochs)
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
    return net


@needs_two_cores
def test_auto_gives_blas_one_thread_while_another_process_holds_a_core():
    found = blas_threads_now()
    epochs = epochs_lasting(2.0)
    helper = busy_core()
    time.sleep(0.3)
    net = fit_under(helper, epochs)
    steps, changes = net.describe()["blas_thread_steps"], net.describe()["blas_thread_changes"]
    print(f"steps per thread count {steps}, changes {changes}")
    assert steps.get(1, 0) > 0.85 * sum(steps.values())  # all but those of the first reading's 0.1 s
    assert changes[0][1] == 1 and changes[0][2] > 0.4  # [seconds into the fit, threads, others' cores]
    assert blas_threads_now() == found  # the count BLAS had is restored after the fit


@needs_two_cores
def test_auto_gives_the_threads_back_when_the_other_process_ends():
    """While the helper runs BLAS has one thread; when it ends, as many as the load left then allows: all of
    them on an idle machine, one while yet another process still holds a core (measured after the fit)."""
    needs_a_free_core(others_while_sleeping())
    found = blas_threads_now()
    epochs = epochs_lasting(3.0)
    helper = busy_core(after_s=0.0, for_s=1.5)
    time.sleep(0.3)
    start = time.perf_counter()
    net = fit_under(helper, epochs)  # >= 3 s: the helper ends 1.2 s into it, ~7 load readings after that
    after = threads_for(others_while_sleeping(), found)
    changes = net.describe()["blas_thread_changes"]
    print(f"changes {changes} over {time.perf_counter() - start:.1f} s; the load after allows {after}")
    assert changes[0][1] == 1 and changes[-1][1] == after


def test_a_fixed_count_is_used_for_every_step_and_undone_after():
    found = blas_threads_now()
    net = fit_under(None, 1, blas_threads="1", hidden=16)
    assert net.describe()["blas_thread_steps"] == {1: 157} and net.describe()["blas_thread_changes"] == []
    assert blas_threads_now() == found


def test_without_proc_stat_auto_keeps_blas_s_own_count(monkeypatch):
    monkeypatch.setattr(CpuLoad, "STAT", "/nonexistent/stat")
    found = blas_threads_now()
    net = fit_under(None, 2, hidden=16)
    assert net.describe()["blas_thread_steps"] == {found: 314} and net.describe()["blas_thread_changes"] == []


# -- the same bits at any thread count and load (blas.py) ---------------------------------------------------

SHAPES = [(128, 634, 300), (128, 784, 30), (10_000, 784, 128), (96, 784, 256), (1, 784, 64), (128, 300, 10),
          (634, 128, 300), (2, 784, 16), (128, 10, 300), (128, 784, 1024), (300, 128, 10), (17, 455, 333)]


def products_at(threads: int, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """The three kinds of product my_net computes (forward, the fused W1 update through a transposed view, the
    hidden delta against a transposed copy), at `threads` BLAS threads."""
    m, k, n = shape
    rng = np.random.default_rng(0)
    A, B = rng.random((m, k), dtype=np.float32), rng.standard_normal((k, n)).astype(np.float32)
    D = rng.standard_normal((m, n)).astype(np.float32)
    controller = ThreadpoolController().select(user_api="blas")
    found = blas_threads_now()
    controller.limit(limits=threads)
    try:
        forward = gemm(A, B, np.ones((m, n), np.float32), alpha=0.5, beta=1.0)
        update = gemm(A.T, D, np.ones((k, n), np.float32), alpha=-0.01, beta=1.0)
        delta = gemm(D, np.ascontiguousarray(B.T), np.empty((m, k), np.float32))
    finally:
        controller.limit(limits=found)
    reference = 0.5 * (A.astype(np.float64) @ B) + 1
    assert np.abs(forward - reference).max() <= 1e-5 * np.abs(reference).max()  # and the right product
    return [forward, update, delta]


@needs_two_cores
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_product_has_the_same_bits_with_one_and_two_threads(shape):
    one, two = products_at(1, shape), products_at(2, shape)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


@needs_two_cores
def test_a_plain_call_below_the_one_thread_bound_is_one_thread_at_any_count():
    # gemm makes one plain call for products of at most ONE_THREAD_MNK multiply-adds, trusting OpenBLAS to
    # compute them on one thread whatever its count: a BLAS built with another threshold fails here.
    rng = np.random.default_rng(1)
    controller = ThreadpoolController().select(user_api="blas")
    found = blas_threads_now()
    for m, n in [(128, 300), (128, 30), (10, 1000), (1000, 16), (64, 64)]:
        k = ONE_THREAD_MNK // (m * n)
        A, B = rng.random((m, k), dtype=np.float32), rng.standard_normal((k, n)).astype(np.float32)
        outs = []
        for threads in (1, 2):
            controller.limit(limits=threads)
            outs.append(single_call_result(A, B))
        controller.limit(limits=found)
        assert np.array_equal(*outs), (m, k, n)


def single_call_result(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    out = np.empty((A.shape[0], B.shape[1]), np.float32)
    single_call(A, B, out, 1.0, 0.0)
    return out


@needs_two_cores
@pytest.mark.slow
def test_a_seed_gives_the_same_numbers_at_any_thread_count_and_under_load(tmp_path):
    runs = {}
    for name, args in [("1", ["--blas_threads", "1"]), ("2", ["--blas_threads", "2"]), ("auto", []),
                       ("auto, a core busy", [])]:
        helper = busy_core() if "busy" in name else None
        if helper is not None:
            time.sleep(0.3)
        path = tmp_path / f"{len(runs)}.json"
        try:
            result = run_cli("--hidden_size", "128", "--number_epochs", "2", "--seed", "3", "--quiet", *args,
                             "--output", str(path))
        finally:
            if helper is not None:
                helper.kill()
                helper.wait()
        assert result.exit_code == 0, result.stderr
        (run,) = json.loads(path.read_text())["runs"]
        runs[name] = run
    steps = runs["auto, a core busy"]["net_info"]["blas_thread_steps"]
    assert "1" in steps and set(runs["2"]["net_info"]["blas_thread_steps"]) == {"2"}  # the counts really differed
    fields = ("test_loss", "test_accuracy", "train_loss", "train_accuracy")
    first = runs["1"]
    for name, run in runs.items():
        assert [run[f] for f in fields] == [first[f] for f in fields], name
        assert run["history"]["loss"] == first["history"]["loss"], name


# -- every contender's time under load: followed, or marked ------------------------------------------------

def run_under_a_busy_core(tmp_path, *args: str) -> tuple[dict, str]:
    """(the one run's JSON record, stderr) of a short training run while a helper holds a core."""
    needs_a_free_core(others_while_sleeping())
    helper = busy_core()
    time.sleep(0.3)
    path = tmp_path / "run.json"
    try:
        done = subprocess.run([sys.executable, "-m", "mnist_compare", "--hidden_size", "32", "--number_epochs", "2",
                               "--seed", "0", *args, "--output", str(path)], capture_output=True, text=True,
                              timeout=600)
    finally:
        helper.kill()
        helper.wait()
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(path.read_text())["runs"]
    return run, done.stderr


@needs_two_cores
@pytest.mark.parametrize("threads, distorted", [("auto", False), ("2", True)])
def test_a_row_whose_threads_do_not_follow_the_load_is_marked_distorted(tmp_path, threads, distorted):
    run, stderr = run_under_a_busy_core(tmp_path, "--blas_threads", threads)
    print(f"--blas_threads {threads}: others held {run['others_cores']} cores; stderr: {stderr}")
    assert run["others_cores"] > SPARE_CORE_SHARE  # ~1 core beside one BLAS thread, 0.5-0.7 beside two
    assert run["net_info"]["threads_follow_load"] == (threads == "auto")
    assert run["time_distorted"] == distorted and ("distorted by the load" in stderr) == distorted


@needs_two_cores
@pytest.mark.slow
def test_keras_on_pytorch_follows_the_load_with_its_own_threads(tmp_path):
    pytest.importorskip("torch")
    run, stderr = run_under_a_busy_core(tmp_path, "--net_type", "keras", "--keras_backend", "torch")
    changes = run["net_info"]["thread_changes"]
    print(f"keras_net[torch]: thread changes {changes}, others {run['others_cores']}; stderr: {stderr}")
    assert run["net_info"]["threads_follow_load"] and changes and changes[0][1] == 1
    assert not run["time_distorted"] and "distorted" not in stderr
