"""The net contract: what a net implements to be trained, compared and checked (Keras' per-batch API), and
what the runner supplies to a net that implements only that (the epoch loop, evaluation).

    Net(d, h, c, lr, seed): train_on_batch(X, y) -> loss, predict(X) -> P, get_weights(), set_weights(w)

This is the first file a user writing their own network opens. Not for: timing or running (runs/runner.py).
"""

from __future__ import annotations

import inspect
import math
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mnist_compare.nets.optimizers import initial_weights
from mnist_compare.records.results import EpochCallback, TrainingDiverged
from mnist_compare.records.spec import EVAL_CHUNK, NUM_CLASSES, RunSpec

# Passed to a net's constructor when it takes them (my_net and the Keras twin do, a user's net need not).
OPTIONAL_SETTINGS = ("optimizer", "init", "blas_threads", "keras_backend", "steps_per_execution", "jit_compile")
PROBABILITY_FLOOR = 1e-7  # Keras clips probabilities to [eps, 1 - eps] before the log: the same loss here


@runtime_checkable
class Net(Protocol):
    """What a net implements to be trained, compared and checked: Keras' per-batch API.

    Constructed as Net(input_size d, hidden_size h, output_size c, lr, seed). Weights are
    [W1 (d, h), b1 (h,), W2 (h, c), b2 (c,)], Keras' layout.
    """

    def train_on_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        """One optimiser step on X (n, d) float32, y (n,) int labels; the batch's mean cross-entropy
        from this step's forward pass."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, c) softmax probabilities for X (n, d)."""

    def get_weights(self) -> list[np.ndarray]: ...

    def set_weights(self, weights: list[np.ndarray]) -> None: ...


class TrainableNet(Net, Protocol):
    """A Net with its own epoch loop and evaluation (my_net's fused loop, Keras' model.fit)."""

    def fit(self, X: np.ndarray, y: np.ndarray, batch_size: int, number_epochs: int,
            rng: np.random.Generator | None, on_epoch_end: EpochCallback | None) -> Any:
        """Train number_epochs epochs on X (N, d), y (N,): every epoch the batches of a fresh permutation
        (drawn from rng when given), the last partial batch included; on_epoch_end(epoch, logs) after each,
        logs holding loss, accuracy and epoch_time_s. Raises TrainingDiverged on a non-finite loss."""

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy in [0, 1]) over X (n, d), y (n,)."""


class BatchLoop:
    """What the runner supplies to a net that has only Net's four methods: the epoch loop, evaluation."""

    def __init__(self, net: Net, seed: int | None):
        self.net, self.seed = net, seed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.net, name)

    def fit(self, X: np.ndarray, y: np.ndarray, batch_size: int, number_epochs: int,
            rng: np.random.Generator | None, on_epoch_end: EpochCallback | None) -> None:
        """As TrainableNet.fit, by one train_on_batch per batch; loss is the epoch's mean over examples."""
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        for epoch in range(number_epochs):
            start, loss_sum = time.perf_counter(), 0.0
            order = rng.permutation(len(X))
            for first in range(0, len(X), batch_size):
                batch = order[first:first + batch_size]
                loss = float(self.net.train_on_batch(X[batch], y[batch]))
                if not math.isfinite(loss):
                    raise TrainingDiverged(epoch + 1)
                loss_sum += loss * len(batch)
            if not weights_are_finite(self.net):
                raise TrainingDiverged(epoch + 1)
            if on_epoch_end is not None:
                on_epoch_end(epoch, {"loss": loss_sum / len(X), "epoch_time_s": time.perf_counter() - start})

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        return evaluate_from_predict(self.net, X, y)


def evaluate_from_predict(net: Net, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of net.predict over X (n, d), y (n,), in chunks; probabilities are
    clipped to [1e-7, 1] before the log, as Keras' categorical cross-entropy does."""
    loss_sum, correct = 0.0, 0
    for start in range(0, len(X), EVAL_CHUNK):
        P = np.asarray(net.predict(X[start:start + EVAL_CHUNK]), np.float64)
        yc = y[start:start + EVAL_CHUNK].astype(np.intp)
        correct += int(np.count_nonzero(P.argmax(axis=1) == yc))
        loss_sum -= float(np.log(np.clip(P[np.arange(len(yc)), yc], PROBABILITY_FLOOR, 1.0)).sum())
    return loss_sum / len(X), correct / len(X)


def weights_are_finite(net: Net) -> bool:
    return all(np.isfinite(w).all() for w in net.get_weights())


def construct(net_class: type, spec: RunSpec, input_size: int, seed: int | None) -> Net:
    """net_class(d, h, c, lr, seed) with spec's sizes and lr, and each of OPTIONAL_SETTINGS (optimizer,
    init, Keras' levers, ...) that its constructor takes."""
    takes = inspect.signature(net_class).parameters
    extra = {name: getattr(spec, name) for name in OPTIONAL_SETTINGS if name in takes}
    return net_class(input_size, spec.hidden_size, NUM_CLASSES, spec.lr, seed, **extra)


def build_net(spec: RunSpec, input_size: int) -> TrainableNet:
    """spec.net built by construct, with the paired initial weights when spec.paired; a net without its
    own fit/evaluate gets BatchLoop's."""
    net = construct(spec.net, spec, input_size, spec.seed)
    if spec.paired:
        sizes = (input_size, spec.hidden_size, NUM_CLASSES)
        net.set_weights(initial_weights(np.random.default_rng(spec.seed), sizes, spec.init))
    has_own_loop = callable(getattr(net, "fit", None)) and callable(getattr(net, "evaluate", None))
    return net if has_own_loop else BatchLoop(net, spec.seed)
