"""Keras' backends: importing Keras quietly, which backend this process runs, and each backend's autodiff.

Keras fixes its backend (TensorFlow, JAX or PyTorch) when it is first imported, from KERAS_BACKEND; a run on
another backend goes to a worker process (worker.py). Not for: the model (keras_net.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_compare.records.spec import PARAMETER_NAMES
from mnist_compare.system.machine import install_hint, installed_versions, tensorflow_threads
from mnist_compare.system.shutdown import signals_deferred

DEFAULT_BACKEND = "tensorflow"
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
    """Import Keras 3 (on KERAS_BACKEND, TensorFlow by default) without start-up noise."""
    global _keras
    if _keras is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
        with signals_deferred(), stderr_silenced():  # a signal meanwhile interrupts once Keras is whole
            import keras

            # Keras loads TensorFlow for its data pipeline on every backend when it is installed: here, quietly.
            if importlib.util.find_spec("tensorflow"):
                import tensorflow as tf

                tf.get_logger().setLevel("ERROR")
                tf.constant(0.0) + 1.0  # the first op prints CUDA/oneDNN notices: let it happen here
        _keras = keras
    return _keras


def current_backend() -> str:
    """The backend Keras runs on in this process: the loaded one, else the one KERAS_BACKEND will load."""
    if _keras is not None:
        return _keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)


def installed_backends() -> list[str]:
    return [name for name, backend in BACKENDS.items() if importlib.util.find_spec(backend.packages[0])]


def backend_problem(name: str, source: str = "KERAS_BACKEND") -> str | None:
    """Why Keras cannot run on backend `name` here, in one line naming `source` and what is installed;
    None when it can."""
    installed = installed_backends()
    have = f"installed here: {', '.join(installed) or 'none'}"
    if name not in BACKENDS:
        return f"{source}={name}: not a Keras backend; use one of {', '.join(BACKEND_NAMES)} ({have})"
    if name not in installed:
        requirements = "" if name == DEFAULT_BACKEND else f", e.g. {install_hint(name)}"
        return f"{source}={name}: the {BACKENDS[name].packages[0]} package is not installed ({have}{requirements})"
    return None


def backend_versions(name: str) -> dict[str, str | None]:
    """Installed versions of keras and the backend's packages, read without importing them."""
    return installed_versions(["keras", *BACKENDS[name].packages])


def backend_threads(name: str) -> dict[str, Any]:
    """How many threads the backend computes with (0 in TensorFlow: its default, one per core)."""
    return BACKENDS[name].threads()


def tensorflow_thread_counts() -> dict[str, Any]:
    import tensorflow  # noqa: F401  (machine reads the settings of a TensorFlow already imported)

    return tensorflow_threads()


def torch_thread_counts() -> dict[str, Any]:
    import torch

    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def jax_thread_counts() -> dict[str, Any]:
    return {"XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "cpu_count": os.cpu_count()}


def gradients(model: Any, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """The backend's own autodiff (TensorFlow's GradientTape, jax.grad, torch.autograd) of the model's mean
    cross-entropy on X (n, d), Y (n, c) one-hot: dW1 (d, h), db1 (h,), dW2 (h, c), db2 (c,)."""
    keras = import_keras()
    backend = keras.backend.backend()
    grads = BACKENDS[backend].autodiff(keras, model, X, Y)
    return {name: np.asarray(g) for name, g in zip(PARAMETER_NAMES, grads, strict=True)}


def mean_cross_entropy(keras: Any, Y: Any, P: Any) -> Any:
    return keras.ops.mean(keras.losses.categorical_crossentropy(Y, P))


def tensorflow_gradients(keras: Any, model: Any, X: np.ndarray, Y: np.ndarray) -> list:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = mean_cross_entropy(keras, Y, model(X, training=True))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def jax_gradients(keras: Any, model: Any, X: np.ndarray, Y: np.ndarray) -> list:
    import jax

    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]

    def loss(values: list) -> Any:
        P, _ = model.stateless_call(values, fixed, X, training=True)
        return mean_cross_entropy(keras, Y, P)

    return list(jax.grad(loss)(trainable))


def torch_gradients(keras: Any, model: Any, X: np.ndarray, Y: np.ndarray) -> list:
    import torch

    loss = mean_cross_entropy(keras, torch.as_tensor(Y), model(torch.as_tensor(X), training=True))
    grads = torch.autograd.grad(loss, [v.value for v in model.trainable_variables])
    return [g.detach().cpu().numpy() for g in grads]


class TorchPool:
    """PyTorch's intra-op threads (keras_net[torch]): torch.set_num_threads takes effect at the next op."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.found = torch.get_num_threads()

    def limit(self, threads: int) -> None:
        self.torch.set_num_threads(threads)


@dataclass(frozen=True)
class Backend:
    """A Keras backend: its packages (the first is the one whose presence makes it usable; all have their
    versions recorded), its autodiff of the mean cross-entropy, and what says its thread counts."""

    packages: tuple[str, ...]
    autodiff: Callable[[Any, Any, np.ndarray, np.ndarray], list]
    threads: Callable[[], dict[str, Any]]


# The one list of Keras backends: --keras_backend's choices, the worker's, the checks' autodiff derive from it.
BACKENDS = {
    "tensorflow": Backend(("tensorflow",), tensorflow_gradients, tensorflow_thread_counts),
    "jax": Backend(("jax", "jaxlib"), jax_gradients, jax_thread_counts),
    "torch": Backend(("torch",), torch_gradients, torch_thread_counts),
}
BACKEND_NAMES = tuple(BACKENDS)
