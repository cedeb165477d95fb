"""Correct networks written differently from my_net and from each other, for bench/calibrate.py: each must
pass every check (a false FAIL on any of them is a bound too tight). All take --optimizer (SGD, momentum and
Adam by Keras' formulas, written here without my_net's code) and draw Glorot-uniform kernels.

    Float64Net      every array in float64 (closer to exact arithmetic than Keras' float32)
    TransposedNet   kernels kept transposed, (h, d) and (c, h); products written the other way round
    LoopNet         gradients summed one example at a time in float32
    LibrarySoftmax  scipy.special's softmax and log_softmax, the loss from its log probabilities
"""

from __future__ import annotations

import numpy as np
from scipy import special

from mnist_compare.records.spec import OptimizerSettings


class KerasOptimizer:
    """SGD, momentum and Adam as Keras 3 writes them, over a list of parameters, in their own dtype."""

    def __init__(self, lr: float, settings: OptimizerSettings | None) -> None:
        self.lr, self.s, self.t, self.m, self.v = lr, settings or OptimizerSettings(), 0, None, None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        if self.m is None:
            self.m, self.v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            dtype = p.dtype.type
            if self.s.name == "sgd":
                p -= dtype(self.lr) * g
            elif self.s.name == "momentum":
                m[...] = dtype(self.s.momentum) * m - dtype(self.lr) * g
                p += m
            else:
                m += (g - m) * dtype(1 - self.s.beta_1)
                v += (g * g - v) * dtype(1 - self.s.beta_2)
                b1, b2 = dtype(self.s.beta_1) ** dtype(self.t), dtype(self.s.beta_2) ** dtype(self.t)
                alpha = dtype(self.lr) * np.sqrt(dtype(1) - b2) / (dtype(1) - b1)
                p -= alpha * m / (np.sqrt(v) + dtype(self.s.epsilon))


def glorot(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: type = np.float32) -> np.ndarray:
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


class Float64Net:
    """Everything in float64; get_weights returns float64 arrays."""

    def __init__(self, input_size, hidden_size, output_size, lr, seed, optimizer=None):
        rng = np.random.default_rng(seed)
        self.params = [glorot(rng, input_size, hidden_size, np.float64), np.zeros(hidden_size),
                       glorot(rng, hidden_size, output_size, np.float64), np.zeros(output_size)]
        self.opt = KerasOptimizer(lr, optimizer)

    def get_weights(self):
        return [p.copy() for p in self.params]

    def set_weights(self, weights):
        self.params = [np.array(w, np.float64) for w in weights]

    def logits(self, X):
        W1, b1, W2, b2 = self.params
        Z1 = np.asarray(X, np.float64) @ W1 + b1
        return Z1, np.maximum(Z1, 0), np.maximum(Z1, 0) @ W2 + b2

    def predict(self, X):
        Z2 = self.logits(X)[2]
        E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    def gradients(self, X, y):
        Z1, H, _ = self.logits(X)
        P = self.predict(X)
        dZ2 = (P - np.eye(P.shape[1])[y]) / len(y)
        dZ1 = dZ2 @ self.params[2].T * (Z1 > 0)
        return [np.asarray(X, np.float64).T @ dZ1, dZ1.sum(0), H.T @ dZ2, dZ2.sum(0)]

    def train_on_batch(self, X, y):
        P = self.predict(X)
        loss = -np.mean(np.log(np.clip(P[np.arange(len(y)), y], 1e-7, 1)))
        self.opt.step(self.params, self.gradients(X, y))
        return float(loss)


class TransposedNet:
    """Kernels stored transposed: V1 = W1^T (h, d), V2 = W2^T (c, h); Z1 = X V1^T, dV1 = dZ1^T X."""

    def __init__(self, input_size, hidden_size, output_size, lr, seed, optimizer=None):
        rng = np.random.default_rng(seed)
        W1, W2 = glorot(rng, input_size, hidden_size), glorot(rng, hidden_size, output_size)
        self.params = [np.ascontiguousarray(W1.T), np.zeros(hidden_size, np.float32),
                       np.ascontiguousarray(W2.T), np.zeros(output_size, np.float32)]
        self.opt = KerasOptimizer(lr, optimizer)

    def get_weights(self):
        V1, b1, V2, b2 = self.params
        return [V1.T.copy(), b1.copy(), V2.T.copy(), b2.copy()]

    def set_weights(self, weights):
        W1, b1, W2, b2 = (np.asarray(w, np.float32) for w in weights)
        self.params = [np.ascontiguousarray(W1.T), b1.copy(), np.ascontiguousarray(W2.T), b2.copy()]

    def forward(self, X):
        V1, b1, V2, b2 = self.params
        Z1 = (V1 @ X.T).T + b1
        H = np.maximum(Z1, 0)
        Z2 = (V2 @ H.T).T + b2
        Z2 = Z2 - Z2.max(axis=1, keepdims=True)
        P = np.exp(Z2)
        return Z1, H, P / P.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.forward(X)[2]

    def train_on_batch(self, X, y):
        Z1, H, P = self.forward(X)
        loss = float(-np.mean(np.log(np.maximum(P[np.arange(len(y)), y], 1e-7))))
        dZ2 = P.copy()
        dZ2[np.arange(len(y)), y] -= 1
        dZ2 /= len(y)
        dZ1 = (dZ2 @ self.params[2]) * (Z1 > 0)
        self.opt.step(self.params, [dZ1.T @ X, dZ1.sum(0), dZ2.T @ H, dZ2.sum(0)])
        return loss


class LoopNet(TransposedNet):
    """TransposedNet's forward pass, with the gradients summed one example at a time in float32."""

    def train_on_batch(self, X, y):
        Z1, H, P = self.forward(X)
        loss = float(-np.mean(np.log(np.maximum(P[np.arange(len(y)), y], 1e-7))))
        grads = [np.zeros_like(p) for p in self.params]
        for i in range(len(y)):
            dz2 = P[i].copy()
            dz2[y[i]] -= 1
            dz2 /= np.float32(len(y))
            dz1 = (dz2 @ self.params[2]) * (Z1[i] > 0)
            grads[0] += np.outer(dz1, X[i])
            grads[1] += dz1
            grads[2] += np.outer(dz2, H[i])
            grads[3] += dz2
        self.opt.step(self.params, grads)
        return loss


class LibrarySoftmax(Float64Net):
    """scipy.special's softmax and log_softmax in float32; the loss from the log probabilities."""

    def __init__(self, input_size, hidden_size, output_size, lr, seed, optimizer=None):
        super().__init__(input_size, hidden_size, output_size, lr, seed, optimizer)
        self.set_weights(self.params)

    def set_weights(self, weights):
        self.params = [np.array(w, np.float32) for w in weights]

    def logits(self, X):
        W1, b1, W2, b2 = self.params
        Z1 = X @ W1 + b1
        return Z1, np.maximum(Z1, 0), np.maximum(Z1, 0) @ W2 + b2

    def predict(self, X):
        return special.softmax(self.logits(X)[2], axis=1)

    def gradients(self, X, y):
        Z1, H, Z2 = self.logits(X)
        dZ2 = (special.softmax(Z2, axis=1) - np.eye(Z2.shape[1], dtype=np.float32)[y]) / np.float32(len(y))
        dZ1 = dZ2 @ self.params[2].T * (Z1 > 0)
        return [X.T @ dZ1, dZ1.sum(0), H.T @ dZ2, dZ2.sum(0)]

    def train_on_batch(self, X, y):
        log_P = special.log_softmax(self.logits(X)[2], axis=1)
        loss = float(-np.mean(log_P[np.arange(len(y)), y]))
        self.opt.step(self.params, self.gradients(X, y))
        return loss


VARIANTS = (Float64Net, TransposedNet, LoopNet, LibrarySoftmax)


class SlippedLearningRate(TransposedNet):
    """A bug for the calibration: the learning rate 0.5 % too large, under every optimiser."""

    def __init__(self, input_size, hidden_size, output_size, lr, seed, optimizer=None):
        super().__init__(input_size, hidden_size, output_size, lr * 1.005, seed, optimizer)


class TextbookAdam(TransposedNet):
    """Not Keras' Adam: the textbook's m_hat / (sqrt(v_hat) + eps), whose eps is sqrt(1 - b2^t) times Keras'
    relative to the update; it differs only where |gradient| is near eps."""

    def __init__(self, input_size, hidden_size, output_size, lr, seed, optimizer=None):
        super().__init__(input_size, hidden_size, output_size, lr, seed, optimizer)
        self.opt = TextbookOptimizer(lr, optimizer)


class TextbookOptimizer(KerasOptimizer):
    def step(self, params, grads):
        if self.s.name != "adam":
            return super().step(params, grads)
        self.t += 1
        if self.m is None:
            self.m, self.v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            f = p.dtype.type
            m += (g - m) * f(1 - self.s.beta_1)
            v += (g * g - v) * f(1 - self.s.beta_2)
            m_hat = m / (f(1) - f(self.s.beta_1) ** f(self.t))
            v_hat = v / (f(1) - f(self.s.beta_2) ** f(self.t))
            p -= f(self.lr) * m_hat / (np.sqrt(v_hat) + f(self.s.epsilon))
