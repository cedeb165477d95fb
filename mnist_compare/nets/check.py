"""`--check`: verify a network (a user's, or my_net) against its Keras twin, and name the mistake.

Each check returns a Check(name, status, measured, tolerance, diagnosis); a FAIL's diagnosis is one line
that says what is wrong in the terms of the formulas (a factor of the learning rate, a loss summed instead
of averaged, the parameter whose gradient differs). The tolerances are the test suite's, stated beside the
figure they came from. Not for: training runs (runs/runner.py) or the command line (main.py).
"""

from __future__ import annotations

import math

import numpy as np

from mnist_compare.nets.check_record import FAIL, INTERRUPTED, Check, verdict
from mnist_compare.nets.check_runs import determinism_check, trajectory_check
from mnist_compare.nets.check_steps import forward_check, gradients_check, stability_check, step_check
from mnist_compare.nets.contract import construct
from mnist_compare.nets.user_net import REQUIRED_METHODS, described, users_code, weight_shapes
from mnist_compare.records.mnist import Dataset
from mnist_compare.records.optimizers import TRUNCATED_NORMAL_STDDEV, initial_weights
from mnist_compare.records.shutdown import Interrupted
from mnist_compare.records.spec import NUM_CLASSES, PARAMETER_NAMES, RunSpec

__all__ = ["CHECK_NAMES", "Check", "run_checks"]
# The order of the table: the forward pass before anything that steps, single steps before what trains longer.
CHECK_NAMES = ("interface", "initialisation", "forward", "gradients", "single step", "short batch", "batch of one",
               "stability", "determinism", "trajectory")
INIT_NAMES = {"glorot_uniform": "Glorot-uniform", "glorot_normal": "Glorot-normal", "he_normal": "He-normal"}


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


def settings_of(spec: RunSpec) -> dict:
    """What every check of a command ran with, recorded in each check's entry of the results file."""
    settings = {key: value for key, value in spec.hyperparameters().items() if key != "number_epochs"}
    return {**settings, "seed": spec.seed}


def run_checks(spec: RunSpec, data: Dataset, twin_class: type) -> list[Check]:
    """Every check of spec.net against twin_class (the Keras twin), in CHECK_NAMES' order, each with spec's
    settings (the optimiser and initialiser included, for nets that take them); a check whose code raises
    fails with the exception as its diagnosis, and the rest still run. Each check that steps builds its nets
    afresh, so that an optimiser's state (momentum, Adam's moments and step count) starts from zero in each.
    `gradients` runs only for a net that has a gradients method."""
    d = data[0].shape[1]
    try:
        with users_code():
            first, net = interface_check(spec, d)
    except Exception as err:
        first, net = Check("interface", FAIL, "raised", "builds", f"raised {described(err)}"), None
    later = [name for name in CHECK_NAMES[1:] if name != "gradients" or callable(getattr(spec.net, "gradients", None))]
    if net is None:
        checks = [first, *(Check(name, FAIL, "not run", "", "not run: the interface check failed") for name in later)]
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

    def build(seed: int = spec.seed) -> object:
        return construct(spec.net, spec, d, seed)

    def pair() -> tuple[object, object]:
        return build(), construct(twin_class, spec, d, spec.seed)

    runs = {"initialisation": lambda: initialisation_check(spec, d),
            "forward": lambda: forward_check(*pair(), weights, X, y, spec.seed),
            "gradients": lambda: gradients_check(*pair(), weights, X, y, batch),
            "single step": lambda: step_check("single step", *pair(), weights, X, y, batch),
            "short batch": lambda: step_check("short batch", *pair(), weights, X[:short], y[:short], batch),
            "batch of one": lambda: step_check("batch of one", *pair(), weights, X[:1], y[:1], batch),
            "stability": lambda: stability_check(build(), d, spec.hidden_size),
            "determinism": lambda: determinism_check(build, spec.seed, data[0], data[1], batch),
            "trajectory": lambda: trajectory_check(spec, *pair(), data)}
    checks = []
    for index, name in enumerate(names):
        try:
            with users_code():
                checks.append(runs[name]())
        except Interrupted as signal:
            return checks + [Check(rest, INTERRUPTED, "not run", "", f"stopped by {signal}") for rest in names[index:]]
        except Exception as err:
            checks.append(Check(name, FAIL, "raised", "", f"raised {described(err)}{RAISED_HINTS.get(name, '')}"))
    return pointed_to_the_first_failure(checks)


def pointed_to_the_first_failure(checks: list[Check]) -> list[Check]:
    """A failed trajectory after another failed check: where the runs part, then the check to start from
    (the other failure explains it; the trajectory's own guesses would mislead)."""
    failed = [c.name for c in checks if c.status == FAIL and c.name != "trajectory"]
    for check in checks:
        if check.name == "trajectory" and check.status == FAIL and failed:
            where = check.diagnosis.split(":")[0]
            check.diagnosis = f"{where}: the {failed[0]} check failed first, start there"
    return checks


RAISED_HINTS = {"batch of one": " on a batch of one example (X of shape (1, 784)): np.squeeze, or an index or "
                                "sum that drops the batch axis, breaks a batch of one?"}
