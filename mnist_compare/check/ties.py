"""ReLU's ties: pre-activations so close to 0 that float32 may put them on either side, and the other ways
of breaking them, so that the exact reference can break each tie as the net did.

relu'(z) jumps from 0 to 1 at z = 0. A float32 net computes z[e, j] = X[e] . W1[:, j] + b1[j] within

    reach[e, j] = gamma_d (|X[e]| . |W1[:, j]| + |b1[j]|) + |X[e]| . |W1'[:, j] - W1[:, j]| + |b1'[j] - b1[j]|

of the exact value, gamma_d = d u / (1 - d u), u = 2^-24 (Higham's bound on a float32 dot product of length d
in any summation order), W1', b1' the net's own weights. A pair with |z| <= reach is a tie: a correct float32
net breaks it either way. The other way changes column j of dW1 by +-X[e] dH[e, j] and db1[j] by +-dH[e, j]
(dH = dZ2 W2^T, the gradient at H): a small change of the gradient, which Adam's m / (sqrt(v) + eps) turns
into a step of up to lr where that example is the column's only contribution. Measured: my_net, hidden 64,
batch 100, seed 2, adam at lr 0.001, step 6 of the trajectory: z = +3.5e-7 exact and -1.8e-8 in my_net's
float32 (reach 1.4e-4); W1 then 5.2e-5 from exact at 30 weights of unit 34, where float32's six samples,
which all broke the tie as exact did, stayed within 1.2e-7.

Not for: choosing among the ways (exact.py does, by the net's result).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

UNIT_ROUNDOFF = 2.0 ** -24  # float32's u
MAX_TIES = 4  # a column's ties tried in every combination up to this many (2^4 ways); beyond, one at a time and all

Change = tuple[np.ndarray, float]  # (change of dW1[:, j] (d,), change of db1[j])


def reach(X: np.ndarray, weights: list[np.ndarray], near: list[np.ndarray] | None = None) -> np.ndarray:
    """(n, h): how far float32 can put each pre-activation of X (n, d) from its exact value (the module's
    formula), with the net's weights `near` (None: the same as `weights`)."""
    W1, b1 = weights[0], weights[1]
    d = X.shape[1]
    gamma = d * UNIT_ROUNDOFF / (1 - d * UNIT_ROUNDOFF)
    absX = np.abs(np.asarray(X, np.float64))
    width = gamma * (absX @ np.abs(W1) + np.abs(b1))
    if near is not None:
        width += absX @ np.abs(np.asarray(near[0], np.float64) - W1) + np.abs(np.asarray(near[1], np.float64) - b1)
    return width


def other_ways(X: np.ndarray, Z1: np.ndarray, dH: np.ndarray, width: np.ndarray) -> dict[int, list[Change]]:
    """Per hidden unit j with ties (|Z1[e, j]| <= width[e, j]): the change to (dW1[:, j], db1[j]) of every
    other way of breaking them than the exact one (z > 0 passes the gradient). X (n, d), Z1, dH, width (n, h)."""
    tied = np.abs(Z1) <= width
    ways = {}
    for j in np.flatnonzero(tied.any(axis=0)):
        rows = np.flatnonzero(tied[:, j])
        terms = np.where(Z1[rows, j] > 0, -1.0, 1.0) * dH[rows, j]  # flipping drops a row passed, adds one stopped
        ways[int(j)] = [(np.asarray(X[rows[chosen]], np.float64).T @ terms[chosen], float(terms[chosen].sum()))
                        for chosen in flips(len(rows))]
    return ways


def flips(k: int) -> Iterator[np.ndarray]:
    """Which of k ties to flip: every non-empty combination up to MAX_TIES ties, else each alone and all."""
    if k <= MAX_TIES:
        for size in range(1, k + 1):
            for chosen in itertools.combinations(range(k), size):
                yield np.array(chosen)
        return
    for one in range(k):
        yield np.array([one])
    yield np.arange(k)
