"""The original tool's interface, as its specification documents it: the root files main.py, my_net.py,
keras_net.py and read_mnist.py, and their names with their documented meanings (one test per name, on
values). These are the faces over the package that scripts written against the original use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_net
import my_net
import read_mnist

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw_mnist() -> tuple:
    return read_mnist.get_MNIST()


def softmax_by_hand(X: np.ndarray, W1, b1, W2, b2) -> np.ndarray:
    """The forward pass in float64, formula by formula: the reference for forward and predict."""
    Z2 = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def test_normalized_MNIST_flattens_and_scales_both_sets_to_float32_in_0_1(raw_mnist):
    (x_train, _), (x_test, _) = raw_mnist
    X_train, X_test = read_mnist.normalized_MNIST(x_train, x_test)
    assert X_train.shape == (60_000, 784) and X_test.shape == (10_000, 784)
    assert X_train.dtype == X_test.dtype == np.float32
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    np.testing.assert_array_equal(X_test[17], x_test[17].ravel().astype(np.float32) / 255)
    np.testing.assert_array_equal(X_train, read_mnist.load_data()[0])  # what every run trains on


def test_get_MNIST_Keras_is_keras_datasets_mnist_with_get_MNISTs_shapes(raw_mnist):
    cache = Path("~/.keras/datasets/mnist.npz").expanduser()
    if not cache.exists():
        pytest.skip(f"{cache} is absent and tests never use the network")
    for keras_split, bundled_split in zip(read_mnist.get_MNIST_Keras(), raw_mnist, strict=True):
        for keras_array, bundled_array in zip(keras_split, bundled_split, strict=True):
            np.testing.assert_array_equal(keras_array, bundled_array)


def test_get_MNIST_Keras_without_its_cache_or_network_is_one_data_error_line(tmp_path):
    # KERAS_HOME: an empty cache; the download is refused at once by an address no one serves (the proxy
    # variables), so the test sends nothing off this machine.
    code = ("import read_mnist\ntry:\n    read_mnist.get_MNIST_Keras()\nexcept read_mnist.MnistDataError as e:\n"
            "    print('MnistDataError:', e)\n")
    env = {"KERAS_HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("MnistDataError: keras.datasets.mnist: cannot load MNIST ("), out.stdout + out.stderr


def test_forward_is_the_softmax_of_the_two_layers():
    net = my_net.NeuralNetwork(784, 16, 10, 0.1, seed=3)
    rng = np.random.default_rng(0)
    weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in net.get_weights()]  # non-zero biases
    net.set_weights(weights)
    X = rng.random((50, 784), dtype=np.float32)
    P = net.forward(X)
    assert P.shape == (50, 10) and P.dtype == np.float32
    np.testing.assert_allclose(P, softmax_by_hand(X.astype(np.float64), *weights), rtol=1e-5, atol=1e-7)


def test_predict_with_labels_is_the_loss_and_accuracy_on_them_and_without_is_forward(raw_mnist):
    X, y = read_mnist.load_data()[2][:500], raw_mnist[1][1][:500]
    net = my_net.NeuralNetwork(784, 32, 10, 0.1, seed=0)
    net.fit(read_mnist.load_data()[0][:3000], raw_mnist[0][1][:3000], 100, 1)
    P = softmax_by_hand(X.astype(np.float64), *net.get_weights())
    loss, accuracy = net.predict(X, y)
    assert loss == pytest.approx(-np.mean(np.log(P[np.arange(500), y])), rel=1e-5)
    assert accuracy == np.mean(P.argmax(axis=1) == y) and 0.5 < accuracy < 1
    assert net.predict(X, read_mnist.one_hot(y)) == pytest.approx((loss, accuracy))  # one-hot Y, same meaning
    np.testing.assert_array_equal(net.predict(X), net.forward(X))


def test_fit_trains_number_epochs_epochs_of_minibatches(raw_mnist):
    X, y = read_mnist.load_data()[0][:6000], raw_mnist[0][1][:6000]
    net = my_net.NeuralNetwork(784, 32, 10, 0.1, seed=0)
    before = net.predict(X, y)[0]
    history = net.fit(X, y, 128, 3)  # the original's positional form: fit(X, Y, batch_size, number_epochs)
    assert len(history["loss"]) == len(history["accuracy"]) == 3
    assert history["loss"][0] > history["loss"][2] and net.predict(X, y)[0] < before / 3


@pytest.mark.parametrize("module", [my_net, keras_net], ids=["my_net", "keras_net"])
def test_fit_and_test_net_on_MNIST_trains_on_the_bundled_MNIST_and_reports_its_metrics(module):
    # The original's positional form: (hidden_size, batch_size, num_epochs, lr).
    result = module.fit_and_test_net_on_MNIST(32, 128, 2, 0.1, seed=0)
    assert result.status == "ok" and len(result.history["loss"]) == 2
    assert result.hyperparameters["number_epochs"] == 2 and result.hyperparameters["hidden_size"] == 32
    assert 0.90 < result.test_accuracy < 1 and 0.90 < result.train_accuracy < 1
    assert 0 < result.test_loss < 0.4 and result.train_time_s > 0
    again = module.fit_and_test_net_on_MNIST(hidden_size=32, batch_size=128, num_epochs=1, lr=0.1, seed=0)
    assert len(again.history["loss"]) == 1 and again.history["loss"][0] == pytest.approx(result.history["loss"][0],
                                                                                          rel=1e-3)


def test_main_py_runs_from_a_copy_of_the_clone_with_that_copys_package(tmp_path):
    shutil.copy(ROOT / "main.py", tmp_path)
    shutil.copytree(ROOT / "mnist_compare", tmp_path / "mnist_compare",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "main.py", "--net_type", "my", "--hidden_size", "16", "--number_epochs", "1",
                          "--seed", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("| Net") and "| my_net" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import main, mnist_compare; print(mnist_compare.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert Path(where.stdout.strip()).parent == tmp_path / "mnist_compare"
