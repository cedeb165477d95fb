"""keras_net: the model is the network my_net implements, and paired training proves it step by step.

These tests run on the Keras backend of the process (KERAS_BACKEND, TensorFlow by default);
test_backends.py runs this very module again on JAX and PyTorch, each with its own autodiff.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from mnist_compare.data.idx import one_hot
from mnist_compare.nets import keras_backends, keras_net, my_net
from mnist_compare.records.spec import OptimizerSettings
from mnist_compare.runs import runner

HIDDEN, BATCH, EPOCHS, SEED = 64, 128, 2, 4

# Paired training on 6,000 images (46 full batches and one of 112), 2 epochs, hidden 64, lr 0.1.
# Measured maximum absolute weight difference between the nets: 1.2e-7 (float32 round-off);
# a 1% learning-rate change gives 3.1e-3, averaging the last batch over batch_size 8.5e-4.
WEIGHT_TOLERANCE = 2e-6
METRIC_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model():
    return keras_net.build_model(30, 0.1)


def test_model_has_the_two_dense_layers_of_my_net(model):
    keras = keras_net.import_keras()
    hidden, output = model.layers
    assert isinstance(hidden, keras.layers.Dense) and isinstance(output, keras.layers.Dense)
    assert hidden.activation.__name__ == "relu" and output.activation.__name__ == "softmax"
    assert model.input_shape == (None, 784) and model.output_shape == (None, 10)
    assert [w.shape for w in model.get_weights()] == [(784, 30), (30,), (30, 10), (10,)]


def test_model_trains_with_plain_sgd_on_mean_categorical_cross_entropy(model):
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert float(optimizer.learning_rate) == pytest.approx(0.1)
    assert optimizer.momentum == 0 and not optimizer.nesterov
    assert model.loss == "categorical_crossentropy"
    Y = one_hot(np.array([1, 2]))
    P = np.array([[0.2, 0.5, 0.3] + [0.0] * 7, [0.1, 0.1, 0.8] + [0.0] * 7], np.float32)
    keras = keras_net.import_keras()
    assert float(keras.ops.convert_to_numpy(keras.losses.get(model.loss)(Y, P)).mean()) == pytest.approx(
        -(math.log(0.5) + math.log(0.8)) / 2, rel=1e-6)


def test_train_on_batch_returns_this_batchs_loss_before_its_step(mnist_subset):
    """The contract's train_on_batch: the mean cross-entropy of this batch before the step, on every Keras
    version (before 3.13, Keras' own returns the mean over every call since its metrics were reset)."""
    X, y = mnist_subset[0], mnist_subset[1]
    net = keras_net.KerasNet(784, 32, 10, 0.1, SEED)
    for batch in (slice(0, 128), slice(128, 256), slice(256, 384)):
        P = net.predict(X[batch])
        before = float(-np.log(P[np.arange(128), y[batch]]).mean())
        assert net.train_on_batch(X[batch], y[batch]) == pytest.approx(before, rel=1e-5)


def test_initial_weights_are_glorot_uniform_with_zero_biases():
    keras_net.import_keras().utils.set_random_seed(0)
    W1, b1, W2, b2 = keras_net.build_model(300, 0.1).get_weights()
    for W, (fan_in, fan_out) in ((W1, (784, 300)), (W2, (300, 10))):
        limit = math.sqrt(6 / (fan_in + fan_out))
        std = limit / math.sqrt(3)
        assert np.abs(W).max() <= limit
        assert abs(W.mean()) < 4 * std / math.sqrt(W.size)  # within sampling error of 0
        assert W.std() == pytest.approx(std, rel=4 / math.sqrt(W.size) + 0.01)
    assert not b1.any() and not b2.any()


def test_my_net_gradients_equal_the_backends_autodiff_on_the_same_weights_and_batch(mnist):
    X, y = mnist[0][:128], mnist[1][:128]
    net = my_net.NeuralNetwork(784, HIDDEN, seed=1)
    model = keras_net.build_model(HIDDEN, 0.1)
    model.set_weights(net.get_weights())
    ours, theirs = net.gradients(X, y), keras_backends.gradients(model, X, one_hot(y))
    print(f"{keras_backends.current_backend()}: gradients' largest relative difference "
          f"{max(np.abs(ours[k] - theirs[k]).max() / np.abs(theirs[k]).max() for k in ours):.3g}")
    for name in my_net.PARAMETER_NAMES:
        scale = np.abs(theirs[name]).max()
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-5 * scale, err_msg=name)


class LastBatchOverBatchSize(my_net.NeuralNetwork):
    """A deliberately wrong my_net: the short last batch's gradient is averaged over batch_size."""

    batch_size = BATCH

    def output_delta(self, P, y):
        return super().output_delta(P, y) * np.float32(len(y) / self.batch_size)


def paired_weight_difference(mnist_subset, net_class=my_net.NeuralNetwork, my_lr=0.1, lr=0.1,
                             optimizer="sgd", **options) -> tuple[float, dict, my_net.NeuralNetwork]:
    """Train both nets paired (same initial weights, same batches) and return the largest absolute
    weight difference, the final metrics of both, and the trained net."""
    X, y, X_test, y_test = mnist_subset
    settings = OptimizerSettings(optimizer, **options)
    net = net_class(784, HIDDEN, lr=my_lr if optimizer == "sgd" else lr, seed=SEED, optimizer=settings)
    twin = keras_net.KerasNet(784, HIDDEN, lr=lr, optimizer=settings)
    twin.set_weights(net.get_weights())
    net.fit(X, y, BATCH, EPOCHS, rng=np.random.default_rng(SEED))
    twin.fit(X, y, BATCH, EPOCHS, np.random.default_rng(SEED))
    difference = max(float(np.abs(a - b).max()) for a, b in zip(net.get_weights(), twin.get_weights(), strict=True))
    metrics = {"my": net.evaluate(X_test, y_test), "keras": twin.evaluate(X_test, y_test)}
    return difference, metrics, net


def test_paired_training_leaves_both_nets_with_the_same_weights(mnist_subset):
    difference, metrics, _ = paired_weight_difference(mnist_subset)
    print(f"{keras_backends.current_backend()}: paired max |weight difference| = {difference:.3g}, metrics {metrics}")
    assert difference < WEIGHT_TOLERANCE
    for ours, theirs in zip(metrics["my"], metrics["keras"], strict=True):
        assert ours == pytest.approx(theirs, abs=METRIC_TOLERANCE)


def test_paired_training_skipping_zero_pixels_leaves_the_same_weights(mnist_subset, monkeypatch):
    """my_net skips the pixels a batch has at zero in fits long enough to pay (pixels.py); forced here."""
    monkeypatch.setattr(my_net, "worth_renumbering", lambda *fit: True)
    difference, metrics, net = paired_weight_difference(mnist_subset)
    share = net.describe()["first_layer_share"]
    print(f"{keras_backends.current_backend()} skipping zero pixels ({share} of the first layer's work): "
          f"paired max |weight difference| = {difference:.3g}")
    assert share < 0.9
    assert difference < WEIGHT_TOLERANCE
    for ours, theirs in zip(metrics["my"], metrics["keras"], strict=True):
        assert ours == pytest.approx(theirs, abs=METRIC_TOLERANCE)


@pytest.mark.parametrize("optimizer,lr,options", [("momentum", 0.1, {"momentum": 0.9}),
                                                  ("adam", 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7})])
def test_paired_training_with_momentum_and_adam_leaves_the_same_weights(mnist_subset, optimizer, lr, options):
    """Measured after 2 epochs: momentum max 3.3e-7; Adam max 1.2e-7 once its bias correction is computed
    from float32 betas as Keras does (with exact betas every Adam step was 6.6e-6 larger, 1.9e-4 in all)."""
    difference, metrics, _ = paired_weight_difference(mnist_subset, lr=lr, optimizer=optimizer, **options)
    print(f"{keras_backends.current_backend()} {optimizer}: paired max |weight difference| = {difference:.3g}, "
          f"metrics {metrics}")
    assert difference < WEIGHT_TOLERANCE
    for ours, theirs in zip(metrics["my"], metrics["keras"], strict=True):
        assert ours == pytest.approx(theirs, abs=METRIC_TOLERANCE)


@pytest.mark.parametrize("variant", ["learning rate 1% larger", "last batch averaged over batch_size"])
def test_paired_tolerance_catches_a_changed_net(mnist_subset, variant):
    if variant == "learning rate 1% larger":
        difference, *_ = paired_weight_difference(mnist_subset, my_lr=0.101)
    else:
        difference, *_ = paired_weight_difference(mnist_subset, LastBatchOverBatchSize)
    print(f"{keras_backends.current_backend()} {variant}: max |weight difference| = {difference:.3g}")
    assert difference > 20 * WEIGHT_TOLERANCE


def test_paired_results_of_the_two_modules_agree(mnist_subset):
    options = {"seed": SEED, "data": mnist_subset, "paired": True}
    mine = runner.fit_and_test(my_net.NeuralNetwork, HIDDEN, BATCH, EPOCHS, 0.1, **options)
    theirs = runner.fit_and_test(keras_net.KerasNet, HIDDEN, BATCH, EPOCHS, 0.1, **options)
    for field in ("test_loss", "test_accuracy", "train_loss", "train_accuracy"):
        assert getattr(mine, field) == pytest.approx(getattr(theirs, field), abs=METRIC_TOLERANCE), field
    np.testing.assert_allclose(mine.history["loss"], theirs.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(mine.history["accuracy"], theirs.history["accuracy"], atol=1e-6)
    assert mine.confusion == theirs.confusion


def test_a_huge_learning_rate_is_reported_as_divergence(mnist_subset):
    # 1e20: at lr 1e10 TensorFlow's loss goes NaN, but on JAX and PyTorch Keras' clipped cross-entropy stays
    # finite (13.0 and 13.6) with weights near 1e10, a useless net that is not, by definition, diverged.
    result = runner.fit_and_test(keras_net.KerasNet, 32, 128, 3, 1e20, seed=0, data=mnist_subset)
    assert result.status == "diverged" and result.diverged_epoch == 1
    assert math.isnan(result.test_accuracy)


def test_a_keras_run_prints_no_tensorflow_start_up_noise():
    code = ("import keras_net, read_mnist, numpy as np; d = read_mnist.load_data();"
            "r = keras_net.fit_and_test_net_on_MNIST(8, 512, 1, 0.1, seed=0, data=tuple(a[:2000] for a in d));"
            "print(r.status)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
    assert out.stderr == "", out.stderr


@pytest.mark.slow
def test_unpaired_nets_reach_95_percent_and_agree_within_a_point(mnist):
    mine = runner.fit_and_test(my_net.NeuralNetwork, 128, 128, 5, 0.1, seed=1, data=mnist)
    theirs = runner.fit_and_test(keras_net.KerasNet, 128, 128, 5, 0.1, seed=2, data=mnist)
    assert mine.test_accuracy >= 0.95 and theirs.test_accuracy >= 0.95
    assert abs(mine.test_accuracy - theirs.test_accuracy) <= 0.01
