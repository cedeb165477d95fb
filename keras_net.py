"""The Keras twin of my_net: the same network, loss, initialisation and optimiser, in Keras 3.

    Input(d) -> Dense(h, relu) -> Dense(c, softmax); categorical cross-entropy averaged over the batch;
    Glorot-uniform kernels, zero biases; SGD(lr) without momentum unless asked.

The only module that imports TensorFlow/Keras, and only when a Keras run is asked for (import_keras).
Paired mode (fit_paired) feeds the very batches my_net sees, in the same order, from the same weights.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from read_mnist import load_data, one_hot
from results import EpochCallback, RunResult, TrainingDiverged, confusion_matrix, hyperparameters

EVAL_BATCH = 10_000
_keras: Any = None


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block.

    TensorFlow's C++ start-up notices (absl's pre-InitializeLog warning, oneDNN and CUDA probing
    lines) are written straight to fd 2 and ignore TF_CPP_MIN_LOG_LEVEL, so only this hides them.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def import_keras() -> Any:
    """Import Keras 3 (TensorFlow backend unless KERAS_BACKEND says otherwise) without start-up noise."""
    global _keras
    if _keras is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        with stderr_silenced():
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.get_logger().setLevel("ERROR")
                tf.constant(0.0) + 1.0  # the first op prints CUDA/oneDNN notices: let it happen here
        _keras = keras
    return _keras


def make_optimizer(name: str, lr: float, momentum: float = 0.9, beta_1: float = 0.9,
                   beta_2: float = 0.999, epsilon: float = 1e-7) -> Any:
    """The Keras optimiser that optimizers.make_optimizer mirrors in NumPy."""
    keras = import_keras()
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    raise ValueError(f"unknown optimizer {name!r}")


def build_model(hidden_size: int, lr: float, input_size: int = 784, output_size: int = 10,
                optimizer: str = "sgd", init: str = "glorot_uniform", **optimizer_options: float) -> Any:
    """A compiled Sequential model: Dense(h, relu) -> Dense(c, softmax), `init` kernels, zero biases."""
    keras = import_keras()
    model = keras.Sequential([
        keras.Input((input_size,)),
        keras.layers.Dense(hidden_size, activation="relu", kernel_initializer=init, bias_initializer="zeros"),
        keras.layers.Dense(output_size, activation="softmax", kernel_initializer=init, bias_initializer="zeros"),
    ])
    model.compile(optimizer=make_optimizer(optimizer, lr, **optimizer_options),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def gradients(model: Any, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """TensorFlow autodiff of the model's mean cross-entropy on X (n, d), Y (n, c) one-hot:
    dW1 (d, h), db1 (h,), dW2 (h, c), db2 (c,), keyed like my_net's parameters."""
    import tensorflow as tf

    keras = import_keras()
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.categorical_crossentropy(Y, model(X, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    return {name: g.numpy() for name, g in zip(("W1", "b1", "W2", "b2"), grads, strict=True)}


def epoch_callback(on_epoch_end: EpochCallback | None) -> Any:
    """A Keras callback that times each epoch, keeps the history under my_net's names (loss, accuracy,
    epoch_time_s, test_loss, test_accuracy), stops on a non-finite loss or weight, and calls on_epoch_end."""
    keras = import_keras()

    class EpochWatcher(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = {}
            self.diverged_epoch: int | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = renamed_logs(logs or {}, time.perf_counter() - self.started)
            if not math.isfinite(logs["loss"]) or not weights_are_finite(self.model):
                self.diverged_epoch = epoch + 1
                self.model.stop_training = True
                return
            for name, value in logs.items():
                self.history.setdefault(name, []).append(value)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)

    return EpochWatcher()


def renamed_logs(logs: dict, epoch_time_s: float) -> dict[str, float]:
    """Keras' epoch logs under my_net's names: val_* becomes test_*."""
    renamed = {name.replace("val_", "test_"): float(value) for name, value in logs.items()}
    return {"loss": renamed.pop("loss", math.nan), "accuracy": renamed.pop("accuracy", math.nan),
            "epoch_time_s": epoch_time_s, **renamed}


def weights_are_finite(model: Any) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights())


def fit_epochs(model: Any, X: np.ndarray, Y: np.ndarray, batch_size: int, num_epochs: int,
               order_seed: int | None, callbacks: list, validation_data: tuple | None) -> None:
    """Keras' own fit (shuffle=True), or with `order_seed` the paired order: every epoch the
    permutation np.random.default_rng(order_seed) draws, exactly as my_net.fit draws it."""
    options = {"batch_size": batch_size, "verbose": 0, "callbacks": callbacks, "validation_data": validation_data}
    if order_seed is None:
        model.fit(X, Y, epochs=num_epochs, shuffle=True, **options)
        return
    rng = np.random.default_rng(order_seed)
    for epoch in range(num_epochs):
        order = rng.permutation(len(X))
        model.fit(X[order], Y[order], epochs=epoch + 1, initial_epoch=epoch, shuffle=False, **options)
        if model.stop_training:
            return


def fit_and_test_net_on_MNIST(hidden_size: int = 30, batch_size: int = 128, num_epochs: int = 20,
                              lr: float = 0.1, seed: int | None = None, data: tuple | None = None,
                              on_epoch_end: EpochCallback | None = None, initial_weights: list | None = None,
                              order_seed: int | None = None, eval_every_epoch: bool = False,
                              optimizer: str = "sgd", init: str = "glorot_uniform",
                              **optimizer_options: float) -> RunResult:
    """Train the Keras twin on MNIST and return its RunResult (train time covers `fit` only).

    Arguments as for my_net.fit_and_test_net_on_MNIST; `seed` goes to keras.utils.set_random_seed.
    """
    keras = import_keras()
    X_train, y_train, X_test, y_test = data if data is not None else load_data()
    Y_train, Y_test = one_hot(y_train), one_hot(y_test)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = build_model(hidden_size, lr, X_train.shape[1], 10, optimizer, init, **optimizer_options)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    result = RunResult("keras_net", hyperparameters(hidden_size, batch_size, num_epochs, lr, optimizer, init,
                                                    **optimizer_options), seed)
    result.initial_train_loss = evaluate(model, X_train, Y_train)[0]
    watcher = epoch_callback(on_epoch_end)
    validation = (X_test, Y_test) if eval_every_epoch else None
    start = time.perf_counter()
    fit_epochs(model, X_train, Y_train, batch_size, num_epochs, order_seed, [watcher], validation)
    train_time_s = time.perf_counter() - start
    if watcher.diverged_epoch is not None:
        return result.mark_diverged(TrainingDiverged(watcher.diverged_epoch, watcher.history))
    result.train_time_s = train_time_s
    result.history = watcher.history
    result.test_loss, result.test_accuracy = evaluate(model, X_test, Y_test)
    result.train_loss, result.train_accuracy = evaluate(model, X_train, Y_train)
    predictions = model.predict(X_test, batch_size=EVAL_BATCH, verbose=0).argmax(axis=1)
    result.confusion = confusion_matrix(y_test, predictions).tolist()
    return result


def evaluate(model: Any, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1]) of the model on X (n, d), Y (n, c)."""
    loss, accuracy = model.evaluate(X, Y, batch_size=EVAL_BATCH, verbose=0)
    return float(loss), float(accuracy)
