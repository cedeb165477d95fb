"""--blas_threads: BLAS gets one thread fewer while another process holds a core, and all of them back after.

Real processes keep a core busy; nothing is simulated but the absence of /proc/stat (a machine without it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from mnist_compare.nets import blas, my_net

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
    assert blas.threads_for(others, most) == threads


@needs_two_cores
def test_cpu_load_counts_another_process_and_not_this_one():
    load = blas.CpuLoad()
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
    print(f"others' cores: {alone:.2f} while only this process ran, {loaded:.2f} with a busy helper")
    assert alone < 0.6 and 0.6 < loaded < 1.4


def fit_under(helper: subprocess.Popen | None, epochs: int, blas_threads: str = "auto",
              hidden: int = 128) -> my_net.NeuralNetwork:
    X = np.random.default_rng(0).random((20_000, 784), dtype=np.float32)  # dense: no pixels to skip
    y = np.arange(20_000) % 10
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
    helper = busy_core()
    time.sleep(0.3)
    net = fit_under(helper, 8)  # ~2 s
    steps, changes = net.describe()["blas_thread_steps"], net.describe()["blas_thread_changes"]
    print(f"steps per thread count {steps}, changes {changes}")
    assert steps.get(1, 0) > 0.85 * sum(steps.values())  # all but those of the first reading's 0.1 s
    assert changes[0][1] == 1 and changes[0][2] > 0.4  # [seconds into the fit, threads, others' cores]
    assert blas_threads_now() == found  # the count BLAS had is restored after the fit


@needs_two_cores
def test_auto_gives_the_threads_back_when_the_other_process_ends():
    helper = busy_core(after_s=0.0, for_s=1.5)
    time.sleep(0.3)
    start = time.perf_counter()
    net = fit_under(helper, 12)  # ~3 s: the helper ends halfway
    changes = net.describe()["blas_thread_changes"]
    print(f"changes {changes} over {time.perf_counter() - start:.1f} s")
    assert [threads for _, threads, _ in changes][:2] == [1, blas_threads_now()]


def test_a_fixed_count_is_used_for_every_step_and_undone_after():
    found = blas_threads_now()
    net = fit_under(None, 1, blas_threads="1", hidden=16)
    assert net.describe()["blas_thread_steps"] == {1: 157} and net.describe()["blas_thread_changes"] == []
    assert blas_threads_now() == found


def test_without_proc_stat_auto_keeps_blas_s_own_count(monkeypatch):
    monkeypatch.setattr(blas.CpuLoad, "STAT", "/nonexistent/stat")
    found = blas_threads_now()
    net = fit_under(None, 2, hidden=16)
    assert net.describe()["blas_thread_steps"] == {found: 314} and net.describe()["blas_thread_changes"] == []
