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
    theirs = float(model.train_on_batch(X[batch].astype(np.float64), np.eye(10)[y[batch]]))
    ours = exact.train_on_batch(X[batch], y[batch])
    weight_gap = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(exact.get_weights(),
                                                                                  model.get_weights()))
    gaps.append({"loss": abs(ours - theirs), "weights": weight_gap})
P = model.predict(X[:256].astype(np.float64), verbose=0)
print(json.dumps({"gaps": gaps, "predict": float(np.abs(exact.predict(X[:256]) - P).max())}))
"""


@pytest.mark.parametrize("optimizer,lr,steps", [("sgd", 0.1, 5), ("momentum", 0.1, 5), ("adam", 0.001, 5),
                                                ("adam", 0.1, 1)])
def test_the_exact_reference_equals_keras_in_float64(optimizer, lr, steps):
    """Measured: 3e-16 (sgd), 3e-16 (momentum), 1e-15 (adam at lr 0.001 over 5 steps), 5e-14 (adam at lr 0.1,
    one step; its second step parts because Adam at lr 0.1 moves weights whose gradient is ~1e-16 by lr)."""
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


def test_a_row_whose_probability_is_clipped_gets_no_gradient_as_in_keras():
    """Keras' cross-entropy clips P to [1e-7, 1 - 1e-7]: a row at the clip contributes no gradient."""
    weights = [np.zeros((2, 1)), np.ones(1), np.array([[50.0, -50.0] + [0.0] * 8]), np.zeros(10)]
    X, y = np.ones((2, 2)), np.array([0, 1])  # row 0 is certain and right, row 1 certain and wrong: both clipped
    loss, grads = loss_and_gradients(weights, X, y)
    assert all(not g.any() for g in grads) and loss == pytest.approx(-(np.log(1 - 1e-7) + np.log(1e-7)) / 2)
