"""Skipping the input pixels that are zero in a whole batch: exact, not an approximation.

A pixel j that is 0 in all n examples of a batch adds nothing to Z1 = X W1 (0 * W1[j, :] = 0), and its
row of the gradient, dW1[j, :] = X[:, j]^T dZ1, is 0, so plain SGD leaves W1[j, :] as it was. my_net
renumbers the pixels once per fit, the most often non-zero first; a batch then needs only the first k
pixels in that order, k = 1 + the last non-zero pixel of any of its examples, and the two largest
products, X W1 and X^T dZ1, shrink from d to k columns. On MNIST's 60,000 training images at batch 128,
k is 634 of 784 on average (measured): 19% fewer multiply-adds where nearly all of them are. The sums
then run in another order, so the weights differ from the dense loop's by float32 rounding only.

Renumbering copies the training inputs once per fit, which pays only when enough multiply-adds are
saved (SAVED_PER_COPIED). Data with few zero pixels (Fashion-MNIST, about half non-zero) save almost
nothing, and keep the dense loop and its speed.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

CHUNK = 2048  # examples renumbered at a time
SAMPLE = 2048  # examples from which the saving is estimated before anything is copied (~5 ms)
# Renumber when the FLOPs saved over the fit are at least this many times the values copied. Measured
# here: renumbering MNIST's 47 M training values (copy, order, prefixes) takes 0.2 s, about 4 ns a value,
# 700 FLOPs of the products at ~170 GFLOPS; but the shorter products also run less efficiently, and
# bench/ab.py (20 epochs) measured at hidden 128 (ratio 1,960) a steady epoch no faster and a fit 7%
# slower, at 256 (3,920) and 300 (4,590) steady epochs 6% and fits 2% faster. Hence 3,000.
SAVED_PER_COPIED = 3000


def needed_pixels(X: np.ndarray) -> np.ndarray:
    """For each example of X (N, d), 1 + the index of its last non-zero pixel (0 for an all-zero row)."""
    nonzero_from_end = X[:, ::-1] != 0
    return np.where(nonzero_from_end.any(axis=1), X.shape[1] - nonzero_from_end.argmax(axis=1), 0)


def prefaulted_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """np.empty, with its pages mapped in one go where Linux can (MAP_POPULATE): faulting in 188 MB page
    by page took 0.3 s here, populating it 0.05 s (measured)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not hasattr(mmap, "MAP_POPULATE") or nbytes == 0:
        return np.empty(shape, dtype)
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    return np.frombuffer(memory, dtype).reshape(shape)  # the array keeps the mapping alive


def batch_prefixes(needed: np.ndarray, batch_size: int) -> np.ndarray:
    """k of each consecutive batch: the largest `needed` of its examples; needed: (N,) ints."""
    starts = np.arange(0, len(needed), batch_size)
    return np.maximum.reduceat(needed, starts)


def pixel_order(X: np.ndarray) -> np.ndarray:
    """The pixels (d,) ordered by how many examples of X (N, d) have them non-zero, most first."""
    return np.argsort(-np.count_nonzero(X, axis=0), kind="stable")


def worth_renumbering(X: np.ndarray, hidden_size: int, batch_size: int, number_epochs: int) -> bool:
    """Whether renumbering X (N, d) saves more than it costs over the fit, estimated on its first examples.

    Saved: 2 products x 2 FLOPs x (d - mean k) x hidden_size per example and epoch; cost: N d copied values.
    """
    sample = X[:SAMPLE]
    d = X.shape[1]
    if len(sample) < batch_size or d < 2:
        return False
    ordered = np.take(sample, pixel_order(sample), axis=1)
    mean_k = batch_prefixes(needed_pixels(ordered), batch_size).mean()
    saved_per_example = 4 * hidden_size * (d - mean_k) * number_epochs
    return saved_per_example >= SAVED_PER_COPIED * d


class RenumberedPixels:
    """The training inputs X (N, d) with their pixels renumbered, most often non-zero first."""

    def __init__(self, X: np.ndarray):
        self.order = pixel_order(X)  # (d,): new pixel i is old pixel order[i]
        self.X = prefaulted_empty(X.shape, X.dtype)  # (N, d)
        self.needed = np.empty(len(X), np.intp)  # (N,): example i needs the first needed[i] renumbered pixels
        for start in range(0, len(X), CHUNK):  # in chunks: no temporaries as large as X, each chunk in cache
            chunk = np.take(X[start:start + CHUNK], self.order, axis=1, out=self.X[start:start + CHUNK])
            self.needed[start:start + CHUNK] = needed_pixels(chunk)
        self.used, self.offered = 0, 0  # pixel values multiplied, and those a dense loop would have

    def prefix_length(self, batch: np.ndarray) -> int:
        """k: how many renumbered pixels the examples `batch` (n,) need (at least 1, for a valid product)."""
        k = max(int(self.needed[batch].max()), 1)
        self.used += k * len(batch)
        self.offered += self.X.shape[1] * len(batch)
        return k

    @property
    def share_used(self) -> float:
        """The fraction of the dense loop's first-layer multiply-adds that were done."""
        return self.used / self.offered if self.offered else 1.0

    @contextmanager
    def weights_renumbered(self, params: dict[str, np.ndarray]) -> Iterator[None]:
        """params["W1"] (d, h) with its rows in the renumbered order while inside, in the original after."""
        original = params["W1"]
        params["W1"] = np.take(original, self.order, axis=0)
        try:
            yield
        finally:
            original[self.order] = params["W1"]
            params["W1"] = original
