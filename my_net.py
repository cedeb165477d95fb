"""The hand-written two-layer network: NumPy only, float32, minibatch training (the original tool's module).

    Z1 = X W1 + b1     H = relu(Z1)     Z2 = H W2 + b2     P = softmax(Z2)
    L  = -(1/n) sum_i log P[i, y_i]                                (mean cross-entropy)

    dZ2 = (P - Y) / n     dW2 = H^T dZ2     db2 = sum_i dZ2
    dZ1 = (dZ2 W2^T) * [Z1 > 0]     dW1 = X^T dZ1     db1 = sum_i dZ1

Each line of these formulas is a line of mnist_compare/nets/my_net.py, which this module re-exports:
NeuralNetwork(input_size, hidden_size, output_size, lr, seed) with forward(X) -> P (n, c), predict(X, Y) ->
(loss, accuracy) on Y, fit(X, Y, batch_size, number_epochs); and fit_and_test_net_on_MNIST below.
Never imports TensorFlow.
"""

from __future__ import annotations

from mnist_compare.data.idx import Dataset
from mnist_compare.nets.my_net import NeuralNetwork, labels_of, log_softmax
from mnist_compare.records.results import RunResult
from mnist_compare.runs.runner import fit_and_test

__all__ = ["NeuralNetwork", "fit_and_test_net_on_MNIST", "labels_of", "log_softmax"]


def fit_and_test_net_on_MNIST(hidden_size: int = 30, batch_size: int = 128, num_epochs: int = 20, lr: float = 0.1,
                              seed: int | None = None, data: Dataset | None = None, **options) -> RunResult:
    """Train my_net on MNIST (the bundled files when `data` is None) for num_epochs epochs and return its
    RunResult (train_time_s, test_accuracy, test_loss, train_accuracy, train_loss, history): the original
    tool's entry point. `options` are runner.fit_and_test's (paired, optimizer, init, ...)."""
    return fit_and_test(NeuralNetwork, hidden_size, batch_size, num_epochs, lr, seed, data, **options)


if __name__ == "__main__":
    print(fit_and_test_net_on_MNIST(128, 128, 1, 0.1, seed=0))
