"""The Keras twin of my_net: the same network, loss, initialisation and optimiser, in Keras 3.

    Input(d) -> Dense(h, relu) -> Dense(c, softmax); categorical cross-entropy averaged over the batch;
    Glorot-uniform kernels, zero biases; SGD(lr) without momentum unless asked.

The only module that imports TensorFlow/Keras, and only when a Keras run is asked for (import_keras).
KerasNet wraps the model in the net contract (contract.Net); with an order generator its fit feeds the very
batches my_net sees, in the same order (paired mode).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_compare.data.idx import MnistDataError, Split, check_split, one_hot
from mnist_compare.nets.contract import weights_are_finite
from mnist_compare.nets.keras_backends import (
    TorchPool,
    backend_threads,
    backend_versions,
    current_backend,
    import_keras,
)
from mnist_compare.nets.threads import ThreadChooser
from mnist_compare.records.results import EpochCallback, TrainingDiverged
from mnist_compare.records.spec import DEFAULT_OPTIMIZER, EVAL_CHUNK, NUM_CLASSES, OptimizerSettings, RunSpec
from mnist_compare.system.shutdown import signals_deferred, stop_if_signalled

JIT_COMPILE = {"auto": "auto", "true": True, "false": False}  # --jit_compile -> Keras' compile(jit_compile=...)


def make_optimizer(settings: OptimizerSettings, lr: float) -> Any:
    """The Keras optimiser that optimizers.make_optimizer mirrors in NumPy."""
    keras = import_keras()
    if settings.name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if settings.name == "momentum":
        return keras.optimizers.SGD(learning_rate=lr, momentum=settings.momentum)
    if settings.name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=settings.beta_1, beta_2=settings.beta_2,
                                     epsilon=settings.epsilon)
    raise ValueError(f"unknown optimizer {settings.name!r}")


def build_model(hidden_size: int, lr: float, input_size: int = 784, output_size: int = NUM_CLASSES,
                optimizer: OptimizerSettings = DEFAULT_OPTIMIZER, init: str = "glorot_uniform",
                steps_per_execution: int = 1, jit_compile: str = "auto") -> Any:
    """A compiled Sequential model: Dense(h, relu) -> Dense(c, softmax), `init` kernels, zero biases;
    Keras' speed levers steps_per_execution and jit_compile ("auto", "true", "false") passed to compile."""
    keras = import_keras()
    model = keras.Sequential([
        keras.Input((input_size,)),
        keras.layers.Dense(hidden_size, activation="relu", kernel_initializer=init, bias_initializer="zeros"),
        keras.layers.Dense(output_size, activation="softmax", kernel_initializer=init, bias_initializer="zeros"),
    ])
    model.compile(optimizer=make_optimizer(optimizer, lr), loss="categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution, jit_compile=JIT_COMPILE[jit_compile])
    return model


def epoch_callback(on_epoch_end: EpochCallback | None) -> Any:
    """A Keras callback that times each epoch, passes its logs under my_net's names (loss, accuracy,
    epoch_time_s) to on_epoch_end, stops training on a non-finite loss or weight, and lets a stop signal
    interrupt the fit before each batch (the fit runs with signals deferred)."""
    keras = import_keras()

    class EpochWatcher(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.diverged_epoch: int | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            # at the batch's begin, not its end: an on_train_batch_end turns off Keras' asynchronous
            # dispatch of batch-end callbacks, and makes every step wait for its logs
            stop_if_signalled()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = {"loss": float((logs or {}).get("loss", math.nan)),
                    "accuracy": float((logs or {}).get("accuracy", math.nan)),
                    "epoch_time_s": time.perf_counter() - self.started}
            if not math.isfinite(logs["loss"]) or not weights_are_finite(self.model):
                self.diverged_epoch = epoch + 1
                self.model.stop_training = True
            elif on_epoch_end is not None:
                on_epoch_end(epoch, logs)

    return EpochWatcher()


def load_following_threads(chooser: ThreadChooser) -> Any:
    """A Keras callback that lets `chooser` set the thread count after each batch (it reads the load every
    quarter of a second): PyTorch's intra-op threads follow the load as my_net's BLAS threads do."""
    keras = import_keras()

    class LoadFollower(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            chooser.after_step()

    return LoadFollower()


def fit_epochs(model: Any, X: np.ndarray, Y: np.ndarray, batch_size: int, number_epochs: int,
               rng: np.random.Generator | None, callbacks: list) -> None:
    """Keras' own fit (shuffle=True), or with `rng` the paired order: every epoch the permutation
    rng draws, exactly as my_net.fit draws it."""
    options = {"batch_size": batch_size, "verbose": 0, "callbacks": callbacks}
    if rng is None:
        model.fit(X, Y, epochs=number_epochs, shuffle=True, **options)
        return
    for epoch in range(number_epochs):
        order = rng.permutation(len(X))
        model.fit(X[order], Y[order], epochs=epoch + 1, initial_epoch=epoch, shuffle=False, **options)
        if model.stop_training:
            return


class KerasNet:
    """The Keras twin behind the net contract (contract.Net): model.fit for epochs, model.evaluate for metrics.

    Runs on the backend this process loaded (keras_backends.current_backend); `keras_backend` names it
    when it was asked for, and a run on another backend belongs in a worker process (worker.py).
    """

    name = "keras_net"

    def __init__(self, input_size: int = 784, hidden_size: int = 30, output_size: int = NUM_CLASSES,
                 lr: float = 0.1, seed: int | None = None, optimizer: OptimizerSettings = DEFAULT_OPTIMIZER,
                 init: str = "glorot_uniform", keras_backend: str | None = None, steps_per_execution: int = 1,
                 jit_compile: str = "auto", blas_threads: str = "auto"):
        keras = import_keras()
        if keras_backend is not None and keras_backend != keras.backend.backend():
            raise RuntimeError(f"Keras runs on {keras.backend.backend()} in this process, not {keras_backend}")
        if seed is not None:
            keras.utils.set_random_seed(seed)
        with signals_deferred():
            self.model = build_model(hidden_size, lr, input_size, output_size, optimizer, init,
                                     steps_per_execution, jit_compile)
        self.steps_per_execution = steps_per_execution
        self.blas_threads = blas_threads  # on PyTorch its intra-op threads, as my_net's BLAS threads: auto, all or N
        self.threads: ThreadChooser | None = None

    @staticmethod
    def name_for(spec: RunSpec) -> str:
        """keras_net, or keras_net[jax] when a backend was asked for (--keras_backend)."""
        return "keras_net" if spec.keras_backend is None else f"keras_net[{spec.keras_backend}]"

    def describe(self) -> dict[str, Any]:
        """What a reader needs to know which Keras was measured: backend, versions, effective settings."""
        backend = import_keras().backend.backend()
        return {"keras_backend": backend, "versions": backend_versions(backend), "threads": backend_threads(backend),
                "jit_compile": self.model.jit_compile, "steps_per_execution": self.steps_per_execution,
                "threads_follow_load": bool(self.threads and self.threads.follows_load),
                "thread_changes": self.threads.history if self.threads else None}

    def train_on_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        """One step on the batch; its loss. Keras before 3.13 returns the mean over every call since the
        metrics were last reset, so they are reset first: this batch's loss on every version."""
        self.model.reset_metrics()
        with signals_deferred():
            loss, _accuracy = self.model.train_on_batch(X, one_hot(y))
        return float(loss)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, c) softmax probabilities for X (n, d)."""
        with signals_deferred():
            return self.model.predict(X, batch_size=EVAL_CHUNK, verbose=0)

    def get_weights(self) -> list[np.ndarray]:
        return self.model.get_weights()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.model.set_weights(weights)

    def fit(self, X: np.ndarray, y: np.ndarray, batch_size: int, number_epochs: int,
            rng: np.random.Generator | None = None, on_epoch_end: EpochCallback | None = None) -> None:
        """model.fit over number_epochs (paired order when rng is given); TrainingDiverged on a non-finite
        loss or weight."""
        watcher = epoch_callback(on_epoch_end)
        callbacks = [watcher]
        if current_backend() == "torch" and self.blas_threads != "all":
            self.threads = ThreadChooser(None if self.blas_threads == "auto" else self.blas_threads, TorchPool())
            callbacks.append(load_following_threads(self.threads))
        with self.threads or contextlib.nullcontext(), signals_deferred():
            fit_epochs(self.model, X, one_hot(y), batch_size, number_epochs, rng, callbacks)
        if watcher.diverged_epoch is not None:
            raise TrainingDiverged(watcher.diverged_epoch)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy in [0, 1]) of the model on X (n, d), y (n,) labels."""
        with signals_deferred():
            loss, accuracy = self.model.evaluate(X, one_hot(y), batch_size=EVAL_CHUNK, verbose=0)
        return float(loss), float(accuracy)


def load_mnist() -> tuple[Split, Split]:
    """The original data source (read_mnist.get_MNIST_Keras at the root): `keras.datasets.mnist.load_data()`,
    with the shapes and dtypes of data.idx.get_MNIST. Needs the internet or the Keras cache
    (~/.keras/datasets/mnist.npz); failures raise MnistDataError."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data from ..." to stdout
            (x_train, y_train), (x_test, y_test) = import_keras().datasets.mnist.load_data()
    except Exception as err:
        message = " ".join(str(err).split()) or type(err).__name__
        raise MnistDataError(f"keras.datasets.mnist: cannot load MNIST ({message})") from None
    source = Path("~/.keras/datasets/mnist.npz")
    return check_split(x_train, y_train, source, source), check_split(x_test, y_test, source, source)
