"""`--check`'s comparisons of one step, or one pass, from identical weights: the forward pass and its loss,
the gradients (against the exact reference and finite differences), one update, and a softmax that must
survive logits of 1e4. Each is measured against exact float64 arithmetic with Keras' float32 distance from
it as the yardstick (measure.py), and each names the formula a difference points to.

Not for: the checks that train (runs.py) or their order (checks.py).
"""

from __future__ import annotations

import math

import numpy as np

from mnist_compare.check.exact import ExactNet
from mnist_compare.check.measure import Measured, Reference, following, largest_gaps, measured
from mnist_compare.check.tolerances import FINITE_DIFFERENCE_TOLERANCE, FORWARD_FLOOR, GRADIENT_FLOOR, STEP_FLOOR
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


def forward_check(net: object, ref: Reference, weights: list[np.ndarray], X: np.ndarray, y: np.ndarray,
                  seed: int) -> Check:
    """With identical weights whose biases are not zero: predict(X) (n, 10) against the exact probabilities,
    then the loss train_on_batch reports (before its step) against the exact loss on the same batch."""
    weights = with_biases(weights, seed)
    ours = probabilities(net, weights, X)
    ref.set_weights(weights)
    exact = ref.exact.predict(X)
    if ours.shape != exact.shape:
        return verdict("forward", False, f"predict shape {ours.shape}", f"{exact.shape}",
                       f"predict returns shape {ours.shape}; it must be (n, {NUM_CLASSES}), a row per example")
    theirs = ref.each_sample(X, y, lambda twin, Xo, yo: np.asarray(twin.predict(Xo), np.float64))
    theirs = [unpermuted(P, order) for P, order in zip(theirs, ref.orders(len(y)), strict=True)]
    shown = measured([ours], [[P] for P in theirs], [exact], FORWARD_FLOOR, largest_gaps)
    if not shown.passed:
        return with_share(verdict("forward", False, shown.describe("predict", ["P"]), shown.tolerance(),
                                  forward_diagnosis(net, ref.twins[0], weights, X, ours, theirs[0])), shown.share)
    net.set_weights([w.copy() for w in weights])
    loss = float(net.train_on_batch(X, y))
    ref.set_weights(weights)
    exact_loss = ref.exact.train_on_batch(X, y)
    twin_losses = ref.each_sample(X, y, lambda twin, Xo, yo: float(twin.train_on_batch(Xo, yo)))
    losses = measured([np.float64(loss)], [[np.float64(v)] for v in twin_losses], [np.float64(exact_loss)],
                      FORWARD_FLOOR)
    return with_share(verdict("forward", losses.passed, f"{shown.describe('predict', ['P'])}; "
                              f"{losses.describe('loss (relative)', ['loss'])}",
                              f"{shown.tolerance()}; {losses.tolerance()}", loss_diagnosis(loss, exact_loss, len(y))),
                      max(shown.share, losses.share))


def with_share(check: Check, share: float) -> Check:
    """The check with its largest distance as a share of its bound in its details (results files, calibration)."""
    check.details["share_of_bound"] = float(share)
    return check


def unpermuted(P: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The rows of P, computed for X[order], put back in X's order."""
    back = np.empty_like(P)
    back[order] = P
    return back


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


def diagnose(ours: list[np.ndarray], theirs: list[np.ndarray], what: str, n: int, batch_size: int,
             shown: Measured, gradient: list[np.ndarray] | None = None) -> str:
    """Why `ours` differs from the exact `theirs` ([W1, b1, W2, b2] updates or gradients; Keras' in float64),
    in one line that never contradicts the verdict: a factor is named only when it is further from 1 than the
    bound allows."""
    a = np.concatenate([np.ravel(x) for x in ours]).astype(np.float64)
    b = np.concatenate([np.ravel(x) for x in theirs]).astype(np.float64)
    factor = float(a @ b / (b @ b))
    if np.abs(a - factor * b).max() <= 1e-3 * np.abs(b).max() and abs(factor - 1) > shown.bound:
        if math.isclose(factor, n, rel_tol=1e-3) and n > 1:
            return f"{what} are {factor:.4g} = n times Keras': the loss is summed over the batch, not averaged"
        if math.isclose(factor, n / batch_size, rel_tol=1e-3) and n != batch_size:
            return (f"{what} are {factor:.4g} = {n}/{batch_size} of Keras': the batch of {n} is averaged over "
                    f"batch_size {batch_size}, not over its own size")
        if math.isclose(factor, -1, rel_tol=1e-3):
            return f"{what} have the wrong sign: a step must go against the gradient"
        return f"{what} are {factor:.6g} times Keras': the learning rate is off by {100 * (factor - 1):+.2f}%"
    worst = shown.worst
    name = PARAMETER_NAMES[worst]
    part = [np.ravel(ours[worst]).astype(np.float64), np.ravel(theirs[worst]).astype(np.float64)]
    own_factor = float(part[0] @ part[1] / max(part[1] @ part[1], 1e-300))
    hint = where_it_differs(part, shown.bound, name, what, None if gradient is None else gradient[worst],
                            abs(own_factor - 1) <= shown.bound)
    if hint:
        return hint
    sign = " (its sign is flipped)" if math.isclose(own_factor, -1, rel_tol=1e-3) else ""
    fine = [PARAMETER_NAMES[i] for i, e in enumerate(shown.net) if e <= shown.bound]
    return (f"{name} differs most (relative error {shown.net[worst]:.3g}){sign}; "
            f"{', '.join(fine) or 'no parameter'} match{'es' * (len(fine) == 1)}: check the gradient of {name}")


def where_it_differs(part: list[np.ndarray], bound: float, name: str, what: str, gradient: np.ndarray | None,
                     as_a_whole: bool) -> str | None:
    """The elements of one parameter past the bound, when they have a tiny gradient in common (Adam's eps) or
    the parameter matches as a whole (factor 1 within the bound); None when neither says more than 'check
    the gradient'."""
    ours, exact = part
    scale = max(np.abs(exact).max(), 1e-30)
    off = np.abs(ours - exact) > bound * scale
    line = (f"{what} of {name} differ from Keras' at {int(off.sum()):,} of {off.size:,} elements, by up to "
            f"{np.abs(ours - exact).max() / scale:.2g} of the largest")
    if gradient is not None and off.any() and grows_as_the_gradient_shrinks(ours, exact, np.ravel(gradient)):
        return (f"{line}, the most where |gradient| is smallest: is Adam's eps added to sqrt(v), with the bias "
                "correction in the step size as Keras does, and not to sqrt(v_hat)?")
    if as_a_whole:
        return f"{line}, while they match as a whole (factor 1 within the bound): an element-wise formula differs " \
               "(a clip, a threshold, an eps)?"
    return None


def grows_as_the_gradient_shrinks(ours: np.ndarray, exact: np.ndarray, gradient: np.ndarray) -> bool:
    """Whether the elements that differ most (the worst tenth of those with a gradient) have gradients ten
    times smaller than the typical one: the pattern of an eps added in another place."""
    g = np.abs(gradient)
    moving = g > 0
    if moving.sum() < 10:
        return False
    gaps = np.abs(ours - exact)[moving]
    worst = np.argsort(gaps)[-max(1, moving.sum() // 10):]
    return bool(np.median(g[moving][worst]) < 0.1 * np.median(g[moving]))


def update(model: object, weights: list[np.ndarray], X: np.ndarray, y: np.ndarray, **like: list) -> list[np.ndarray]:
    """What one train_on_batch on X, y changes in each parameter, starting from `weights`, in float64 (`like`:
    the net's result, for the exact net's ties)."""
    model.set_weights([w.copy() for w in weights])
    model.train_on_batch(X, y, **like)
    return [np.asarray(after, np.float64) - before for after, before in zip(model.get_weights(), weights, strict=True)]


def step_check(name: str, net: object, ref: Reference, weights: list, X: np.ndarray, y: np.ndarray,
               batch_size: int) -> Check:
    """One train_on_batch from identical weights on X (n, d), y (n,): its updates against the exact ones (ReLU's
    ties broken as the net broke them; the float32 formulas' as the exact run did)."""
    ref.exact.set_weights(weights)
    gradient = ref.exact.gradients(X, y)
    ours = update(net, weights, X, y)
    exact = update(ref.exact, weights, X, y, like=(weights, moved(weights, ours)))
    like = (weights, moved(weights, exact))
    theirs = ref.each_sample(X, y, lambda model, Xo, yo: update(model, weights, Xo, yo, **following(model, like)))
    shown = measured(ours, theirs, exact, STEP_FLOOR)
    return with_share(verdict(name, shown.passed, shown.describe("relative error"), shown.tolerance(),
                              diagnose(ours, exact, "the updates", len(y), batch_size, shown, gradient)), shown.share)


def moved(weights: list[np.ndarray], changes: list[np.ndarray]) -> list[np.ndarray]:
    return [w + change for w, change in zip(weights, changes, strict=True)]


def gradients_check(net: object, ref: Reference, weights: list, X: np.ndarray, y: np.ndarray,
                    batch_size: int) -> Check:
    """net.gradients(X, y) against the exact gradients (Keras' autodiff in float32 as the yardstick) and
    against central finite differences of the net's own loss (from predict), on identical weights and batch."""
    net.set_weights([w.copy() for w in weights])
    ref.set_weights(weights)
    grads = net.gradients(X, y)
    grads = [grads[name] for name in PARAMETER_NAMES] if isinstance(grads, dict) else grads  # my_net keys them by name
    ours = [np.asarray(g, np.float64) for g in grads]
    exact = ref.exact.gradients(X, y, like=ours)
    autodiff = ref.each_sample(X, y, lambda model, Xo, yo: gradients_of(model, Xo, yo, exact))
    shown = measured(ours, autodiff, exact, GRADIENT_FLOOR)
    versus_fd = finite_difference_error(net, weights, X, y, ours)
    passed = shown.passed and versus_fd <= FINITE_DIFFERENCE_TOLERANCE
    diagnosis = diagnose(ours, exact, "the gradients", len(y), batch_size, shown) if not shown.passed \
        else f"the gradients disagree with finite differences of the net's own loss ({versus_fd:.3g})"
    check = verdict("gradients", passed, f"{shown.describe('relative error')}; {versus_fd:.3g} vs finite differences",
                    f"{shown.tolerance()}; {FINITE_DIFFERENCE_TOLERANCE:g}", diagnosis)
    return with_share(check, max(shown.share, versus_fd / FINITE_DIFFERENCE_TOLERANCE))


def gradients_of(model: object, X: np.ndarray, y: np.ndarray, exact: list[np.ndarray]) -> list[np.ndarray]:
    """A float32 sample's gradients: the Keras twin's autodiff, or the float32 formulas' own (ReLU's ties broken
    as in the `exact` gradients)."""
    if isinstance(model, ExactNet):
        return model.gradients(X, y, like=exact)
    return list(keras_backends.gradients(model.model, X, one_hot(y)).values())


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


