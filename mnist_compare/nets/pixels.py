"""Skipping the input pixels that are zero in a whole batch: exact, not an approximation.

A pixel j that is 0 in all n examples of a batch adds nothing to Z1 = X W1 (0 * W1[j, :] = 0), and its
row of the gradient, dW1[j, :] = X[:, j]^T dZ1, is 0, so plain SGD leaves W1[j, :] as it was. my_net
renumbers the pixels once per fit, the most often non-zero first; a batch then needs only the first k
pixels in that order, k = 1 + the last non-zero pixel of any of its examples, and the two largest
products, X W1 and X^T dZ1, shrink from d to k columns. On MNIST's 60,000 training images at batch 128,
k is 634 of 784 on average (measured): 19% fewer multiply-adds where nearly all of them are. The sums
then run in another order, so the weights differ from the dense loop's by float32 rounding only.

The renumbered copy is kept as bytes when the inputs are 8-bit values / 255, as MNIST's are: a batch
then gathers a quarter of the memory and is decoded to the same float32 values, bit for bit. Making the
copy once per fit pays only when the fit is long enough (worth_renumbering). Data with few zero pixels
(Fashion-MNIST, about half non-zero) save almost nothing, and keep the dense loop and its speed.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from mnist_compare.nets.workspace import Workspace

BYTE_SCALE = 255  # 8-bit images scaled to [0, 1]: read_mnist's, and Keras' examples'
CHUNK = 2048  # examples renumbered at a time
SAMPLE = 2048  # examples from which the saving is estimated before anything is copied (~5 ms)
# What renumbering costs once per fit and saves each epoch, per training value, in FLOPs of the products
# (~170 GFLOPS here); measured with bench/ab.py on MNIST. Kept as bytes: 0.134 s for 47 M values (~500),
# and a batch's gather plus decoding is ~0.2 ns a value faster than gathering floats (~30 each epoch).
# Kept as floats (inputs that are not bytes / 255): 0.2 s, and the gather is no faster. A skipped pixel
# saves 4 h FLOPs per example, of which about half shows in the time (shorter products run less
# efficiently): at hidden 128, 85 predicted and 101 measured per value and epoch.
ONCE_AND_EACH_EPOCH = {"bytes": (500, 30), "floats": (1500, 0)}


def needed_pixels(X: np.ndarray) -> np.ndarray:
    """For each example of X (N, d), 1 + the index of its last non-zero pixel (0 for an all-zero row)."""
    nonzero = X != 0
    from_end = nonzero[:, ::-1].argmax(axis=1)  # 0 also for an all-zero row: told apart below
    last = X.shape[1] - 1 - from_end
    return np.where(nonzero[np.arange(len(X)), last], last + 1, 0)


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


def pixel_order(X: np.ndarray, pool: Executor | None = None) -> np.ndarray:
    """The pixels (d,) ordered by how many examples of X (N, d) have them non-zero, most first; counted in
    chunks, on the pool's threads when given."""
    def count(start: int) -> np.ndarray:
        return (X[start:start + CHUNK] != 0).sum(axis=0, dtype=np.intp)  # 2x count_nonzero's speed

    counts = sum((pool.map if pool else map)(count, range(0, len(X), CHUNK)), np.zeros(X.shape[1], np.intp))
    return np.argsort(-counts, kind="stable")


def worth_renumbering(X: np.ndarray, hidden_size: int, batch_size: int, number_epochs: int) -> bool:
    """Whether renumbering X (N, d) saves more than it costs over the fit, estimated on its first examples.

    Saved per value and epoch: 2 h (d - mean k) / d for the pixels skipped, plus the cheaper gather of
    bytes; cost: once per value (ONCE_AND_EACH_EPOCH, in FLOPs).
    """
    sample = X[:SAMPLE]
    d = X.shape[1]
    if len(sample) < batch_size or d < 2:
        return False
    ordered = np.take(sample, pixel_order(sample), axis=1)
    mean_k = batch_prefixes(needed_pixels(ordered), batch_size).mean()
    kept_as = "bytes" if sample.dtype == np.float32 and to_bytes(
        sample, np.empty(sample.shape, np.uint8), np.empty_like(sample)) else "floats"
    once, each_epoch = ONCE_AND_EACH_EPOCH[kept_as]
    return number_epochs * (2 * hidden_size * (d - mean_k) / d + each_epoch) >= once


def to_bytes(X: np.ndarray, codes: np.ndarray, scratch: np.ndarray) -> bool:
    """codes <- round(255 X), X: (n, d) float32, codes: (n, d) uint8, scratch: (n, d) float32. Returns
    whether decode(codes) == X exactly: False when X holds any value that is not an 8-bit value / 255
    (NaN, negative, above 1, or between two such values)."""
    np.rint(np.multiply(X, np.float32(BYTE_SCALE), out=scratch), out=scratch)
    with np.errstate(invalid="ignore"):  # NaN or out of range gives some byte: the check below refuses it
        codes[...] = scratch
    return np.array_equal(decode(codes, scratch), X)


def decode(codes: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out <- codes / 255 (float32 division of the exact integers: read_mnist's scaling, bit for bit)."""
    return np.divide(codes, np.float32(BYTE_SCALE), out=out, dtype=np.float32)


def renumbered_codes(X: np.ndarray, order: np.ndarray, pool: Executor) -> np.ndarray | None:
    """The bytes of X (N, d) float32 (to_bytes) with the pixels in `order` (d,), or None when a chunk of X
    is not bytes / 255 (or X is not float32). Chunks run on the pool's threads."""
    if X.dtype != np.float32:
        return None
    codes = prefaulted_empty(X.shape, np.uint8)

    def renumber(start: int) -> bool:
        chunk = X[start:start + CHUNK]  # in chunks: no temporaries as large as X, each chunk in cache
        chunk_codes = np.empty(chunk.shape, np.uint8)
        if not to_bytes(chunk, chunk_codes, np.empty_like(chunk)):
            return False
        np.take(chunk_codes, order, axis=1, out=codes[start:start + len(chunk)])  # bytes: 3x faster than floats
        return True

    return codes if all(pool.map(renumber, range(0, len(X), CHUNK))) else None


def renumbered_floats(X: np.ndarray, order: np.ndarray, pool: Executor) -> np.ndarray:
    """X (N, d) with its pixels in `order` (d,): a copy, made in chunks on the pool's threads."""
    renumbered = prefaulted_empty(X.shape, X.dtype)
    list(pool.map(lambda start: np.take(X[start:start + CHUNK], order, axis=1, out=renumbered[start:start + CHUNK]),
                  range(0, len(X), CHUNK)))
    return renumbered


class RenumberedPixels:
    """The training inputs X (N, d) with their pixels renumbered, most often non-zero first: as bytes when
    X holds 8-bit images scaled to [0, 1] (read back exactly, see to_bytes), else as a float copy."""

    def __init__(self, X: np.ndarray):
        # NumPy lets go of the GIL in these loops, so chunks run on every core: 0.11 s instead of 0.15
        with ThreadPoolExecutor(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1) as pool:
            self.order = pixel_order(X, pool)  # (d,): new pixel i is old pixel order[i]
            self.codes = renumbered_codes(X, self.order, pool)  # (N, d) uint8, or None
            self.X = renumbered_floats(X, self.order, pool) if self.codes is None else None  # (N, d), or None
            stored = self.X if self.codes is None else self.codes
            chunks = pool.map(lambda start: needed_pixels(stored[start:start + CHUNK]), range(0, len(X), CHUNK))
            self.needed = np.concatenate([np.zeros(0, np.intp), *chunks])  # (N,): example i needs needed[i] pixels
        self.used, self.offered = 0, 0  # pixel values multiplied, and those a dense loop would have

    def batch_inputs(self, batch: np.ndarray, ws: Workspace, k: int | None = None) -> np.ndarray:
        """The examples `batch` (n,) as a contiguous (n, k) array of their first k renumbered pixels (the
        values of X), in the workspace's buffers; k: prefix_length(batch), or as epoch_prefixes gave it."""
        n = len(batch)
        if k is None:
            k = self.prefix_length(batch)
        else:
            self.count(n, k)
        prefix = ws.prefix_buffer(n, k)
        if self.codes is not None:
            rows = np.take(self.codes, batch, axis=0, out=ws.codes[:n], mode="clip")  # "clip": no extra copy
            return decode(rows[:, :k], prefix)
        prefix[...] = ws.gather(self.X, batch)[:, :k]
        return prefix

    def prefix_length(self, batch: np.ndarray) -> int:
        """k: how many renumbered pixels the examples `batch` (n,) need (at least 1, for a valid product)."""
        k = max(int(self.needed[batch].max()), 1)
        self.count(len(batch), k)
        return k

    def epoch_prefixes(self, order: np.ndarray, batch_size: int) -> list[int]:
        """prefix_length of every batch of an epoch in `order` (N,), batch_size examples each (the last one
        shorter): one pass for the epoch instead of one NumPy call per batch (~3 us a step)."""
        return np.maximum(batch_prefixes(self.needed[order], batch_size), 1).tolist()

    def count(self, n: int, k: int) -> None:
        """Add a batch of n examples that multiplied k pixels to the first-layer work done (share_used)."""
        self.used += k * n
        self.offered += len(self.order) * n

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
