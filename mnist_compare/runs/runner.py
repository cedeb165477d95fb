"""The one runner that trains and times any net, and the plan of a command's runs.

    train(spec, data) -> RunResult      build the net, pair it, time fit, evaluate: the same for every net

Not for: the net contract (nets/contract.py), options (cli/), rendering (output/). Imports no net:
a RunSpec carries its net's class, so `--net_type my` never loads TensorFlow.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from mnist_compare.data import idx
from mnist_compare.data.idx import Dataset
from mnist_compare.nets.contract import TrainableNet, build_net, weights_are_finite
from mnist_compare.nets.threads import SPARE_CORE_SHARE, CpuLoad
from mnist_compare.records.results import (
    OUT_OF_MEMORY,
    EpochCallback,
    RunFailed,
    RunResult,
    TrainingDiverged,
    confusion_matrix,
    is_out_of_memory,
)
from mnist_compare.records.spec import DEFAULT_OPTIMIZER, EVAL_CHUNK, NUM_CLASSES, OptimizerSettings, RunSpec


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


def note_load(result: RunResult, others: float | None) -> None:
    """Record the cores other processes held during the fit, and mark the time distorted when they held a
    core (SPARE_CORE_SHARE of one or more) and the net's threads did not follow the load: a thread on the
    busy core holds back the others (measured: keras_net[torch] 10x slower under one busy core of two)."""
    if others is None:
        return
    result.others_cores = round(others, 2)
    result.time_distorted = others >= SPARE_CORE_SHARE and not result.net_info.get("threads_follow_load")


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
    load = CpuLoad()
    recorder.started = time.perf_counter()
    try:
        net.fit(X_train, y_train, spec.batch_size, spec.number_epochs, rng, recorder)
    except TrainingDiverged as err:
        return described(result, net).mark_diverged(err.epoch)
    result.train_time_s = recorder.training_seconds()
    described(result, net)
    note_load(result, load.others())
    epochs = result.history["epoch_time_s"]
    result.first_epoch_s = epochs[0]
    result.steady_epoch_s = statistics.median(epochs[1:]) if len(epochs) > 1 else math.nan
    result.test_loss, result.test_accuracy = net.evaluate(X_test, y_test)
    result.train_loss, result.train_accuracy = net.evaluate(X_train, y_train)
    if not (math.isfinite(result.test_loss) and math.isfinite(result.train_loss)):
        if not weights_are_finite(net):
            return result.mark_diverged(spec.number_epochs)
        raise RunFailed("predict returned probabilities that are not finite (NaN or inf) from finite weights")
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
    return train(spec, data if data is not None else idx.load_data(), on_epoch_end)


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
            finish_run: Callable[[RunSpec], None], train_one: Callable = train,
            wanted: Callable[[RunSpec, list[RunResult]], bool] | None = None) -> tuple[list[RunResult], bool]:
    """Train every spec in order with train_one (default: train, in this process), calling start_run(spec)
    for its epoch callback and finish_run(spec) after it. A run that raises RunFailed, or runs out of memory
    (an error row that says so), is kept as an error row and the others go on; on Ctrl-C (or another stop
    signal) keep the finished results, mark the running one interrupted, and return (results, True).
    `wanted(spec, results so far)`, when given, may skip a spec (--repeats auto's rule)."""
    results: list[RunResult] = []
    for spec in specs:
        if wanted is not None and not wanted(spec, results):
            continue
        try:
            try:
                results.append(train_one(spec, data, start_run(spec)))
            except RunFailed as err:
                results.append(RunResult(spec).mark_error(str(err)))
            except (MemoryError, ImportError, OSError) as err:
                if not is_out_of_memory(err):
                    raise
                results.append(RunResult(spec).mark_error(f"{OUT_OF_MEMORY} while training {spec.describe()} "
                                                          f"({type(err).__name__}: {str(err)[:160]})"))
            finish_run(spec)
        except KeyboardInterrupt:
            if not results or results[-1].spec is not spec:
                results.append(RunResult(spec).mark_interrupted())
            return results, True
    return results, False
