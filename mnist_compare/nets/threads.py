"""How many threads my_net's products may use, following the machine's load (--blas_threads auto).

OpenBLAS splits a product evenly over its threads; with one of two cores busy with another process the
half on the busy core decides, and my_net runs 2-3x slower than with one thread (measured: hidden 300, 0.70 s
an epoch with one thread under `yes > /dev/null`, 1.4-1.8 s with two). So with --blas_threads auto,
ThreadChooser watches how much CPU time other processes take (CpuLoad, from /proc/stat) every quarter of a
second of training and gives BLAS one thread fewer for each core they hold: a change in the machine's load is
acted on within half a second, at no cost to the steps. Timing a few steps with each count, which this module
did first, chose wrong under load: a thread that has slept gets the busy core first when it wakes (the
scheduler's credit for sleepers), so a short probe with two threads looked fast and the rest of the epoch
was slow (measured: two threads chosen in 5 of 5 epochs at hidden 300 under a busy core).

The count changes only who computes which block of a product, never its bits (blas.py). The same chooser
governs PyTorch's intra-op threads for keras_net[torch] (keras_backends.TorchPool); TensorFlow and XLA fix
theirs when they start, so their rows are marked instead when other processes held a core while they
trained (runs/runner.py).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

LOAD_WINDOW_S = 0.25  # how often the load is read: /proc/stat counts in 10 ms ticks, 50 ticks a window on 2 cores
FIRST_WINDOW_S = 0.1  # the first reading comes sooner: a core held from the start costs the most
SPARE_CORE_SHARE = 0.4  # others may take this much of a core before BLAS gives up a thread


class CpuLoad:
    """How many cores other processes kept busy since the last reading (Linux; None elsewhere)."""

    STAT = "/proc/stat"

    def __init__(self):
        self.ticks_per_s = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self.read()

    def read(self) -> tuple[float, float, float] | None:
        """(wall s, CPU s all processes were busy, CPU s this process used), or None without /proc/stat.

        Busy is user + nice + system + irq + softirq + steal: the hypervisor's steal is a core taken too."""
        try:
            with open(self.STAT) as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
        busy = (user + nice + system + irq + softirq + steal) / self.ticks_per_s
        return time.perf_counter(), busy, time.process_time()

    def others(self) -> float | None:
        """Cores other processes used since the last call (>= 0), or None when it cannot be read."""
        now = self.read()
        if now is None or self.last is None:
            return None
        (wall0, busy0, own0), (wall1, busy1, own1) = self.last, now
        self.last = now
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / max(wall1 - wall0, 1e-9)


def threads_for(others: float, most: int) -> int:
    """BLAS threads when other processes keep `others` cores busy: one fewer for each core they hold,
    counting a core from SPARE_CORE_SHARE of it on, and at least 1; most: the count BLAS was given."""
    return max(1, min(most, most - math.ceil(others - SPARE_CORE_SHARE)))


class BlasPool:
    """The BLAS libraries' threads (threadpoolctl): how many they have, and a way to set that."""

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        self.blas = ThreadpoolController().select(user_api="blas")
        self.found = max((info["num_threads"] for info in self.blas.info()), default=os.cpu_count() or 1)

    def limit(self, threads: int) -> None:
        self.blas.limit(limits=threads)


class ThreadChooser:
    """A thread pool's count for a fit (BLAS's by default): fixed, or ("auto") following the machine's load."""

    def __init__(self, fixed: str | None = None, pool: Any = None):
        """fixed: None to choose ("auto"), "all" to keep the pool's count, or a number of threads; pool: what
        has `found` (its thread count) and `limit(threads)`, BlasPool by default."""
        self.pool = pool or BlasPool()
        self.found = self.pool.found
        self.choosing = fixed is None
        self.threads = self.found if fixed in (None, "all") else int(fixed)
        if self.threads != self.found:
            self.limit(self.threads)
        self.load = CpuLoad() if self.choosing else None
        self.next_reading = time.perf_counter() + FIRST_WINDOW_S
        self.history: list[list[float]] = []  # [seconds into the fit, threads, others' cores] at each change
        self.started = time.perf_counter()
        self.steps = {}  # threads -> steps trained with that many

    def after_step(self) -> None:
        """Count the step; every LOAD_WINDOW_S, read the load and set the thread count it calls for."""
        self.steps[self.threads] = self.steps.get(self.threads, 0) + 1
        if not self.choosing or time.perf_counter() < self.next_reading:
            return
        others = self.load.others()
        self.next_reading = time.perf_counter() + LOAD_WINDOW_S
        if others is None:  # no /proc/stat: keep BLAS's count
            self.choosing = False
            return
        threads = threads_for(others, self.found)
        if threads != self.threads:
            self.limit(threads)
            self.history.append([round(time.perf_counter() - self.started, 2), threads, round(others, 2)])

    def limit(self, threads: int) -> None:
        self.pool.limit(threads)
        self.threads = threads

    @property
    def follows_load(self) -> bool:
        """True when the count followed the load for the whole fit ("auto", with /proc/stat to read)."""
        return self.load is not None and self.choosing

    def __enter__(self) -> ThreadChooser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Back to the thread count the loop found BLAS with."""
        if self.threads != self.found:
            self.limit(self.found)
