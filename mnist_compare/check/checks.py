"""`--check`: verify a network (a user's, or my_net) against its Keras twin, and name the mistake.

CHECKS is the one table of the checks, in the order of the table: the forward pass before anything that
steps, single steps before what trains longer. Each entry names its function, the method a net needs for it
beyond the contract, and its default weight in a grade; every list of check names (the table's rows,
Gradescope's tests, --check_weights' keys) is derived from it. Each check returns a Check(name, status,
measured, tolerance, diagnosis); a FAIL's diagnosis is one line that says what is wrong in the terms of the
formulas (a factor of the learning rate, a loss summed instead of averaged, the parameter whose gradient
differs). Not for: training runs (runs/runner.py) or the command line (cli/).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mnist_compare.check.exact import ExactNet
from mnist_compare.check.measure import Reference, make_reference
from mnist_compare.check.runs import determinism_check, trajectory_check
from mnist_compare.check.sandbox import SubmissionStopped, fresh_process
from mnist_compare.check.steps import forward_check, gradients_check, stability_check, step_check
from mnist_compare.check.tolerances import KERAS_ORDERS
from mnist_compare.data.idx import Dataset
from mnist_compare.nets.contract import construct
from mnist_compare.nets.optimizers import TRUNCATED_NORMAL_STDDEV, initial_weights
from mnist_compare.nets.user_net import REQUIRED_METHODS, described, users_code, weight_shapes
from mnist_compare.records.check import FAIL, INTERRUPTED, Check, verdict
from mnist_compare.records.spec import NUM_CLASSES, PARAMETER_NAMES, RunSpec
from mnist_compare.system.shutdown import Interrupted

__all__ = ["CHECKS", "CHECK_NAMES", "DEFAULT_WEIGHTS", "Check", "run_checks"]
INIT_NAMES = {"glorot_uniform": "Glorot-uniform", "glorot_normal": "Glorot-normal", "he_normal": "He-normal"}


@dataclass
class Bench:
    """What the checks work on: the spec, the data, the twin's class, one batch X (n, d) float32 and y (n,),
    and the initial weights [W1, b1, W2, b2] both nets of a paired check start from."""

    spec: RunSpec
    data: Dataset
    twin_class: type
    X: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)
    weights: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.X, self.y = self.data[0][:self.spec.batch_size], self.data[1][:self.spec.batch_size]
        sizes = (self.d, self.spec.hidden_size, NUM_CLASSES)
        self.weights = initial_weights(np.random.default_rng(self.spec.seed), sizes, self.spec.init)

    @property
    def d(self) -> int:
        return self.data[0].shape[1]

    @property
    def short(self) -> int:
        """The size of the short batch: three quarters of a batch."""
        return max(1, self.spec.batch_size * 3 // 4)

    def build(self, seed: int | None = None) -> object:
        """A fresh net of the spec's class, built with `seed` (the spec's by default)."""
        return construct(self.spec.net, self.spec, self.d, self.spec.seed if seed is None else seed)

    def pair(self, twins: int = KERAS_ORDERS, nudged: bool = False) -> tuple[object, Reference]:
        """A fresh net and a fresh reference (the exact net, `twins` Keras twins, float32 samples and, when
        `nudged`, the exact run with steps STEP_FLOOR larger), so that an optimiser's state starts from zero in
        each check."""
        exact = ExactNet(self.spec.lr, self.spec.optimizer)
        return self.build(), make_reference(exact, lambda: construct(self.twin_class, self.spec, self.d,
                                                                     self.spec.seed), twins, nudged)


def interface_check(spec: RunSpec, d: int) -> Check:
    """The methods exist, the class builds as Net(d, h, c, lr, seed), get_weights() has the right shapes."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(spec.net, m, None))]
    expected = weight_shapes(d, spec.hidden_size)
    if missing:
        return verdict("interface", False, f"missing {', '.join(missing)}", "4 methods", "add the missing "
                       f"method{'s' * (len(missing) > 1)}: {', '.join(missing)}")
    net = construct(spec.net, spec, d, spec.seed)
    shapes = [tuple(np.shape(w)) for w in net.get_weights()]
    return verdict("interface", shapes == expected, f"shapes {shapes}", f"{expected}",
                   f"get_weights() must return [W1 {expected[0]}, b1 {expected[1]}, W2 {expected[2]}, "
                   f"b2 {expected[3]}], Keras' layout")


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


def stepped(name: str, rows: Callable[[Bench], slice]) -> Callable[[Bench], Check]:
    """A step check on the batch's `rows` (all, the short batch, one example)."""
    def run(b: Bench) -> Check:
        part = rows(b)
        return step_check(name, *b.pair(), b.weights, b.X[part], b.y[part], b.spec.batch_size)
    return run


@dataclass(frozen=True)
class CheckEntry:
    """A row of CHECKS: the check's name, its function of the Bench, the methods beyond the contract a net
    needs for it (a net without them skips it), and its default weight in a grade."""

    name: str
    run: Callable[[Bench], Check]
    needs: tuple[str, ...] = ()
    weight: float = 1.0


CHECKS = (
    CheckEntry("interface", lambda b: interface_check(b.spec, b.d)),
    CheckEntry("initialisation", lambda b: initialisation_check(b.spec, b.d)),
    CheckEntry("forward", lambda b: forward_check(*b.pair(), b.weights, b.X, b.y, b.spec.seed)),
    CheckEntry("gradients", lambda b: gradients_check(*b.pair(), b.weights, b.X, b.y, b.spec.batch_size),
               needs=("gradients",)),
    CheckEntry("single step", stepped("single step", lambda b: slice(None))),
    CheckEntry("short batch", stepped("short batch", lambda b: slice(b.short))),
    CheckEntry("batch of one", stepped("batch of one", lambda b: slice(1))),
    CheckEntry("stability", lambda b: stability_check(b.build(), b.d, b.spec.hidden_size)),
    CheckEntry("determinism", lambda b: determinism_check(b.build, b.spec.seed, b.data[0], b.data[1],
                                                          b.spec.batch_size)),
    # the trajectory's yardstick is the float32 formulas and the nudged exact run: once a Keras twin breaks one
    # of ReLU's ties otherwise than the exact run (which breaks them as the net does), it samples another run
    CheckEntry("trajectory", lambda b: trajectory_check(b.spec, *b.pair(twins=0, nudged=True), b.data)),
)
CHECK_NAMES = tuple(entry.name for entry in CHECKS)
DEFAULT_WEIGHTS = {entry.name: entry.weight for entry in CHECKS}


def settings_of(spec: RunSpec) -> dict:
    """What every check of a command ran with, recorded in each check's entry of the results file."""
    settings = {key: value for key, value in spec.hyperparameters().items() if key != "number_epochs"}
    return {**settings, "seed": spec.seed}


def applicable(net_class: type) -> list[CheckEntry]:
    """The checks a net of `net_class` takes: those whose needed methods it has."""
    return [entry for entry in CHECKS if all(callable(getattr(net_class, m, None)) for m in entry.needs)]


def run_checks(spec: RunSpec, data: Dataset, twin_class: type) -> list[Check]:
    """Every applicable check of spec.net against twin_class (the Keras twin), in CHECKS' order, each with
    spec's settings (the optimiser and initialiser included, for nets that take them). The interface check
    comes first: when it fails, the others are not run. A submitted net (a sandbox.RemoteNet) runs each check
    in a fresh process of its own: a check whose net raises, times out, runs out of memory or ends its
    process fails with that as its diagnosis, and the rest still run; a stop signal marks the check it
    interrupted and the rest INTERRUPTED."""
    entries = applicable(spec.net)
    bench = Bench(spec, data, twin_class)
    checks: list[Check] = []
    for index, entry in enumerate(entries):
        if checks and not checks[0].passed:
            checks.append(Check(entry.name, FAIL, "not run", "", "not run: the interface check failed"))
            continue
        try:
            checks.append(run_one(entry, bench))
        except Interrupted as signal:
            checks += [Check(rest.name, INTERRUPTED, "not run", "", f"stopped by {signal}")
                       for rest in entries[index:]]
            break
    for check in checks:
        check.settings = settings_of(spec)
    return pointed_to_the_first_failure(checks)


def run_one(entry: CheckEntry, bench: Bench) -> Check:
    """One check, in a fresh process for a submitted net; what the net printed there is kept (capped) in the
    check's details and shown on stderr."""
    printed = ""
    with fresh_process(bench.spec.net) as room:
        try:
            with users_code():
                check = entry.run(bench)
        except SubmissionStopped as stop:
            check = Check(entry.name, FAIL, "stopped", "", str(stop))
            check.details["stopped"] = stop.kind
        except Exception as err:
            check = raised(entry.name, err)
            check.details["stopped"] = "raised"
        printed = room.printed() if room is not None else ""
    if printed:
        check.details["printed"] = printed
        print(f"[{bench.spec.net_name} printed during the {entry.name} check]\n{printed}", file=sys.stderr)
    return check


def raised(name: str, err: BaseException) -> Check:
    """The FAIL of a check whose net raised `err`."""
    if name == "interface":
        return Check("interface", FAIL, "raised", "builds", f"raised {described(err)}")
    return Check(name, FAIL, "raised", "", f"raised {described(err)}{RAISED_HINTS.get(name, '')}")


def pointed_to_the_first_failure(checks: list[Check]) -> list[Check]:
    """A failed trajectory after another failed check: where the runs part, then the check to start from
    (the other failure explains it; the trajectory's own guesses would mislead)."""
    failed = [c.name for c in checks if c.status == FAIL and c.name != "trajectory"]
    for check in checks:
        if check.name == "trajectory" and check.status == FAIL and check.measured not in ("not run", "stopped") \
                and failed:
            where = check.diagnosis.split(":")[0]
            check.diagnosis = f"{where}: the {failed[0]} check failed first, start there"
    return checks


RAISED_HINTS = {"batch of one": " on a batch of one example (X of shape (1, 784)): np.squeeze, or an index or "
                                "sum that drops the batch axis, breaks a batch of one?"}
