"""The hand-written two-layer network: NumPy only, float32, minibatch training.

    Z1 = X W1 + b1     H = relu(Z1)     Z2 = H W2 + b2     P = softmax(Z2)
    L  = -(1/n) sum_i log P[i, y_i]                                (mean cross-entropy)

    dZ2 = (P - Y) / n     dW2 = H^T dZ2     db2 = sum_i dZ2
    dZ1 = (dZ2 W2^T) * [Z1 > 0]     dW1 = X^T dZ1     db1 = sum_i dZ1

Shapes: n examples in a batch, d inputs (784), h hidden units, c classes (10).
Not for: loading data (data/idx.py) or rendering results (report.py). Never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import overload

import numpy as np

from mnist_compare.nets.blas import gemm, openblas
from mnist_compare.nets.optimizers import SGD, initial_weights, make_optimizer
from mnist_compare.nets.pixels import RenumberedPixels, worth_renumbering
from mnist_compare.nets.threads import ThreadChooser
from mnist_compare.nets.workspace import Workspace
from mnist_compare.records.results import EpochCallback, TrainingDiverged
from mnist_compare.records.spec import DEFAULT_OPTIMIZER, EVAL_CHUNK, NUM_CLASSES, PARAMETER_NAMES, OptimizerSettings


def labels_of(Y: np.ndarray) -> np.ndarray:
    """Integer labels (n,) from one-hot rows (n, c) or from labels (n,)."""
    return Y.argmax(axis=1) if Y.ndim == 2 else Y.astype(np.intp, copy=False)


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise log softmax of logits Z (n, c), shifted by the row maximum so no exp overflows."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class NeuralNetwork:
    """784 -> hidden (ReLU) -> 10 (softmax), trained by minibatch SGD (or momentum, Adam).

    Implements contract.TrainableNet: train_on_batch, predict, get/set_weights, and its own fused
    epoch loop (fit) and chunked evaluation (evaluate).
    """

    name = "my_net"
    skip_zero_pixels = True  # in plain SGD fits where it pays (pixels.py); exact up to float32 rounding

    def __init__(self, input_size: int = 784, hidden_size: int = 30, output_size: int = NUM_CLASSES,
                 lr: float = 0.1, seed: int | None = None, optimizer: OptimizerSettings = DEFAULT_OPTIMIZER,
                 init: str = "glorot_uniform", blas_threads: str = "auto"):
        self.sizes = (input_size, hidden_size, output_size)
        self.blas_threads = blas_threads  # "auto": following the load (blas.py); "all": BLAS's own count
        self.rng = np.random.default_rng(seed)  # draws the weights, then (unpaired) every epoch's order
        self.params = dict(zip(PARAMETER_NAMES, initial_weights(self.rng, self.sizes, init), strict=True))
        self.optimizer = make_optimizer(optimizer, lr)
        self.workspace: Workspace | None = None  # train_on_batch's buffers, grown as batches need
        self.threads: ThreadChooser | None = None  # fit's, with --blas_threads auto or N
        self.pixels: RenumberedPixels | None = None  # fit's, when it skips zero pixels

    # -- the mathematics -------------------------------------------------------------------------

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Z2 (n, c) float32 for inputs X (n, d) float32."""
        h, c = self.params["W2"].shape
        dtype = self.params["W1"].dtype
        n, d = X.shape
        if d != self.sizes[0]:
            raise ValueError(f"inputs have {d} columns, the network {self.sizes[0]}")
        return self.forward_into(X, np.empty((n, h), dtype), np.empty((n, c), dtype), np.empty((n, h), dtype))[1]

    def forward_into(self, X: np.ndarray, H: np.ndarray, Z2: np.ndarray,
                     relu_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H (n, h) and Z2 (n, c) of X (n, k), written into the given buffers H and Z2; relu_mask (n, h)
        gets [Z1 > 0], which the backward pass needs. k < d: X holds the first k renumbered pixels of a
        batch that needs no more (pixels.py), and W1's first k rows are used."""
        H[...] = self.params["b1"]  # the bias is the GEMM's starting value (beta = 1): no pass over H after it
        gemm(X, self.params["W1"][:X.shape[1]], H, beta=1.0)
        # relu in place: 2x faster than np.maximum at hidden 300; the mask as 0.0 / 1.0, so that hidden_delta's
        # product with it needs no cast from bool (2.4x faster, the same bits)
        H *= np.greater(H, 0, out=relu_mask)
        Z2[...] = self.params["b2"]
        gemm(H, self.params["W2"], Z2, beta=1.0)
        return H, Z2

    def forward_batch(self, X: np.ndarray, ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
        """H (n, h) and Z2 (n, c) of the batch X (n, d) in the workspace's buffers, which also keep
        [Z1 > 0] for hidden_delta."""
        n = len(X)
        return self.forward_into(X, ws.H[:n], ws.logits_buffer(n), ws.relu_mask[:n])

    @staticmethod
    def softmax_cross_entropy(Z2: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Turn logits Z2 (n, c) into P = softmax(Z2) in place; return (sum of losses, correct count).

        The loss of row i is log sum_j exp(Z2[i, j] - m_i) - (Z2[i, y_i] - m_i), m_i the row maximum.
        """
        rows = np.arange(len(y))
        correct = int(np.count_nonzero(Z2.argmax(axis=1) == y))
        Z2 -= Z2.max(axis=1, keepdims=True)
        target_logits = Z2[rows, y]
        P = np.exp(Z2, out=Z2)
        row_sums = P.sum(axis=1, keepdims=True)
        loss_sum = float(np.log(row_sums).sum() - target_logits.sum(dtype=np.float64))
        P /= row_sums
        return loss_sum, correct

    @staticmethod
    def output_delta(P: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dZ2 = (P - Y) / n (n, c), written over P (n, c); y: (n,) labels.

        The mean is over this batch's own size n, also for a short last batch.
        """
        n = len(y)
        P[np.arange(n), y] -= 1.0
        P /= np.float32(n)
        return P

    def hidden_delta(self, dZ2: np.ndarray, ws: Workspace) -> np.ndarray:
        """dZ1 = (dZ2 W2^T) * [Z1 > 0] (n, h), in the workspace; dZ2: (n, c).

        [Z1 > 0] is the workspace's relu_mask, as forward_batch left it for this batch."""
        n = len(dZ2)
        W2_T = np.ascontiguousarray(self.params["W2"].T)  # BLAS's small product is ~25% faster on a copy
        dZ1 = gemm(dZ2, W2_T, ws.dZ1[:n])
        dZ1 *= ws.relu_mask[:n]
        return dZ1

    def backward(self, X: np.ndarray, y: np.ndarray, H: np.ndarray, P: np.ndarray,
                 ws: Workspace) -> dict[str, np.ndarray]:
        """Gradients of the mean cross-entropy for X (n, d), labels y (n,), H (n, h), P (n, c).

        Overwrites P with dZ2. Returns dW1 (d, h), db1 (h,), dW2 (h, c), db2 (c,) float32,
        views of the workspace's gradient buffers.
        """
        g = ws.grads
        dZ2 = self.output_delta(P, y)
        gemm(H.T, dZ2, g["W2"])
        np.sum(dZ2, axis=0, out=g["b2"])
        dZ1 = self.hidden_delta(dZ2, ws)
        gemm(X.T, dZ1, g["W1"])
        np.sum(dZ1, axis=0, out=g["b1"])
        return g

    def sgd_step(self, X: np.ndarray, y: np.ndarray, H: np.ndarray, P: np.ndarray, ws: Workspace) -> None:
        """Plain SGD, W <- W - lr dW, for X (n, k), y (n,), H (n, h), P (n, c) (overwritten); k < d as in
        forward_into (the other rows of dW1 are 0).

        The same gradients as backward(), but each weight gradient is accumulated straight into its
        weights by the GEMM (BLAS's beta = 1): one pass over W1 per step instead of three (write dW1,
        scale it, subtract it).
        """
        W1, b1, W2, b2 = (self.params[k] for k in PARAMETER_NAMES)
        lr = self.optimizer.lr
        dZ2 = self.output_delta(P, y)
        dZ1 = self.hidden_delta(dZ2, ws)  # before W2 changes: it needs the W2 of the forward pass
        ones = ws.ones[:, :len(y)]
        gemm(H.T, dZ2, W2, alpha=-lr, beta=1.0)
        gemm(ones, dZ2, b2[np.newaxis], alpha=-lr, beta=1.0)
        gemm(X.T, dZ1, W1[:X.shape[1]], alpha=-lr, beta=1.0)
        gemm(ones, dZ1, b1[np.newaxis], alpha=-lr, beta=1.0)

    def gradients(self, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the mean cross-entropy over the batch X (n, d), Y (n, c) or (n,), as copies."""
        y = labels_of(Y)
        ws = Workspace(len(X), self.params)
        H, Z2 = self.forward_batch(X, ws)
        self.softmax_cross_entropy(Z2, y)
        return {name: grad.copy() for name, grad in self.backward(X, y, H, Z2, ws).items()}

    def plain_sgd(self) -> bool:
        return isinstance(self.optimizer, SGD) and not self.optimizer.momentum

    def train_step(self, X: np.ndarray, y: np.ndarray, ws: Workspace) -> tuple[float, int]:
        """One optimiser step on the batch X (n, d), y (n,); returns (sum of losses, correct count).
        With plain SGD, X may be (n, k) as in forward_into."""
        H, Z2 = self.forward_batch(X, ws)
        loss_sum, correct = self.softmax_cross_entropy(Z2, y)
        if self.plain_sgd():
            self.sgd_step(X, y, H, Z2, ws)
        else:
            self.optimizer.step(self.params, self.backward(X, y, H, Z2, ws))
        return loss_sum, correct

    # -- training and evaluation -----------------------------------------------------------------

    def train_on_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        """One optimiser step on X (n, d) float32, y (n,) labels; returns the batch's mean cross-entropy
        from this step's forward pass (as Keras' train_on_batch does)."""
        if self.workspace is None or len(self.workspace.X) < len(X):
            self.workspace = Workspace(len(X), self.params)
        loss_sum, _ = self.train_step(np.ascontiguousarray(X, np.float32), labels_of(y), self.workspace)
        return loss_sum / len(X)

    def forward(self, X: np.ndarray) -> np.ndarray:
        """The forward pass: P = softmax(Z2) (n, c) float32 for inputs X (n, d) float32, in chunks."""
        return np.concatenate([np.exp(log_softmax(self.logits(X[start:start + EVAL_CHUNK])))
                               for start in range(0, len(X), EVAL_CHUNK)])

    @overload
    def predict(self, X: np.ndarray) -> np.ndarray: ...

    @overload
    def predict(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]: ...

    def predict(self, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray | tuple[float, float]:
        """With Y (n, c) one-hot or (n,) labels, the original tool's meaning: the forward pass and its
        (mean cross-entropy, accuracy in [0, 1]) on Y. Without Y, Keras' meaning (the net contract's):
        the probabilities P (n, c), as forward(X)."""
        return self.forward(X) if Y is None else self.evaluate(X, Y)

    def evaluate(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy in [0, 1]) over X (n, d), Y (n, c) one-hot or (n,) labels."""
        y = labels_of(Y)
        loss_sum, correct = 0.0, 0
        with np.errstate(all="ignore"):
            for start in range(0, len(X), EVAL_CHUNK):
                Z2 = self.logits(X[start:start + EVAL_CHUNK])
                yc = y[start:start + EVAL_CHUNK]
                correct += int(np.count_nonzero(Z2.argmax(axis=1) == yc))
                loss_sum -= float(log_softmax(Z2)[np.arange(len(yc)), yc].sum(dtype=np.float64))
        return loss_sum / len(X), correct / len(X)

    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int, ws: Workspace,
                    threads: ThreadChooser | None = None,
                    pixels: RenumberedPixels | None = None) -> tuple[float, float]:
        """One pass over X (N, d), y (N,) in the order of `order` (N,); returns (mean loss, accuracy).
        With `threads`, the BLAS thread count follows the machine's load (threads.py); with
        `pixels`, X's renumbered copy is used and each batch multiplies only the pixels it needs (W1
        renumbered alike, see fit).

        Stops early, returning a NaN loss, as soon as a batch loss is not finite.
        """
        loss_sum, correct = 0.0, 0
        prefixes = pixels.epoch_prefixes(order, batch_size) if pixels is not None else None
        for i, start in enumerate(range(0, len(order), batch_size)):
            batch = order[start:start + batch_size]
            # Gathered batch by batch into a buffer that stays in cache: a whole permuted copy of X
            # (188 MB) cost more, and its page faults made every fit's first epoch 0.4-1.2 s slower.
            Xb = ws.gather(X, batch) if pixels is None else pixels.batch_inputs(batch, ws, prefixes[i])
            batch_loss, batch_correct = self.train_step(Xb, y[batch], ws)
            if threads is not None:
                threads.after_step()
            if not math.isfinite(batch_loss):
                return math.nan, math.nan
            loss_sum += batch_loss
            correct += batch_correct
        return loss_sum / len(X), correct / len(X)

    def fit(self, X: np.ndarray, Y: np.ndarray, batch_size: int = 128, number_epochs: int = 20,
            rng: np.random.Generator | None = None,
            on_epoch_end: EpochCallback | None = None) -> dict[str, list[float]]:
        """Train on X (N, d) float32, Y (N, c) one-hot or (N,) labels; return the per-epoch history.

        Every epoch draws a fresh permutation from `rng` (default: the net's own generator) and
        visits the batches in that order, the last partial batch included. History keys: loss,
        accuracy (running means over the epoch, as Keras reports them), epoch_time_s. Raises
        TrainingDiverged when a loss or weight becomes non-finite.
        """
        y = labels_of(Y)
        rng = self.rng if rng is None else rng
        ws = Workspace(min(batch_size, len(X)), self.params)
        history: dict[str, list[float]] = {"loss": [], "accuracy": [], "epoch_time_s": []}
        # "all" leaves BLAS alone: no thread pool to look up, nothing to count in the loop
        self.threads = None if self.blas_threads == "all" else ThreadChooser(
            fixed=None if self.blas_threads == "auto" else self.blas_threads)
        self.pixels = RenumberedPixels(X) if self.skip_zero_pixels and self.plain_sgd() and worth_renumbering(
            X, self.sizes[1], batch_size, number_epochs) else None
        with np.errstate(all="ignore"), self.threads or contextlib.nullcontext():  # divergence reported, not warned
            for epoch in range(number_epochs):
                start = time.perf_counter()
                with self.pixels.weights_renumbered(self.params) if self.pixels else contextlib.nullcontext():
                    loss, accuracy = self.train_epoch(X, y, rng.permutation(len(X)), batch_size, ws, self.threads,
                                                      self.pixels)
                if not (math.isfinite(loss) and self.weights_are_finite()):
                    raise TrainingDiverged(epoch + 1)
                logs = {"loss": loss, "accuracy": accuracy, "epoch_time_s": time.perf_counter() - start}
                for name, value in logs.items():
                    history.setdefault(name, []).append(value)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, logs)
        return history

    def describe(self) -> dict:
        """The BLAS every product goes through (scipy's): library, kernel and thread count, and how products are
        cut into blocks whose bits do not depend on the thread count (blas.py). Of the last fit:
        the steps trained with each thread count and when the count changed ([s into the fit, threads, other
        processes' cores]), None with --blas_threads all; the share of the dense first-layer multiply-adds
        it did when it skipped zero pixels (pixels.py), else None."""
        from threadpoolctl import threadpool_info

        scipy_blas = [i for i in threadpool_info() if i.get("user_api") == "blas" and "scipy" in i.get("filepath", "")]
        return {"blas": {key: scipy_blas[0].get(key) for key in ("internal_api", "architecture", "num_threads")}
                if scipy_blas else None,
                "products": "fixed blocks on OpenBLAS's batched GEMM" if openblas().batch is not None
                else "fixed blocks, one after another",  # either way the same bits at any thread count (blas.py)
                "blas_thread_steps": self.threads.steps if self.threads else None,
                "blas_thread_changes": self.threads.history if self.threads else None,
                "threads_follow_load": bool(self.threads and self.threads.follows_load),
                "first_layer_share": round(self.pixels.share_used, 4) if self.pixels else None}

    # -- weights ---------------------------------------------------------------------------------

    def weights_are_finite(self) -> bool:
        return all(np.isfinite(p).all() for p in self.params.values())

    def get_weights(self) -> list[np.ndarray]:
        """[W1 (d, h), b1 (h,), W2 (h, c), b2 (c,)] as copies: the layout of Keras' get_weights()."""
        return [self.params[name].copy() for name in PARAMETER_NAMES]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set [W1, b1, W2, b2] (as from get_weights() or a Keras model), checking their shapes."""
        for name, value in zip(PARAMETER_NAMES, weights, strict=True):
            if value.shape != self.params[name].shape:
                raise ValueError(f"{name}: shape {value.shape} does not match the network's {self.params[name].shape}")
            self.params[name][...] = value

