"""The exact reference of `--check`: the network and its optimisers in float64, by Keras' formulas, so that a
check can measure how far a net is from exact arithmetic and how far Keras' float32 twin is.

    Z1 = X W1 + b1      H = relu(Z1)      Z2 = H W2 + b2      P = softmax(Z2)
    L  = -(1/n) sum_i log clip(P[i, y_i], eps, 1 - eps),  eps = 1e-7 (Keras' categorical cross-entropy)
    dZ2 = (P - Y) / n on the rows whose P[i, y_i] is inside the clip, 0 on the others (the clip's derivative)
    dW2 = H^T dZ2   db2 = sum_i dZ2   dZ1 = (dZ2 W2^T) [Z1 > 0]   dW1 = X^T dZ1   db1 = sum_i dZ1

SGD w <- w - lr g; momentum v <- m v - lr g, w <- w + v; Adam m <- m + (g - m)(1 - b1), v <- v + (g^2 - v)
(1 - b2), w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps): Keras 3's, computed in float64 with the
momentum and the betas of the powers as Keras casts them, from float32 (float32(0.999) is 0.99900001: 6.6e-6 of
every Adam step). tests/test_exact.py proves it equal to Keras with floatx float64 (within 1e-13).
Not for: training runs.
"""

from __future__ import annotations

import numpy as np

from mnist_compare.records.spec import NUM_CLASSES, OptimizerSettings

CLIP = 1e-7  # Keras' backend epsilon: the cross-entropy clips probabilities to [CLIP, 1 - CLIP]


def forward(weights: list[np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z1 (n, h), H (n, h), P (n, c) for X (n, d) and weights [W1, b1, W2, b2], in the weights' dtype."""
    W1, b1, W2, b2 = weights
    Z1 = np.asarray(X, W1.dtype) @ W1 + b1
    H = np.maximum(Z1, 0)
    Z2 = H @ W2 + b2
    Z2 -= Z2.max(axis=1, keepdims=True)
    E = np.exp(Z2)
    return Z1, H, E / E.sum(axis=1, keepdims=True)


def loss_and_gradients(weights: list[np.ndarray], X: np.ndarray,
                       y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The mean clipped cross-entropy on X (n, d), y (n,) and its gradients [dW1 (d, h), db1 (h,), dW2 (h, c),
    db2 (c,)], in the weights' dtype (float64 for the reference)."""
    X = np.asarray(X, weights[0].dtype)
    Z1, H, P = forward(weights, X)
    n, rows = len(y), np.arange(len(y))
    chosen = P[rows, y]
    inside = (chosen > CLIP) & (chosen < 1 - CLIP)
    loss = float(-np.mean(np.log(np.clip(chosen, CLIP, 1 - CLIP))))
    Y = np.eye(NUM_CLASSES, dtype=X.dtype)[y]
    dZ2 = (P - Y) / X.dtype.type(n) * inside[:, None]
    dZ1 = (dZ2 @ weights[2].T) * (Z1 > 0)
    return loss, [X.T @ dZ1, dZ1.sum(axis=0), H.T @ dZ2, dZ2.sum(axis=0)]


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

    def gradients(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        return loss_and_gradients(self.weights, X, y)[1]

    def train_on_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        loss, grads = loss_and_gradients(self.weights, X, y)
        if not self.state:
            self.state = [[np.zeros_like(w) for w in self.weights] for _ in range(2)]
        self.t += 1
        for index, g in enumerate(grads):
            self.weights[index] += self.update(index, g)
        return loss

    def update(self, index: int, g: np.ndarray) -> np.ndarray:
        """The change of parameter `index` for gradient g, by the optimiser's formula (its state updated). The
        constants Keras casts to the variable's dtype (momentum, Adam's betas in its powers) reach it as float32
        (as32); the others are exact."""
        s = self.settings
        if s.name == "sgd":
            return -self.lr * g
        first, second = self.state[0][index], self.state[1][index]
        if s.name == "momentum":
            first *= as32(s.momentum)
            first -= self.lr * g
            return first.copy()
        first += (g - first) * (1 - s.beta_1)
        second += (g * g - second) * (1 - s.beta_2)
        alpha = self.dtype(self.lr * np.sqrt(1 - as32(s.beta_2) ** self.t) / (1 - as32(s.beta_1) ** self.t))
        return -alpha * first / (np.sqrt(second) + s.epsilon)


def as32(value: float) -> float:
    """A Python number as Keras' ops.cast receives it, a float32 constant (float32(0.9) is 0.89999998)."""
    return float(np.float32(value))
