"""The exact reference of `--check`: the network and its optimisers in float64, by Keras' formulas, so that a
check can measure how far a net is from exact arithmetic and how far Keras' float32 twin is.

    Z1 = X W1 + b1      H = relu(Z1)      Z2 = H W2 + b2      P = softmax(Z2)
    L  = -(1/n) sum_i log P[i, y_i] = (1/n) sum_i (log sum_j exp Z2[i, j] - Z2[i, y_i])
    dZ2 = (P - Y) / n
    dW2 = H^T dZ2   db2 = sum_i dZ2   dZ1 = (dZ2 W2^T) [Z1 > 0]   dW1 = X^T dZ1   db1 = sum_i dZ1

SGD w <- w - lr g; momentum v <- m v - lr g, w <- w + v; Adam m <- m + (g - m)(1 - b1), v <- v + (g^2 - v)
(1 - b2), w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps): Keras 3's, computed in float64 with the
momentum and the betas of the powers as Keras casts them, from float32 (float32(0.999) is 0.99900001: 6.6e-6 of
every Adam step). tests/test_exact.py proves it equal to Keras with floatx float64 (within 1e-13).
The loss is the mathematics' and Keras' on TensorFlow, which takes the softmax's logits; Keras on JAX and
PyTorch clips P to [1e-7, 1 - 1e-7] and drops the rows outside from the gradient, which differs once a run
saturates (Adam at lr 0.1 from its second step: W1 0.17 apart at 7,543 weights, my_net with TensorFlow's).
Given the net's own result (`like`), it breaks ReLU's ties (pre-activations within float32's reach of 0,
ties.py) as the net did: both ways are what a correct float32 net computes.
Not for: training runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from mnist_compare.check.ties import Change, other_ways, reach
from mnist_compare.records.spec import NUM_CLASSES, OptimizerSettings


def logits(weights: list[np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z1 (n, h), H (n, h) and Z2 (n, c) shifted by its row maximum, for X (n, d) and weights [W1, b1, W2, b2],
    in the weights' dtype."""
    W1, b1, W2, b2 = weights
    Z1 = np.asarray(X, W1.dtype) @ W1 + b1
    H = np.maximum(Z1, 0)
    Z2 = H @ W2 + b2
    return Z1, H, Z2 - Z2.max(axis=1, keepdims=True)


def forward(weights: list[np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z1 (n, h), H (n, h), P (n, c) for X (n, d) and weights [W1, b1, W2, b2], in the weights' dtype."""
    Z1, H, Z2 = logits(weights, X)
    E = np.exp(Z2)
    return Z1, H, E / E.sum(axis=1, keepdims=True)


class Backward(NamedTuple):
    """One pass: the loss, the gradients [dW1 (d, h), db1 (h,), dW2 (h, c), db2 (c,)], and what a tie's other
    way needs: Z1 (n, h) and dH = dZ2 W2^T (n, h), the gradient at H."""

    loss: float
    grads: list[np.ndarray]
    Z1: np.ndarray
    dH: np.ndarray


def backward(weights: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> Backward:
    """The mean cross-entropy on X (n, d), y (n,) and its gradients, in the weights' dtype (float64 for the
    reference); the loss from the shifted logits, so a certain and wrong row costs its logit gap, never log 0."""
    X = np.asarray(X, weights[0].dtype)
    Z1, H, Z2 = logits(weights, X)
    E = np.exp(Z2)
    total = E.sum(axis=1, keepdims=True)
    P = E / total
    n = len(y)
    loss = float(np.mean(np.log(total[:, 0]) - Z2[np.arange(n), y]))
    Y = np.eye(NUM_CLASSES, dtype=X.dtype)[y]
    dZ2 = (P - Y) / X.dtype.type(n)
    dH = dZ2 @ weights[2].T
    dZ1 = dH * (Z1 > 0)
    return Backward(loss, [X.T @ dZ1, dZ1.sum(axis=0), H.T @ dZ2, dZ2.sum(axis=0)], Z1, dH)


def loss_and_gradients(weights: list[np.ndarray], X: np.ndarray,
                       y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The mean cross-entropy on X (n, d), y (n,) and its gradients [dW1, db1, dW2, db2]."""
    result = backward(weights, X, y)
    return result.loss, result.grads


class ExactNet:
    """The contract (train_on_batch, predict, get_weights, set_weights, gradients) in float64: the reference
    every numeric check measures against. Built from the weights it is given, never drawn."""

    def __init__(self, lr: float, optimizer: OptimizerSettings, dtype: type = np.float64) -> None:
        """`dtype` float32 makes it one more float32 implementation, a sample of float32's round-off."""
        self.lr, self.settings, self.dtype = dtype(lr), optimizer, dtype
        self.weights: list[np.ndarray] = []
        self.state: list[list[np.ndarray]] = []
        self.t = 0

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [np.array(w, self.dtype) for w in weights]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return forward(self.weights, X)[2]

    def gradients(self, X: np.ndarray, y: np.ndarray, like: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The gradients on X, y; with the net's own gradients `like`, ReLU's ties broken as the net broke them
        (per hidden unit, another way when its gradient is CLEARLY times nearer the net's than the exact way's)."""
        result = backward(self.weights, X, y)
        if like is not None:
            break_ties(result, X, reach(X, self.weights), lambda way, j, rows: column_gap(result.grads, way, like, j,
                                                                                         rows))
        return result.grads

    def train_on_batch(self, X: np.ndarray, y: np.ndarray,
                       like: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> float:
        """One step on X, y; with the net's weights before and after its own step (`like`), ReLU's ties broken
        as the net broke them (per hidden unit, another way when its new weights are CLEARLY times nearer the
        net's than the exact way's)."""
        result = backward(self.weights, X, y)
        if not self.state:
            self.state = [[np.zeros_like(w) for w in self.weights] for _ in range(2)]
        self.t += 1
        if like is not None:
            before, after = like
            break_ties(result, X, reach(X, self.weights, before),
                       lambda way, j, rows: self.column_distance(result.grads, way, after, j, rows))
        for index, g in enumerate(result.grads):
            self.weights[index] += self.update(index, g)
        return result.loss

    def column_distance(self, grads: list[np.ndarray], way: Change, after: list[np.ndarray], j: int,
                        rows: np.ndarray) -> float:
        """How far hidden unit j's weights that a way changes (W1[rows, j], b1[j]) would land from the net's
        `after` with the gradients changed by `way`, the optimiser's state left as it is."""
        gaps = []
        for index, column, change in ((0, np.s_[rows, j], on_rows(way[0], rows)), (1, np.s_[j:j + 1], way[1])):
            state = [s[index][column].copy() for s in self.state]
            new = self.weights[index][column] + self.change(grads[index][column] + change, *state)
            gaps.append(float(np.abs(new - np.asarray(after[index], np.float64)[column]).max()))
        return max(gaps)

    def update(self, index: int, g: np.ndarray) -> np.ndarray:
        """The change of parameter `index` for gradient g, its optimiser state updated."""
        return self.change(g, self.state[0][index], self.state[1][index])

    def change(self, g: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The change of a parameter (or part of one) for gradient g by the optimiser's formula, its state
        arrays (velocity; or Adam's first and second moments) updated in place. The constants Keras casts to
        the variable's dtype (momentum, Adam's betas in its powers) reach it as float32 (as32); the others are
        exact."""
        s = self.settings
        if s.name == "sgd":
            return -self.lr * g
        if s.name == "momentum":
            first *= as32(s.momentum)
            first -= self.lr * g
            return first.copy()
        first += (g - first) * (1 - s.beta_1)
        second += (g * g - second) * (1 - s.beta_2)
        alpha = self.dtype(self.lr * np.sqrt(1 - as32(s.beta_2) ** self.t) / (1 - as32(s.beta_1) ** self.t))
        return -alpha * first / (np.sqrt(second) + s.epsilon)


NO_CHANGE: Change = (np.zeros(1), 0.0)  # the exact way of breaking a unit's ties
CLEARLY = 10.0  # how much nearer the net's result another way must be (measured: 5e-5 against 1e-7 when it is)


def break_ties(result: Backward, X: np.ndarray, width: np.ndarray,
               distance: Callable[[Change, int, np.ndarray], float]) -> None:
    """Change result.grads, per hidden unit j with ties (|Z1| <= width), to the way of breaking them that
    clearly_nearest chooses by distance(way, j, rows), rows the inputs the ways change."""
    for j, ways in other_ways(X, result.Z1, result.dH, width).items():
        rows = touched(ways)
        apply(result.grads, clearly_nearest(ways, lambda way, j=j, rows=rows: distance(way, j, rows)), j)


def clearly_nearest(ways: list[Change], distance: Callable[[Change], float]) -> Change:
    """The way nearest the net's result when it is CLEARLY times nearer than the exact way; else the exact way.
    Adam's first steps are lr sign(g) whichever way a tie is broken, so the ways' weights are often equally
    near the net's while their moments differ: choosing among them by round-off would part the runs later."""
    exact = distance(NO_CHANGE)
    nearest = min(ways, key=distance)
    return nearest if CLEARLY * distance(nearest) < exact else NO_CHANGE


def apply(grads: list[np.ndarray], way: Change, j: int) -> None:
    """Change hidden unit j's gradients (dW1[:, j], db1[j]) by `way`, in place."""
    grads[0][:, j] += way[0]
    grads[1][j] += way[1]


def touched(ways: list[Change]) -> np.ndarray:
    """The rows of W1 (inputs) any of the ways changes: where the tied examples' pixels are lit. The ways are
    compared there alone, since elsewhere in the column they agree, and the column's largest gap may lie
    elsewhere (measured: a column 5.6e-3 from the net at one weight hid the 10x nearer way at the others)."""
    return np.flatnonzero(np.any([way[0] != 0 for way in ways], axis=0))


def on_rows(change: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return change[rows] if change.size > 1 else change


def column_gap(grads: list[np.ndarray], way: Change, like: list[np.ndarray], j: int, rows: np.ndarray) -> float:
    """How far hidden unit j's gradients on `rows` (and b1[j]'s), changed by `way`, are from the net's `like`."""
    return max(float(np.abs(grads[0][rows, j] + on_rows(way[0], rows) - np.asarray(like[0], np.float64)[rows, j])
                     .max(initial=0.0)),
               abs(float(grads[1][j] + way[1] - float(like[1][j]))))


def as32(value: float) -> float:
    """A Python number as Keras' ops.cast receives it, a float32 constant (float32(0.9) is 0.89999998)."""
    return float(np.float32(value))
