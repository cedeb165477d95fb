"""MNIST for the original tool's scripts: the bundled, checksummed IDX files or Keras' copy, and their
normalisation. The reader itself is mnist_compare/data/idx.py, which this module re-exports.

    (x_train, y_train), (x_test, y_test) = get_MNIST()          # bundled IDX files, uint8 (n, 28, 28)
    (x_train, y_train), (x_test, y_test) = get_MNIST_Keras()    # keras.datasets.mnist.load_data()
    X_train, X_test = normalized_MNIST(x_train, x_test)         # float32 (n, 784) in [0, 1]
"""

from __future__ import annotations

from mnist_compare.data.idx import (
    BUNDLED_DIR,
    MnistDataError,
    flatten_and_scale,
    get_MNIST,
    load_data,
    normalized_MNIST,
    one_hot,
    parse_idx,
    read_idx,
)
from mnist_compare.nets.keras_net import load_mnist as get_MNIST_Keras

__all__ = ["BUNDLED_DIR", "MnistDataError", "flatten_and_scale", "get_MNIST", "get_MNIST_Keras", "load_data",
           "normalized_MNIST", "one_hot", "parse_idx", "read_idx"]
