"""The Keras twin of my_net (the original tool's module): the same network, loss, initialisation and
optimiser in Keras 3, from mnist_compare/nets/keras_net.py, which this module re-exports.

    Input(784) -> Dense(h, relu) -> Dense(10, softmax); categorical cross-entropy averaged over the batch;
    Glorot-uniform kernels, zero biases; SGD(lr).
"""

from __future__ import annotations

from mnist_compare.data.idx import Dataset
from mnist_compare.nets.keras_net import KerasNet, build_model, load_mnist
from mnist_compare.records.results import RunResult
from mnist_compare.runs.runner import fit_and_test

__all__ = ["KerasNet", "build_model", "fit_and_test_net_on_MNIST", "load_mnist"]


def fit_and_test_net_on_MNIST(hidden_size: int = 30, batch_size: int = 128, num_epochs: int = 20, lr: float = 0.1,
                              seed: int | None = None, data: Dataset | None = None, **options) -> RunResult:
    """Train the Keras twin on MNIST (the bundled files when `data` is None) for num_epochs epochs and return
    its RunResult: the original tool's entry point. `options` are runner.fit_and_test's."""
    return fit_and_test(KerasNet, hidden_size, batch_size, num_epochs, lr, seed, data, **options)


if __name__ == "__main__":
    print(fit_and_test_net_on_MNIST(128, 128, 1, 0.1, seed=0))
