"""The buffers my_net's training steps work in: allocated once per fit, reused by every step.

Shapes: n examples in a batch (at most), d inputs, h hidden units, c classes.
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Buffers for batches of up to n examples, allocated once per fit and reused by every step."""

    def __init__(self, n: int, params: dict[str, np.ndarray]):
        d, h = params["W1"].shape
        c = params["W2"].shape[1]
        dtype = params["W1"].dtype  # float32 in training; float64 in the finite-difference tests
        self.X = np.empty((n, d), dtype)
        self.codes = np.empty((n, d), np.uint8)  # a batch's rows of pixels.py's byte codes
        self.X_prefix = np.empty(n * d, dtype)  # see prefix_buffer()
        self.H = np.empty((n, h), dtype)
        self.relu_mask = np.empty((n, h), dtype)  # [Z1 > 0] as 0.0 / 1.0
        self.Z2_columns = np.empty(c * n, dtype)  # see logits_buffer()
        self.ones = np.ones((1, n), dtype)  # 1^T dZ sums over the batch: the bias gradient as a GEMM
        self.dZ1 = np.empty((n, h), dtype)
        self.grads = {name: np.empty_like(p) for name, p in params.items()}

    def gather(self, X: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """The examples `batch` (n,) of X (N, d), gathered into the buffer (n, d)."""
        return np.take(X, batch, axis=0, out=self.X[:len(batch)], mode="clip")  # "clip": no extra copy

    def prefix_buffer(self, n: int, k: int) -> np.ndarray:
        """A contiguous (n, k) buffer, k <= d, for a batch's first k pixels (pixels.py), as BLAS needs them."""
        return self.X_prefix[:n * k].reshape(n, k)

    def logits_buffer(self, n: int) -> np.ndarray:
        """A buffer for the logits Z2 (n, c) of n <= self.X.shape[0] examples, column-major: softmax's
        reductions over the classes then run along contiguous memory (30% faster at n = 128)."""
        c = len(self.grads["b2"])
        return self.Z2_columns[:c * n].reshape(c, n).T
