"""Initialisers and optimisers for my_net, written to match Keras 3's formulas exactly.

Every update works in place on float32 arrays and overwrites the gradient buffer it is given.
Not for: anything framework-like; each optimiser is one small `step`.
"""

from __future__ import annotations

import math

import numpy as np

from mnist_compare.records.spec import INITIALIZERS, OPTIMIZERS, OptimizerSettings

Params = dict[str, np.ndarray]

# Keras' truncated normal keeps values within 2 standard deviations; dividing the wanted stddev by
# the stddev of a standard normal truncated to [-2, 2] restores the variance the truncation removes.
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


def initial_weights(rng: np.random.Generator, sizes: tuple[int, int, int],
                    init: str = "glorot_uniform") -> list[np.ndarray]:
    """[W1 (d, h), b1 (h,), W2 (h, c), b2 (c,)] float32: `init` kernels drawn from rng in that order, zero
    biases. my_net starts from these (rng seeded with its seed), and so do both nets of a paired run."""
    d, h, c = sizes
    W1 = init_kernel(rng, d, h, init)
    W2 = init_kernel(rng, h, c, init)
    return [W1, np.zeros(h, np.float32), W2, np.zeros(c, np.float32)]


def init_kernel(rng: np.random.Generator, fan_in: int, fan_out: int, kind: str = "glorot_uniform") -> np.ndarray:
    """A float32 (fan_in, fan_out) kernel drawn as Keras draws `kind`.

    glorot_uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out));
    glorot_normal:  truncated N(0, s^2), s = sqrt(2 / (fan_in + fan_out)) / 0.8796...;
    he_normal:      truncated N(0, s^2), s = sqrt(2 / fan_in) / 0.8796....
    """
    shape = (fan_in, fan_out)
    if kind == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if kind == "glorot_normal":
        return truncated_normal(rng, math.sqrt(2.0 / (fan_in + fan_out)) / TRUNCATED_NORMAL_STDDEV, shape)
    if kind == "he_normal":
        return truncated_normal(rng, math.sqrt(2.0 / fan_in) / TRUNCATED_NORMAL_STDDEV, shape)
    raise ValueError(f"unknown initializer {kind!r}; choose one of {', '.join(INITIALIZERS)}")


def truncated_normal(rng: np.random.Generator, stddev: float, shape: tuple[int, int]) -> np.ndarray:
    """N(0, stddev^2) samples redrawn until all lie within 2 stddev, as float32."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * stddev).astype(np.float32)


class SGD:
    """Plain SGD, w <- w - lr * g; with momentum m (Keras' form): v <- m v - lr g, w <- w + v."""

    def __init__(self, lr: float, momentum: float = 0.0):
        self.lr, self.momentum = np.float32(lr), np.float32(momentum)
        self.velocity: Params = {}

    def step(self, params: Params, grads: Params) -> None:
        for name, w in params.items():
            g = np.multiply(grads[name], self.lr, out=grads[name])
            if self.momentum:
                v = self.velocity.setdefault(name, np.zeros_like(w))
                v *= self.momentum
                v -= g
                w += v
            else:
                w -= g


class Adam:
    """Adam as Keras 3 computes it, at step t = 1, 2, ...:

    m <- m + (g - m)(1 - b1);  v <- v + (g^2 - v)(1 - b2);
    w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
    """

    def __init__(self, lr: float, beta_1: float, beta_2: float, epsilon: float):
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        self.t = 0
        self.m: Params = {}
        self.v: Params = {}

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        alpha = self.step_size(self.t)
        for name, w in params.items():
            g = grads[name]
            m = self.m.setdefault(name, np.zeros_like(w))
            v = self.v.setdefault(name, np.zeros_like(w))
            m += (g - m) * np.float32(1 - self.beta_1)
            v += (g * g - v) * np.float32(1 - self.beta_2)
            np.sqrt(v, out=g)
            g += np.float32(self.epsilon)
            np.divide(m, g, out=g)
            g *= alpha
            w -= g

    def step_size(self, t: int) -> np.float32:
        """lr sqrt(1 - b2^t) / (1 - b1^t), in float32 from float32 betas as Keras computes it: 1 - b2^t
        loses digits there (float32(0.999) is 0.99900001), a 6.6e-6 relative change in every step."""
        f = np.float32
        b1_power, b2_power = f(self.beta_1) ** f(t), f(self.beta_2) ** f(t)
        return f(self.lr) * np.sqrt(f(1) - b2_power) / (f(1) - b1_power)


def make_optimizer(settings: OptimizerSettings, lr: float) -> SGD | Adam:
    """The NumPy optimiser that `settings` name (one of OPTIMIZERS), at learning rate lr."""
    if settings.name == "sgd":
        return SGD(lr)
    if settings.name == "momentum":
        return SGD(lr, settings.momentum)
    if settings.name == "adam":
        return Adam(lr, settings.beta_1, settings.beta_2, settings.epsilon)
    raise ValueError(f"unknown optimizer {settings.name!r}; choose one of {', '.join(OPTIMIZERS)}")
