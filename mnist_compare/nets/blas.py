"""my_net's products, through scipy's BLAS, with bits that do not depend on the thread count or the load.

OpenBLAS rounds a product differently with one and with two threads (measured: on its SkylakeX kernels
every sum longer than 455, on its Haswell kernels sums of 8 already), because each thread count cuts the
product into other pieces. So a seed's results depended on the machine's load under --blas_threads auto.
Here the cut is the product's own: a large product out (m, n) = A (m, k) B (k, n) is split along out's longer
side into PARTS blocks, a function of the shape alone, and the blocks go to OpenBLAS's batched GEMM
(cblas_sgemm_batch), which computes each block with its one-thread routine, on as many threads as it has:
the thread count decides who computes which block, not the bits (OpenBLAS's driver/level3/
gemm_batch_thread.c). A small product runs as one call on one thread. Measured: the same bits with one and two
threads on both kernels; against OpenBLAS's own threading, +4% at hidden 300 and +25 us a step at hidden 30.

Where scipy's BLAS is not an OpenBLAS with the batched GEMM (another BLAS, an old OpenBLAS), the blocks are
computed one after another with single calls: the same property, on one thread.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import threading

import numpy as np
from scipy.linalg.blas import dgemm, sgemm

BLAS_GEMM = {np.dtype(np.float32): sgemm, np.dtype(np.float64): dgemm}
PARTS = max(2, min(8, os.cpu_count() or 2))  # blocks of a large product: one per core (a machine's constant)
# OpenBLAS 0.3.30's batched GEMM crashes on blocks of at most 100^3 multiply-adds when it is built for several
# CPUs (its small-matrix kernels are looked up wrongly); smaller blocks would not be worth a thread anyway.
BATCH_MIN_MNK = 100 ** 3
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS's enums
# OpenBLAS computes a product of at most 65536 * GEMM_MULTITHREAD_THRESHOLD multiply-adds (a build setting, 4 by
# default) on one thread whatever its count (interface/gemm.c): such a product is one plain call. Measured on
# scipy's OpenBLAS, SkylakeX and Haswell kernels: the first product to differ between 1 and 2 threads had
# 307,200 multiply-adds; tests/test_threads.py checks the bound on a grid of shapes.
ONE_THREAD_MNK = 65536 * 4


class OpenBlas:
    """scipy's OpenBLAS, reached through ctypes: its thread count and its batched GEMM (None when absent)."""

    def __init__(self) -> None:
        self.library = find_scipy_openblas()
        self.set_threads = self.get_threads = self.batch = None
        if self.library is not None:
            self.set_threads = symbol(self.library, "openblas_set_num_threads")
            self.get_threads = symbol(self.library, "openblas_get_num_threads")
            self.batch = {np.dtype(np.float32): symbol(self.library, "cblas_sgemm_batch"),
                          np.dtype(np.float64): symbol(self.library, "cblas_dgemm_batch")}
            if None in (self.set_threads, self.get_threads, *self.batch.values()):
                self.batch = None
        self.local = threading.local()  # each thread its own argument arrays (Dask may run two fits at once)

    def call(self, dtype: np.dtype) -> BatchCall:
        calls = getattr(self.local, "calls", None)
        if calls is None:
            calls = self.local.calls = {key: BatchCall(key) for key in BLAS_GEMM}
        return calls[dtype]

    def single_threaded(self, A: np.ndarray, B: np.ndarray, out: np.ndarray, alpha: float, beta: float) -> None:
        """single_call with OpenBLAS on one thread for its duration (three calls of ~0.3 us)."""
        if self.set_threads is None:
            single_call(A, B, out, alpha, beta)
            return
        threads = self.get_threads()
        self.set_threads(1)
        try:
            single_call(A, B, out, alpha, beta)
        finally:
            self.set_threads(threads)


def find_scipy_openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library scipy's BLAS calls go to (threadpoolctl knows its path), or None."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, so that threadpoolctl sees it)
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("internal_api") == "openblas" and "scipy" in info.get("filepath", "").lower():
            if "numpy" in info["filepath"].lower():  # numpy's own OpenBLAS: not the one scipy calls
                continue
            return ctypes.CDLL(info["filepath"])
    return None


def symbol(library: ctypes.CDLL, name: str) -> ctypes._CFuncPtr | None:
    """library's `name`, with or without the scipy_ prefix that scipy's OpenBLAS gives its symbols."""
    for candidate in (f"scipy_{name}", name):
        function = getattr(library, candidate, None)
        if function is not None:
            function.restype = ctypes.c_int if name.endswith("get_num_threads") else None
            return function
    return None


class BatchCall:
    """The argument arrays of one cblas_?gemm_batch call of up to PARTS blocks, one group per block."""

    def __init__(self, dtype: np.dtype):
        ints = ctypes.c_int * PARTS
        scalar = (ctypes.c_float if dtype == np.float32 else ctypes.c_double) * PARTS
        pointers = ctypes.c_void_p * PARTS
        self.trans_a, self.trans_b, self.m, self.n, self.k = ints(), ints(), ints(), ints(), ints()
        self.ld_a, self.ld_b, self.ld_out = ints(), ints(), ints()
        self.alpha, self.beta = scalar(), scalar()
        self.a, self.b, self.out = pointers(), pointers(), pointers()
        self.group_sizes = ints(*[1] * PARTS)

    def __call__(self, function: ctypes._CFuncPtr, A: np.ndarray, B: np.ndarray, out: np.ndarray, parts: int,
                 alpha: float, beta: float) -> None:
        """out <- alpha A B + beta out, cut as cut() cuts it, each block one group of the call; A (m, k),
        B (k, n) with contiguous rows or columns, out (m, n) with contiguous rows.

        Each block's addresses are its operand's plus an offset: NumPy's `.ctypes.data` costs ~1 us an
        array, and slicing views for every block took ~12 us a product (as long as the product at hidden 30)."""
        (m, k), n = A.shape, B.shape[1]
        trans_a, ld_a = row_major(A)
        trans_b, ld_b = row_major(B)
        ld_out = out.strides[0] // out.itemsize
        a, b, c = A.ctypes.data, B.ctypes.data, out.ctypes.data
        along_rows, edges = cut(m, n, parts)
        stride_a, stride_b, stride_c = (A.strides[0], 0, out.strides[0]) if along_rows else (0, B.strides[1],
                                                                                              out.strides[1])
        for i in range(parts):
            start, end = edges[i], edges[i + 1]
            self.trans_a[i], self.trans_b[i], self.k[i] = trans_a, trans_b, k
            self.ld_a[i], self.ld_b[i], self.ld_out[i], self.alpha[i], self.beta[i] = ld_a, ld_b, ld_out, alpha, beta
            self.m[i], self.n[i] = (end - start, n) if along_rows else (m, end - start)
            self.a[i], self.b[i], self.out[i] = a + start * stride_a, b + start * stride_b, c + start * stride_c
        function(ROW_MAJOR, self.trans_a, self.trans_b, self.m, self.n, self.k, self.alpha, self.a, self.ld_a,
                 self.b, self.ld_b, self.beta, self.out, self.ld_out, parts, self.group_sizes)


def row_major(X: np.ndarray) -> tuple[int, int]:
    """(CBLAS transpose flag, leading dimension) of X (r, c) for a row-major call: its rows contiguous (the
    array as stored), or its columns (a transposed view)."""
    rows, columns = X.strides[0] // X.itemsize, X.strides[1] // X.itemsize
    if columns == 1 or X.shape[1] == 1:
        return NO_TRANS, max(rows, X.shape[1], 1)
    if rows == 1 or X.shape[0] == 1:
        return TRANS, max(columns, X.shape[0], 1)
    raise ValueError("gemm needs operands whose rows or columns are contiguous")


def parts_of(A: np.ndarray, B: np.ndarray) -> int:
    """How many blocks A (m, k) B (k, n) is cut into: PARTS, fewer when a block would have at most
    BATCH_MIN_MNK multiply-adds; a function of the shape alone."""
    (m, k), n = A.shape, B.shape[1]
    return max(1, min(PARTS, m * n * k // (BATCH_MIN_MNK + 1), max(m, n)))


@functools.lru_cache(maxsize=4096)  # a fit's products have a few hundred shapes; cached, the cut costs ~0.1 us
def cut(m: int, n: int, parts: int) -> tuple[bool, tuple[int, ...]]:
    """How out (m, n) is cut into `parts` (parts_of) blocks of nearly equal size: along its rows when it has
    at least as many rows as columns (else along its columns), and the edges (parts + 1,) of the blocks."""
    along_rows = m >= n
    length = m if along_rows else n
    return along_rows, tuple(length * i // parts for i in range(parts + 1))


def blocks_of(A: np.ndarray, B: np.ndarray, out: np.ndarray,
              parts: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(A_i, B_i, out_i): out = A B cut as cut() cuts it, as views."""
    along_rows, edges = cut(*out.shape, parts)
    if along_rows:
        return [(A[a:b], B, out[a:b]) for a, b in itertools.pairwise(edges)]
    return [(A, B[:, a:b], out[:, a:b]) for a, b in itertools.pairwise(edges)]


_openblas: OpenBlas | None = None  # found on the first product: one per process, as the library is


def openblas() -> OpenBlas:
    global _openblas
    if _openblas is None:
        _openblas = OpenBlas()
    return _openblas


def gemm(A: np.ndarray, B: np.ndarray, out: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """out <- alpha A B + beta out, in place. A: (m, k), B: (k, n), out: (m, n) contiguous, all float32
    (or all float64). A and B may be transposed views.

    Every product in my_net goes through here, to scipy's BLAS: numpy's matmul cannot accumulate into
    its output (beta = 1, the fused SGD step), and two BLAS libraries' thread pools taking turns in one
    loop fight over the cores (measured 40x slower at hidden 30). The bits depend on the shapes alone.
    """
    if out.flags.f_contiguous and not out.flags.c_contiguous:  # a column-major out: out^T = B^T A^T
        gemm(B.T, A.T, out.T, alpha, beta)
        return out
    if not out.flags.c_contiguous:
        raise ValueError("gemm writes in place: out must be contiguous")
    if A.shape[0] * A.shape[1] * B.shape[1] <= ONE_THREAD_MNK:
        single_call(A, B, out, alpha, beta)
        return out
    blas = openblas()
    parts = parts_of(A, B)
    if parts == 1:
        blas.single_threaded(A, B, out, alpha, beta)
    elif blas.batch is not None:
        blas.call(out.dtype)(blas.batch[out.dtype], A, B, out, parts, alpha, beta)
    else:
        for A_i, B_i, out_i in blocks_of(A, B, out, parts):
            blas.single_threaded(A_i, B_i, out_i, alpha, beta)
    return out


def single_call(A: np.ndarray, B: np.ndarray, out: np.ndarray, alpha: float, beta: float) -> None:
    """One call of scipy's ?gemm, which wants contiguous operands: a block of a product is copied first."""
    if not out.flags.c_contiguous:  # a column block: computed in a contiguous buffer, then written back
        buffer = np.ascontiguousarray(out)
        single_call(A, B, buffer, alpha, beta)
        out[...] = buffer
        return
    # BLAS is column-major and sees a C-contiguous array as its transpose, so it computes out^T = B^T A^T.
    b, trans_b = (B.T, False) if B.flags.c_contiguous else (B, True)
    a, trans_a = (A.T, False) if A.flags.c_contiguous else (A, True)
    BLAS_GEMM[out.dtype](alpha, b, a, beta, out.T, trans_a=trans_b, trans_b=trans_a, overwrite_c=True)
