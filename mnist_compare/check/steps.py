"""`--check`'s comparisons of one step, or one pass, against the Keras twin from identical weights: the forward
pass and its loss, the gradients (against autodiff and finite differences), one update, and a softmax
that must survive logits of 1e4; each names the formula a difference points to.

Not for: the checks that train (runs.py) or their order (checks.py).
"""

from __future__ import annotations

import math

import numpy as np

from mnist_compare.check.tolerances import (
    FINITE_DIFFERENCE_TOLERANCE,
    FORWARD_TOLERANCE,
    GRADIENT_TOLERANCE,
    STEP_TOLERANCE,
)
from mnist_compare.data.idx import one_hot
from mnist_compare.nets import keras_backends
from mnist_compare.records.check import Check, verdict
from mnist_compare.records.spec import NUM_CLASSES, PARAMETER_NAMES

FORWARD_BIAS_SCALES = (0.5, 1.0)  # b1 ~ U(-0.5, 0.5), b2 ~ U(-1, 1): both move Z1's ReLU pattern and the softmax


def with_biases(weights: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """[W1, b1, W2, b2] with non-zero biases drawn for `seed`, so that a forward pass that drops one shows."""
    rng = np.random.default_rng(seed)
    W1, b1, W2, b2 = (w.copy() for w in weights)
    b1 = rng.uniform(-FORWARD_BIAS_SCALES[0], FORWARD_BIAS_SCALES[0], b1.shape).astype(np.float32)
    b2 = rng.uniform(-FORWARD_BIAS_SCALES[1], FORWARD_BIAS_SCALES[1], b2.shape).astype(np.float32)
    return [W1, b1, W2, b2]


def probabilities(model: object, weights: list[np.ndarray], X: np.ndarray) -> np.ndarray:
    model.set_weights([w.copy() for w in weights])
    return np.asarray(model.predict(X), np.float64)


def forward_check(net: object, twin: object, weights: list[np.ndarray], X: np.ndarray, y: np.ndarray,
                  seed: int) -> Check:
    """With identical weights whose biases are not zero: predict(X) (n, 10) against the Keras twin's, then the
    loss train_on_batch reports (before its step) against Keras' loss on the same batch."""
    weights = with_biases(weights, seed)
    ours, theirs = probabilities(net, weights, X), probabilities(twin, weights, X)
    if ours.shape != theirs.shape:
        return verdict("forward", False, f"predict shape {ours.shape}", f"{theirs.shape}",
                       f"predict returns shape {ours.shape}; it must be (n, {NUM_CLASSES}), a row per example")
    difference = float(np.abs(ours - theirs).max())
    if not difference <= FORWARD_TOLERANCE:
        return verdict("forward", False, f"predict {difference:.3g} from Keras'", f"{FORWARD_TOLERANCE:g}",
                       forward_diagnosis(net, twin, weights, X, ours, theirs))
    losses = []
    for model in (net, twin):
        model.set_weights([w.copy() for w in weights])
        losses.append(float(model.train_on_batch(X, y)))
    error = abs(losses[0] - losses[1]) / max(abs(losses[1]), 1e-30)
    return verdict("forward", error <= FORWARD_TOLERANCE,
                   f"predict {difference:.3g} from Keras', loss {error:.3g} (relative)",
                   f"{FORWARD_TOLERANCE:g}, {FORWARD_TOLERANCE:g}", loss_diagnosis(*losses, len(y)))


def forward_diagnosis(net: object, twin: object, weights: list[np.ndarray], X: np.ndarray, ours: np.ndarray,
                      theirs: np.ndarray) -> str:
    """Which part of the forward pass differs: the softmax's axis, a bias left out, or something else."""
    rows, columns = ours.sum(axis=1), ours.sum(axis=0)
    if not np.allclose(rows, 1, atol=1e-4):
        where = " (its columns do: axis=0)" if np.allclose(columns, 1, atol=1e-4) else ""
        return (f"predict's rows sum to {rows.min():.4g}..{rows.max():.4g}, not 1{where}: softmax normalised over "
                "the wrong axis? Normalise each row: sum(axis=1, keepdims=True)")
    for index, name in ((1, "b1"), (3, "b2")):
        changed = [w.copy() for w in weights]
        changed[index] = np.zeros_like(changed[index])
        if np.allclose(probabilities(net, changed, X), ours, atol=1e-7) and \
                not np.allclose(probabilities(twin, changed, X), theirs, atol=1e-7):
            return f"predict does not change with {name}: the bias {name} is not added?"
    return (f"predict differs from Keras' by up to {np.abs(ours - theirs).max():.3g} with the same weights: check "
            "Z1 = X W1 + b1, H = relu(Z1), Z2 = H W2 + b2, P = softmax(Z2) row by row")


def loss_diagnosis(ours: float, theirs: float, n: int) -> str:
    if math.isclose(ours, n * theirs, rel_tol=1e-4) and n > 1:
        return f"the loss is {ours:.6g} = n times Keras' {theirs:.6g}: it is summed over the batch, not averaged"
    return (f"predict matches Keras' but the loss train_on_batch returns is {ours:.6g}, Keras' {theirs:.6g}: the "
            "loss is not the mean cross-entropy -(1/n) sum log P[i, y_i]?")


def relative_errors(ours: list[np.ndarray], theirs: list[np.ndarray]) -> list[float]:
    """max |a - b| / max |b| per parameter (b the reference)."""
    return [float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))
            for a, b in zip(ours, theirs, strict=True)]


def diagnose(ours: list[np.ndarray], theirs: list[np.ndarray], what: str, n: int, batch_size: int) -> str:
    """Why `ours` differs from Keras' `theirs` ([W1, b1, W2, b2] updates or gradients), in one line."""
    a = np.concatenate([np.ravel(x) for x in ours]).astype(np.float64)
    b = np.concatenate([np.ravel(x) for x in theirs]).astype(np.float64)
    factor = float(a @ b / (b @ b))
    if np.abs(a - factor * b).max() <= 1e-3 * np.abs(b).max():
        if math.isclose(factor, n, rel_tol=1e-3) and n > 1:
            return f"{what} are {factor:.4g} = n times Keras': the loss is summed over the batch, not averaged"
        if math.isclose(factor, n / batch_size, rel_tol=1e-3) and n != batch_size:
            return (f"{what} are {factor:.4g} = {n}/{batch_size} of Keras': the batch of {n} is averaged over "
                    f"batch_size {batch_size}, not over its own size")
        if math.isclose(factor, -1, rel_tol=1e-3):
            return f"{what} have the wrong sign: a step must go against the gradient"
        return f"{what} are {factor:.6g} times Keras': the learning rate is off by {100 * (factor - 1):+.2f}%"
    errors = relative_errors(ours, theirs)
    worst = int(np.argmax(errors))
    part = [np.ravel(ours[worst]).astype(np.float64), np.ravel(theirs[worst]).astype(np.float64)]
    own_factor = float(part[0] @ part[1] / max(part[1] @ part[1], 1e-300))
    sign = " (its sign is flipped)" if math.isclose(own_factor, -1, rel_tol=1e-3) else ""
    fine = [PARAMETER_NAMES[i] for i, e in enumerate(errors) if e < STEP_TOLERANCE]
    name = PARAMETER_NAMES[worst]
    return (f"{name} differs most (relative error {errors[worst]:.3g}){sign}; "
            f"{', '.join(fine) or 'no parameter'} match{'es' * (len(fine) == 1)}: check the gradient of {name}")


def step_check(name: str, net: object, twin: object, weights: list, X: np.ndarray, y: np.ndarray,
               batch_size: int) -> Check:
    """One train_on_batch from identical weights on X (n, d), y (n,) against Keras' step: the updates."""
    updates = []
    for model in (net, twin):
        model.set_weights([w.copy() for w in weights])
        model.train_on_batch(X, y)
        updates.append([np.asarray(after, np.float64) - before for after, before in zip(model.get_weights(), weights,
                                                                                       strict=True)])
    error = max(relative_errors(*updates))
    return verdict(name, error <= STEP_TOLERANCE, f"relative error {error:.3g}", f"{STEP_TOLERANCE:g}",
                   diagnose(*updates, "the updates", len(y), batch_size))


def gradients_check(net: object, twin: object, weights: list, X: np.ndarray, y: np.ndarray,
                    batch_size: int) -> Check:
    """net.gradients(X, y) against central finite differences of its own loss (from predict) and against
    the Keras twin's autodiff, on identical weights and batch."""
    net.set_weights([w.copy() for w in weights])
    twin.set_weights([w.copy() for w in weights])
    grads = net.gradients(X, y)
    grads = [grads[name] for name in PARAMETER_NAMES] if isinstance(grads, dict) else grads  # my_net keys them by name
    ours = [np.asarray(g, np.float64) for g in grads]
    autodiff = list(keras_backends.gradients(twin.model, X, one_hot(y)).values())
    versus_keras = max(relative_errors(ours, autodiff))
    versus_fd = finite_difference_error(net, weights, X, y, ours)
    passed = versus_keras <= GRADIENT_TOLERANCE and versus_fd <= FINITE_DIFFERENCE_TOLERANCE
    diagnosis = diagnose(ours, autodiff, "the gradients", len(y), batch_size) if versus_keras > GRADIENT_TOLERANCE \
        else f"the gradients disagree with finite differences of the net's own loss ({versus_fd:.3g})"
    return verdict("gradients", passed, f"{versus_keras:.3g} vs Keras' autodiff, {versus_fd:.3g} vs finite "
                   "differences", f"{GRADIENT_TOLERANCE:g}, {FINITE_DIFFERENCE_TOLERANCE:g}", diagnosis)


def mean_loss(net: object, X: np.ndarray, y: np.ndarray) -> float:
    P = np.asarray(net.predict(X), np.float64)
    return float(-np.mean(np.log(np.maximum(P[np.arange(len(y)), y], 1e-30))))


def finite_difference_error(net: object, weights: list, X: np.ndarray, y: np.ndarray, grads: list,
                            step: float = 1e-3) -> float:
    """Largest relative error, |FD - g.u| / |g|, of each parameter's gradient g against central differences
    (L(w + h u) - L(w - h u)) / 2h of the net's own loss along unit directions u: g's own and two random
    ones. Directions instead of single entries keep float32 round-off small against |g|."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for index, grad in enumerate(grads):
        norm = max(float(np.linalg.norm(grad)), 1e-12)
        randoms = [rng.standard_normal(grad.shape) for _ in range(2)]
        for direction in [grad / norm, *(r / np.linalg.norm(r) for r in randoms)]:
            values = []
            for sign in (1, -1):
                changed = [w.copy() for w in weights]
                changed[index] = (changed[index] + sign * step * direction).astype(weights[index].dtype)
                net.set_weights(changed)
                values.append(mean_loss(net, X, y))
            worst = max(worst, abs((values[0] - values[1]) / (2 * step) - float(np.sum(grad * direction))) / norm)
    net.set_weights([w.copy() for w in weights])
    return worst


def stability_check(net: object, d: int, hidden: int) -> Check:
    """Logits of magnitude 1e4, set through the weights: predict stays finite and normalised, the loss finite."""
    W1, b1 = np.zeros((d, hidden), np.float32), np.zeros(hidden, np.float32)
    b1[0] = 1.0  # hidden unit 0 is 1 for every input, the others 0
    W2, b2 = np.zeros((hidden, NUM_CLASSES), np.float32), np.zeros(NUM_CLASSES, np.float32)
    W2[0, :3] = [1e4, -1e4, 0.0]
    net.set_weights([W1, b1, W2, b2])
    X, y = np.zeros((4, d), np.float32), np.array([0, 1, 2, 3])
    with np.errstate(all="ignore"):
        P = np.asarray(net.predict(X), np.float64)
        loss = float(net.train_on_batch(X, y))
    finite = bool(np.isfinite(P).all()) and math.isfinite(loss)
    normalised = finite and bool(np.allclose(P.sum(axis=1), 1, atol=1e-5))
    return verdict("stability", normalised, f"predict {'finite' if finite else 'not finite'}, loss {loss:.4g}",
                   "finite, rows sum to 1", "softmax overflows for logits of 1e4: subtract the row maximum before "
                   "exp, and take the log of the softmax as Z - max - log sum exp(Z - max)")


