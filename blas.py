"""my_net's BLAS: every product through scipy's gemm, and how many threads it should use, measured.

OpenBLAS splits every product evenly over its threads; with one of two cores busy with another process the
half on the busy core decides, and my_net runs 3x slower than with one thread (measured: hidden 256, 3 epochs,
0.95 s quiet, 3.17 s under `yes > /dev/null` with 2 threads, 1.54 s with 1). So at the start of every epoch
ThreadChooser ("auto") times a few real training steps with each candidate count, alternating, and keeps
the faster for the rest of the epoch: a change in the machine's load is noticed within an epoch. The probe
steps are ordinary steps of the epoch. OpenBLAS rounds differently with one thread and with several (measured:
weights 1.5e-7 apart after one epoch on 12,800 images), so "auto" trades the bit-for-bit repeatability of a
seed for speed under load, and it is not the default: "all" keeps the count BLAS was given, and a number fixes
it.
"""

from __future__ import annotations

import os
import statistics

import numpy as np
from scipy.linalg.blas import dgemm, sgemm

BLAS_GEMM = {np.dtype(np.float32): sgemm, np.dtype(np.float64): dgemm}
PROBE_GROUPS, PROBE_STEPS = 4, 4  # per epoch: 4 alternating groups of 4 steps (16 of 469 at batch 128)


def gemm(A: np.ndarray, B: np.ndarray, out: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """out <- alpha A B + beta out, in place. A: (m, k), B: (k, n), out: (m, n) contiguous, all float32
    (or all float64). A and B may be transposed views; other layouts are copied first.

    Every product in my_net goes through here, to scipy's BLAS: numpy's matmul cannot accumulate into
    its output (beta = 1, the fused SGD step), and two BLAS libraries' thread pools taking turns in one
    loop fight over the cores (measured 40x slower at hidden 30).
    """
    if out.flags.f_contiguous and not out.flags.c_contiguous:  # a column-major out: out^T = B^T A^T
        gemm(B.T, A.T, out.T, alpha, beta)
        return out
    if not out.flags.c_contiguous:
        raise ValueError("gemm writes in place: out must be contiguous")
    # BLAS is column-major and sees a C-contiguous array as its transpose, so it computes out^T = B^T A^T.
    b, trans_b = (B.T, False) if B.flags.c_contiguous else (B, True)
    a, trans_a = (A.T, False) if A.flags.c_contiguous else (A, True)
    BLAS_GEMM[out.dtype](alpha, b, a, beta, out.T, trans_a=trans_b, trans_b=trans_a, overwrite_c=True)
    return out


class ThreadChooser:
    """Chooses the BLAS thread count per epoch from the measured times of the epoch's first steps."""

    def __init__(self, fixed: str | None = None):
        """fixed: None to choose ("auto"), "all" to keep BLAS's count, or a number of threads."""
        from threadpoolctl import ThreadpoolController

        self.blas = ThreadpoolController().select(user_api="blas")
        self.found = max((info["num_threads"] for info in self.blas.info()), default=os.cpu_count() or 1)
        if fixed is None:
            self.candidates = sorted({self.found, 1}, reverse=True)  # what BLAS was given (all cores), and 1
        else:
            self.candidates = [self.found if fixed == "all" else int(fixed)]
            if self.candidates != [self.found]:
                self.limit(self.candidates[0])
        self.times: dict[int, list[float]] = {}
        self.history: list[int] = []  # the count chosen in each epoch, for the record

    def before_step(self, index: int) -> None:
        """Set the thread count for step `index` of the epoch: probe groups first, then the chosen count."""
        if len(self.candidates) == 1:
            return
        probing = index < PROBE_GROUPS * PROBE_STEPS
        if index == 0:
            self.times = {n: [] for n in self.candidates}
        if probing and index % PROBE_STEPS == 0:
            self.limit(self.candidates[(index // PROBE_STEPS) % len(self.candidates)])
        elif index == PROBE_GROUPS * PROBE_STEPS:
            self.chosen = min(self.candidates, key=lambda n: statistics.median(self.times[n]))
            self.history.append(self.chosen)
            self.limit(self.chosen)

    def after_step(self, index: int, seconds: float) -> None:
        if len(self.candidates) > 1 and index < PROBE_GROUPS * PROBE_STEPS:
            self.times[self.candidates[(index // PROBE_STEPS) % len(self.candidates)]].append(seconds)

    def limit(self, threads: int) -> None:
        self.blas.limit(limits=threads)

    def __enter__(self) -> ThreadChooser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Back to the thread count the loop found BLAS with."""
        if self.candidates != [self.found]:
            self.limit(self.found)
