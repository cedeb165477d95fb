"""`--check`: verify a network (a user's, or my_net) against its Keras twin, and name the mistake.

Each check returns a Check(name, status, measured, tolerance, diagnosis); a FAIL's diagnosis is one line
that says what is wrong in the terms of the formulas (a factor of the learning rate, a loss summed instead
of averaged, the parameter whose gradient differs). The tolerances are the test suite's, stated beside the
figure they came from. Not for: training runs (runs/runner.py) or the command line (main.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from mnist_compare.nets import keras_backends
from mnist_compare.nets.contract import BatchLoop, construct
from mnist_compare.nets.user_net import REQUIRED_METHODS, described, users_code, weight_shapes
from mnist_compare.records.mnist import Dataset, one_hot
from mnist_compare.records.optimizers import TRUNCATED_NORMAL_STDDEV, initial_weights
from mnist_compare.records.shutdown import Interrupted
from mnist_compare.records.spec import NUM_CLASSES, PARAMETER_NAMES, RunSpec

STEP_TOLERANCE = 1e-4  # relative, one step from identical weights: my_net measured 2e-7; a 1% lr slip is 1e-2
GRADIENT_TOLERANCE = 1e-4  # relative, against the backend's autodiff: measured 2.4e-7 to 3.0e-7
# relative, float32 central differences along directions: my_net at hidden 32 over 2,400 seeds had a median of
# 1e-3 and a tail to 9.6e-3, and one CI run drew a seed at 1.09e-2 (1e-2 failed my_net); a wrong gradient is 0.5-2
FINITE_DIFFERENCE_TOLERANCE = 2e-2
WEIGHT_TOLERANCE = 2e-6  # absolute, after the paired trajectory: measured 1.2e-7 (tests/test_keras_net.py)
LOSS_TOLERANCE = 1e-5
INTERRUPTED = "INTERRUPTED"
INIT_NAMES = {"glorot_uniform": "Glorot-uniform", "glorot_normal": "Glorot-normal", "he_normal": "He-normal"}


@dataclass
class Check:
    """One row of the check table; status is PASS, FAIL, or INTERRUPTED (a stop signal came first)."""

    name: str
    status: str
    measured: str
    tolerance: str
    diagnosis: str = ""
    settings: dict = field(default_factory=dict)  # what the check ran with: sizes, lr, optimiser, init, seed

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(name: str, passed: bool, measured: str, tolerance: str, diagnosis: str) -> Check:
    return Check(name, "PASS" if passed else "FAIL", measured, tolerance, "" if passed else diagnosis)


def interface_check(spec: RunSpec, d: int) -> tuple[Check, object | None]:
    """The methods exist, the class builds as Net(d, h, c, lr, seed), get_weights() has the right shapes."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(spec.net, m, None))]
    expected = weight_shapes(d, spec.hidden_size)
    if missing:
        return verdict("interface", False, f"missing {', '.join(missing)}", "4 methods", "add the missing "
                       f"method{'s' * (len(missing) > 1)}: {', '.join(missing)}"), None
    net = construct(spec.net, spec, d, spec.seed)
    shapes = [tuple(np.shape(w)) for w in net.get_weights()]
    return verdict("interface", shapes == expected, f"shapes {shapes}", f"{expected}",
                   f"get_weights() must return [W1 {expected[0]}, b1 {expected[1]}, W2 {expected[2]}, "
                   f"b2 {expected[3]}], Keras' layout"), net


def kernel_distribution(init: str, fan_in: int, fan_out: int) -> tuple[float, float, float]:
    """(std, bound, relative standard error of a sample std times sqrt(size)) of Keras' `init` kernels:
    glorot_uniform is U(-a, a), a = sqrt(6 / (fan_in + fan_out)); glorot_normal and he_normal are normals
    truncated at 2 of their parameter s, whose std is 0.8796 s = sqrt(2 / (fan_in + fan_out)) or sqrt(2 / fan_in).
    The standard error of a sample std is sqrt((kurtosis - 1) / 4n): 0.447 / sqrt(n) for a uniform, 0.584 / sqrt(n)
    for a normal truncated at 2 s (scipy.stats moments)."""
    if init == "glorot_uniform":
        limit = math.sqrt(6 / (fan_in + fan_out))
        return limit / math.sqrt(3), limit, 0.447
    std = math.sqrt(2 / (fan_in + fan_out)) if init == "glorot_normal" else math.sqrt(2 / fan_in)
    return std, 2 * std / TRUNCATED_NORMAL_STDDEV, 0.584


def initialisation_check(spec: RunSpec, d: int) -> Check:
    """Two seeds' initial weights against spec.init's distribution (Glorot-uniform by default): bounds, mean
    and std within sampling error (4 standard errors), zero biases, different draws for different seeds."""
    nets = [construct(spec.net, spec, d, seed) for seed in (0, 1)]
    problems, worst = [], 0.0
    for weights in (net.get_weights() for net in nets):
        for name, w in zip(PARAMETER_NAMES, weights, strict=True):
            w = np.asarray(w, np.float64)
            if name.startswith("b"):
                if np.any(w):
                    problems.append(f"{name} is not zero (max |{name}| {np.abs(w).max():.3g})")
                continue
            std, limit, spread = kernel_distribution(spec.init, *w.shape)
            error = spread / math.sqrt(w.size)  # the relative standard error of the sample std
            deviation = abs(w.std() / std - 1) / error
            worst = max(worst, deviation)
            if np.abs(w).max() > limit * (1 + 1e-6) or deviation > 4 or abs(w.mean()) > 4 * std / math.sqrt(w.size):
                problems.append(f"{name}: std {w.std():.4f}, mean {w.mean():.2g}, max |{name}| {np.abs(w).max():.4f}; "
                                f"{INIT_NAMES[spec.init]} has std {std:.4f}, mean 0, |{name}| <= {limit:.4f}")
    if np.array_equal(nets[0].get_weights()[0], nets[1].get_weights()[0]):
        problems.append("seeds 0 and 1 give the same W1: draw from a generator seeded with `seed`")
    return verdict("initialisation", not problems, f"std within {worst:.1f} standard errors", "4 standard errors",
                   "; ".join(dict.fromkeys(problems)))


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


def trajectory_check(spec: RunSpec, net: object, twin: object, data: Dataset) -> Check:
    """The paired run of the tests: identical initial weights and batch order, 2 epochs on 6,000 images with
    a short last batch; final weights within WEIGHT_TOLERANCE and final losses within LOSS_TOLERANCE."""
    X, y = data[0][:6000], data[1][:6000]
    weights = initial_weights(np.random.default_rng(spec.seed), (X.shape[1], spec.hidden_size, NUM_CLASSES),
                              spec.init)
    for model in (net, twin):
        model.set_weights([w.copy() for w in weights])
    with np.errstate(all="ignore"):
        BatchLoop(net, spec.seed).fit(X, y, spec.batch_size, 2, np.random.default_rng(spec.seed), None)
    twin.fit(X, y, spec.batch_size, 2, np.random.default_rng(spec.seed))
    difference = max(float(np.abs(np.asarray(a, np.float64) - b).max()) for a, b in zip(net.get_weights(),
                                                                                      twin.get_weights(), strict=True))
    losses = mean_loss(net, X, y), mean_loss(twin, X, y)
    passed = difference <= WEIGHT_TOLERANCE and abs(losses[0] - losses[1]) <= LOSS_TOLERANCE
    return verdict("trajectory", passed, f"weights {difference:.3g} apart, losses {losses[0]:.6f} / {losses[1]:.6f}",
                   f"{WEIGHT_TOLERANCE:g}, {LOSS_TOLERANCE:g}", "the paired runs part: see the first failed check "
                   "above, or a step that depends on more than the batch (a random order of its own?)")


def settings_of(spec: RunSpec) -> dict:
    """What every check of a command ran with, recorded in each check's entry of the results file."""
    settings = {key: value for key, value in spec.hyperparameters().items() if key != "number_epochs"}
    return {**settings, "seed": spec.seed}


def run_checks(spec: RunSpec, data: Dataset, twin_class: type) -> list[Check]:
    """Every check of spec.net against twin_class (the Keras twin), in order, each with spec's settings (the
    optimiser and initialiser included, for nets that take them); a check whose code raises fails with the
    exception as its diagnosis, and the rest still run. Each check that steps builds its nets afresh, so
    that an optimiser's state (momentum, Adam's moments and step count) starts from zero in each."""
    d = data[0].shape[1]
    try:
        with users_code():
            first, net = interface_check(spec, d)
    except Exception as err:
        first, net = Check("interface", "FAIL", "raised", "builds", f"raised {described(err)}"), None
    later = ["initialisation", *["gradients"] * callable(getattr(spec.net, "gradients", None)), "single step",
             "short batch", "stability", "trajectory"]
    if net is None:
        checks = [first, *(Check(name, "FAIL", "not run", "", "not run: the interface check failed") for name in later)]
    else:
        checks = [first, *run_later_checks(later, spec, data, twin_class)]
    for check in checks:
        check.settings = settings_of(spec)
    return checks


def run_later_checks(names: list[str], spec: RunSpec, data: Dataset, twin_class: type) -> list[Check]:
    """The checks after `interface`, each on fresh nets; an exception of any kind from the net's code is that
    check's FAIL, and a stop signal marks the check it interrupted and the rest INTERRUPTED."""
    d, batch = data[0].shape[1], spec.batch_size
    X, y = data[0][:batch], data[1][:batch]
    short = max(1, batch * 3 // 4)
    weights = initial_weights(np.random.default_rng(spec.seed), (d, spec.hidden_size, NUM_CLASSES), spec.init)

    def pair() -> tuple[object, object]:
        return construct(spec.net, spec, d, spec.seed), construct(twin_class, spec, d, spec.seed)

    runs = {"initialisation": lambda: initialisation_check(spec, d),
            "gradients": lambda: gradients_check(*pair(), weights, X, y, batch),
            "single step": lambda: step_check("single step", *pair(), weights, X, y, batch),
            "short batch": lambda: step_check("short batch", *pair(), weights, X[:short], y[:short], batch),
            "stability": lambda: stability_check(construct(spec.net, spec, d, spec.seed), d, spec.hidden_size),
            "trajectory": lambda: trajectory_check(spec, *pair(), data)}
    checks = []
    for index, name in enumerate(names):
        try:
            with users_code():
                checks.append(runs[name]())
        except Interrupted as signal:
            return checks + [Check(rest, INTERRUPTED, "not run", "", f"stopped by {signal}") for rest in names[index:]]
        except Exception as err:
            checks.append(Check(name, "FAIL", "raised", "", f"raised {described(err)}"))
    return checks
