"""Runs: the net interface, the one runner that trains and times any net, and the plan of a command's runs.

    train(spec, data) -> RunResult      build the net, pair it, time fit, evaluate: the same for every net

Not for: option parsing (main.py), rendering (report.py) or progress bars (progress.py). Imports no net:
a RunSpec carries its net's class, so `--net_type my` never loads TensorFlow.
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

import read_mnist
from optimizers import DEFAULT_OPTIMIZER, OptimizerSettings, initial_weights
from results import EpochCallback, RunFailed, RunResult, TrainingDiverged, confusion_matrix
from spec import EVAL_CHUNK, NUM_CLASSES, RunSpec

Dataset = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""X_train (N, d) float32 in [0, 1], y_train (N,) labels, X_test (M, d), y_test (M,)."""

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


def build_net(spec: RunSpec, input_size: int) -> TrainableNet:
    """spec.net(d, h, c, lr, seed) (optimizer and init too when its class takes them), with the paired
    initial weights when spec.paired; a net without its own fit/evaluate gets BatchLoop's."""
    settings = inspect.signature(spec.net).parameters
    extra = {name: getattr(spec, name) for name in OPTIONAL_SETTINGS if name in settings}
    net = spec.net(input_size, spec.hidden_size, NUM_CLASSES, spec.lr, spec.seed, **extra)
    if spec.paired:
        sizes = (input_size, spec.hidden_size, NUM_CLASSES)
        net.set_weights(initial_weights(np.random.default_rng(spec.seed), sizes, spec.init))
    has_own_loop = callable(getattr(net, "fit", None)) and callable(getattr(net, "evaluate", None))
    return net if has_own_loop else BatchLoop(net, spec.seed)


class EpochRecorder:
    """The runner's on_epoch_end: keeps the history, evaluates the test set when asked, notes when it first
    reaches the target accuracy, reports progress, and counts its own seconds so that Time(s) covers the
    net's training alone."""

    def __init__(self, net: TrainableNet, test: tuple[np.ndarray, np.ndarray] | None,
                 report: EpochCallback | None, result: RunResult):
        self.net, self.test, self.report, self.result = net, test, report, result
        self.history: dict[str, list[float]] = {}
        self.seconds = 0.0
        self.started = time.perf_counter()

    def training_seconds(self) -> float:
        """Wall time since fit began, less the time spent here."""
        return time.perf_counter() - self.started - self.seconds

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        trained = self.training_seconds()
        start = time.perf_counter()
        logs = dict(logs)
        if self.test is not None:
            logs["test_loss"], logs["test_accuracy"] = self.net.evaluate(*self.test)
            self.note_target(epoch, logs["test_accuracy"], trained)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))
        if self.report is not None:
            self.report(epoch, logs)
        self.seconds += time.perf_counter() - start

    def note_target(self, epoch: int, accuracy: float, trained: float) -> None:
        target = self.result.spec.target_accuracy
        if target is not None and self.result.target_epoch is None and accuracy >= target:
            self.result.target_epoch, self.result.time_to_target_s = epoch + 1, trained


def described(result: RunResult, net: TrainableNet) -> RunResult:
    """result with net.describe() as its net_info, for a net that describes itself; read after the fit, so
    that what the fit chose (my_net's BLAS threads and skipped pixels, Keras' effective settings) is in it."""
    if callable(getattr(net, "describe", None)):
        result.net_info = net.describe()
    return result


def train(spec: RunSpec, data: Dataset, on_epoch_end: EpochCallback | None = None) -> RunResult:
    """Train spec's net on data and return its RunResult. `train_time_s` is the wall time of the net's
    fit alone (data loaded, net built; per-epoch evaluation and progress not counted); first_epoch_s and
    steady_epoch_s (the median of epochs 2..n) split it into start-up and steady speed."""
    X_train, y_train, X_test, y_test = data
    net = build_net(spec, X_train.shape[1])
    result = RunResult(spec)
    result.initial_train_loss = net.evaluate(X_train, y_train)[0]
    evaluate_each_epoch = spec.eval_every_epoch or spec.target_accuracy is not None
    recorder = EpochRecorder(net, (X_test, y_test) if evaluate_each_epoch else None, on_epoch_end, result)
    result.history = recorder.history
    rng = np.random.default_rng(spec.seed) if spec.paired else None
    recorder.started = time.perf_counter()
    try:
        net.fit(X_train, y_train, spec.batch_size, spec.number_epochs, rng, recorder)
    except TrainingDiverged as err:
        return described(result, net).mark_diverged(err.epoch)
    result.train_time_s = recorder.training_seconds()
    described(result, net)
    epochs = result.history["epoch_time_s"]
    result.first_epoch_s = epochs[0]
    result.steady_epoch_s = statistics.median(epochs[1:]) if len(epochs) > 1 else math.nan
    result.test_loss, result.test_accuracy = net.evaluate(X_test, y_test)
    result.train_loss, result.train_accuracy = net.evaluate(X_train, y_train)
    predicted = np.concatenate([net.predict(X_test[i:i + EVAL_CHUNK]).argmax(axis=1)
                                for i in range(0, len(X_test), EVAL_CHUNK)])
    result.confusion = confusion_matrix(y_test, predicted).tolist()
    return result


def fit_and_test(net: type, hidden_size: int = 30, batch_size: int = 128, number_epochs: int = 20,
                 lr: float = 0.1, seed: int | None = None, data: Dataset | None = None, *, paired: bool = False,
                 eval_every_epoch: bool = False, optimizer: OptimizerSettings = DEFAULT_OPTIMIZER,
                 init: str = "glorot_uniform", on_epoch_end: EpochCallback | None = None) -> RunResult:
    """One run of `net` on MNIST (the bundled files when data is None): the original tool's
    fit_and_test_net_on_MNIST, which my_net and keras_net keep as thin wrappers over this."""
    spec = RunSpec(net, hidden_size, lr, batch_size, number_epochs, seed, paired, eval_every_epoch, optimizer, init)
    return train(spec, data if data is not None else read_mnist.load_data(), on_epoch_end)


def plan_runs(contenders: list[RunSpec], hidden_sizes: list[int], lrs: list[float], batch_sizes: list[int],
              repeats: int) -> list[RunSpec]:
    """Every (setting, repeat, contender) in order: settings as a cartesian product, seeds seed, seed + 1, ...
    (from the contenders' common seed), and within each, the contenders in the order given (my_net first).
    A contender is a RunSpec template: its net and net-specific settings (a Keras backend) are kept.
    Odd repeats train the contenders in reverse order, so that none always meets a cold cache or the
    others' idle threads."""
    return [replace(contender, hidden_size=h, lr=lr, batch_size=batch, seed=contender.seed + r)
            for h, lr, batch in itertools.product(hidden_sizes, lrs, batch_sizes)
            for r in range(repeats) for contender in (contenders if r % 2 == 0 else contenders[::-1])]


def estimated_memory_bytes(hidden_size: int, batch_size: int, input_size: int = 784) -> int:
    """Rough float32 footprint of one run: parameters with gradients and optimiser state (x4),
    training buffers (the gathered batch and its activations), and the evaluation chunk's activations;
    Keras needs about the same."""
    parameters = 4 * (input_size + NUM_CLASSES + 1) * hidden_size
    batch = min(batch_size, 60_000)
    activations = batch * (input_size + 3 * hidden_size) + 2 * EVAL_CHUNK * hidden_size
    return 4 * (parameters + activations)


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def run_all(specs: list[RunSpec], data: Dataset, start_run: Callable[[RunSpec], EpochCallback],
            finish_run: Callable[[RunSpec], None], train_one: Callable = train) -> tuple[list[RunResult], bool]:
    """Train every spec in order with train_one (default: train, in this process), calling start_run(spec)
    for its epoch callback and finish_run(spec) after it. A run that raises RunFailed is kept as an error row
    and the others go on; on Ctrl-C (or another stop signal) keep the finished results, mark the running one
    interrupted, and return (results, True)."""
    results: list[RunResult] = []
    for spec in specs:
        try:
            try:
                results.append(train_one(spec, data, start_run(spec)))
            except RunFailed as err:
                results.append(RunResult(spec).mark_error(str(err)))
            finish_run(spec)
        except KeyboardInterrupt:
            if not results or results[-1].spec is not spec:
                results.append(RunResult(spec).mark_interrupted())
            return results, True
    return results, False
