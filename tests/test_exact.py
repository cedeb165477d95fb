"""The exact reference of --check (check/exact.py) is Keras in float64: the same predictions, loss and weights
after every step as a Keras model built with floatx float64 (in a process of its own: floatx is global)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_compare.check.exact import loss_and_gradients

ROOT = Path(__file__).resolve().parents[1]
KERAS_FLOAT64 = """
import json, sys
import numpy as np
import keras
keras.config.set_floatx("float64")
from mnist_compare.check.exact import ExactNet
from mnist_compare.data import idx
from mnist_compare.nets.keras_net import make_optimizer
from mnist_compare.nets.optimizers import initial_weights
from mnist_compare.records.spec import OptimizerSettings

optimizer, lr, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
X, y, _, _ = idx.load_data()
settings = OptimizerSettings(optimizer)
weights = [w.astype(np.float64) for w in initial_weights(np.random.default_rng(0), (784, 32, 10))]
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=make_optimizer(settings, lr), loss="categorical_crossentropy")
model.set_weights(weights)
exact = ExactNet(lr, settings)
exact.set_weights(weights)
gaps = []
for step in range(steps):
    batch = slice(128 * step, 128 * step + 128)
    model.reset_metrics()  # Keras before 3.13 returns the mean loss since the last reset: this batch's loss
    theirs = float(model.train_on_batch(X[batch].astype(np.float64), np.eye(10)[y[batch]]))
    ours = exact.train_on_batch(X[batch], y[batch])
    weight_gap = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(exact.get_weights(),
                                                                                  model.get_weights()))
    gaps.append({"loss": abs(ours - theirs), "weights": weight_gap})
P = model.predict(X[:256].astype(np.float64), verbose=0)
print(json.dumps({"gaps": gaps, "predict": float(np.abs(exact.predict(X[:256]) - P).max())}))
"""


@pytest.mark.parametrize("optimizer,lr,steps", [("sgd", 0.1, 5), ("momentum", 0.1, 5), ("adam", 0.001, 5),
                                                ("adam", 0.1, 5)])
def test_the_exact_reference_equals_keras_in_float64(optimizer, lr, steps):
    """Keras on TensorFlow, its default backend. Adam at lr 0.1 saturates after one step (rows with P[i, y_i]
    below 1e-7): with Keras' clip in the reference its second step parted from Keras by 0.17."""
    out = subprocess.run([sys.executable, "-c", KERAS_FLOAT64, optimizer, str(lr), str(steps)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(measured["gaps"]) == steps
    assert all(gap["weights"] < 1e-13 and gap["loss"] < 1e-13 for gap in measured["gaps"]), measured
    assert measured["predict"] < 1e-13


def test_the_exact_gradients_are_central_differences_of_the_exact_loss():
    rng = np.random.default_rng(1)
    weights = [rng.normal(0, 0.1, shape) for shape in ((20, 6), (6,), (6, 10), (10,))]
    X, y = rng.random((8, 20)), rng.integers(0, 10, 8)
    _, grads = loss_and_gradients(weights, X, y)
    for index, grad in enumerate(grads):
        direction = rng.standard_normal(grad.shape)
        changed = [[w.copy() for w in weights] for _ in range(2)]
        changed[0][index] += 1e-6 * direction
        changed[1][index] -= 1e-6 * direction
        numeric = (loss_and_gradients(changed[0], X, y)[0] - loss_and_gradients(changed[1], X, y)[0]) / 2e-6
        assert numeric == pytest.approx(float(np.sum(grad * direction)), rel=1e-6, abs=1e-10)


def test_a_certain_and_wrong_row_keeps_its_full_gradient_as_in_keras_on_tensorflow():
    """Keras on TensorFlow takes the softmax's logits (no clip): a row whose P[i, y_i] is ~1e-44 costs its logit
    gap of 100 and keeps its gradient (P - Y) / n; a certain and right row costs ~0."""
    weights = [np.zeros((2, 1)), np.ones(1), np.array([[50.0, -50.0] + [0.0] * 8]), np.zeros(10)]
    X, y = np.ones((2, 2)), np.array([0, 1])  # row 0 is certain and right, row 1 certain and wrong
    loss, grads = loss_and_gradients(weights, X, y)
    assert loss == pytest.approx(100 / 2, rel=1e-12)
    assert grads[3][:2] == pytest.approx([0.5, -0.5], abs=1e-12)  # row 1's P - Y = [1, -1, 0...], over n = 2


def tied_problem():
    """Weights and a batch where example 0's pre-activation at hidden unit 2 is 0 up to float64 round-off (a
    tie: float32 puts it on either side), the other pre-activations far from 0."""
    rng = np.random.default_rng(3)
    X = rng.random((6, 20)).astype(np.float32)
    weights = [rng.normal(0, 0.3, (20, 4)), np.full(4, 0.5), rng.normal(0, 0.3, (4, 10)), np.zeros(10)]
    weights[1][2] = -float(X[0].astype(np.float64) @ weights[0][:, 2])
    return weights, X, rng.integers(0, 10, 6)


def flipped_gradients(weights, X, y):
    """The gradients of a net that broke the tie the other way: example 0's gradient passes unit 2's ReLU iff
    the exact one does not."""
    from mnist_compare.check.exact import backward

    result = backward(weights, X, y)
    sign = -1.0 if result.Z1[0, 2] > 0 else 1.0
    grads = [g.copy() for g in result.grads]
    grads[0][:, 2] += sign * X[0] * result.dH[0, 2]
    grads[1][2] += sign * result.dH[0, 2]
    return grads


def same(ours: list, theirs: list) -> bool:
    return all(np.allclose(a, b, rtol=0, atol=1e-15) for a, b in zip(ours, theirs, strict=True))


def test_the_exact_gradients_break_a_relu_tie_as_the_net_did_and_nothing_else():
    from mnist_compare.check.exact import ExactNet
    from mnist_compare.records.spec import OptimizerSettings

    weights, X, y = tied_problem()
    exact = ExactNet(0.1, OptimizerSettings("sgd"))
    exact.set_weights(weights)
    plain, other = exact.gradients(X, y), flipped_gradients(weights, X, y)
    assert np.abs(other[0][:, 2] - plain[0][:, 2]).max() > 1e-3  # the other way is a real difference
    assert same(exact.gradients(X, y, like=other), other) and same(exact.gradients(X, y, like=plain), plain)
    elsewhere = [g.copy() for g in plain]
    elsewhere[0][:, 1] += 0.01  # a difference at a unit without a tie is the net's, never absorbed
    assert all(np.array_equal(a, b) for a, b in zip(exact.gradients(X, y, like=elsewhere), plain, strict=True))


def test_the_exact_adam_step_breaks_a_relu_tie_as_the_net_did():
    """Adam turns the tie's small change of the gradient into a step of up to lr: the exact step follows the
    net's way, and only at the tied unit."""
    from mnist_compare.check.exact import ExactNet
    from mnist_compare.records.spec import OptimizerSettings

    weights, X, y = tied_problem()
    settings = OptimizerSettings("adam")
    net = ExactNet(0.001, settings)  # stands for a net that broke the tie the other way
    net.set_weights(weights)
    net.state, net.t = [[np.zeros_like(w) for w in weights] for _ in range(2)], 1
    other = flipped_gradients(weights, X, y)
    after = [w + net.update(i, g) for i, (w, g) in enumerate(zip(weights, other, strict=True))]
    plain = ExactNet(0.001, settings)
    plain.set_weights(weights)
    plain.train_on_batch(X, y)
    assert np.abs(plain.get_weights()[0][:, 2] - after[0][:, 2]).max() > 1e-4
    following = ExactNet(0.001, settings)
    following.set_weights(weights)
    following.train_on_batch(X, y, like=(weights, after))
    assert same(following.get_weights(), after)
