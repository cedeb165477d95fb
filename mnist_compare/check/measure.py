"""How a numeric check measures: the net's distance from the exact float64 reference against float32's own
distance from it, the largest over the samples (the Keras twin on KERAS_ORDERS orders of the batch's rows, and
the exact formulas computed in float32 on NUMPY_ORDERS more), and the bound SPREAD_FACTOR x that + floor.

    bound = SPREAD_FACTOR * max over samples s and parameters p of distance(s, exact)_p + floor

Not for: what a check computes (steps.py, runs.py) or their order (checks.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mnist_compare.check.exact import ExactNet
from mnist_compare.check.tolerances import KERAS_ORDERS, NUMPY_ORDERS, SPREAD_FACTOR, STEP_FLOOR
from mnist_compare.records.spec import PARAMETER_NAMES


@dataclass
class Reference:
    """The exact net and the samples a numeric check measures with: the Keras twins, the exact formulas in
    float32, and for a trajectory the exact run with every step STEP_FLOOR larger (`nudged`: what the floor a
    single step is allowed becomes through the run's own dynamics); samples[o] sees each batch's rows in
    order o (the first as given)."""

    exact: ExactNet
    twins: list[object]  # the Keras twins
    float32: list[ExactNet]
    nudged: list[ExactNet] = field(default_factory=list)

    @property
    def samples(self) -> list[object]:
        return [*self.twins, *self.float32, *self.nudged]

    def orders(self, n: int) -> list[np.ndarray]:
        """The row orders of a batch of n: as given, then fixed permutations, one per further sample."""
        return [np.arange(n)] + [np.random.default_rng(o).permutation(n) for o in range(1, len(self.samples))]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        for model in (self.exact, *self.samples):
            model.set_weights([w.copy() for w in weights])

    def each_sample(self, X: np.ndarray, y: np.ndarray,
                    call: Callable[[object, np.ndarray, np.ndarray], object]) -> list:
        """call(sample, X in its order, y in its order) for every float32 sample."""
        return [call(model, X[order], y[order]) for model, order in zip(self.samples, self.orders(len(y)),
                                                                         strict=True)]

    def step_each(self, X: np.ndarray, y: np.ndarray, like: tuple[list, list]) -> list[float]:
        """train_on_batch on every float32 sample, each on its order of the batch's rows: the float32 formulas
        break ReLU's ties as the exact run did (`like`: its weights before and after the step), the twins as
        they will. Returns their losses."""
        return self.each_sample(X, y, lambda model, Xo, yo: float(model.train_on_batch(Xo, yo,
                                                                                        **following(model, like))))


def following(model: object, like: object) -> dict:
    """train_on_batch's or gradients' keyword that makes the float32 formulas break ReLU's ties as `like` (the
    exact run's result) did; nothing for a Keras twin, which breaks them as it will."""
    return {"like": like} if isinstance(model, ExactNet) else {}


def make_reference(exact: ExactNet, build_twin: Callable[[], object], twins: int = KERAS_ORDERS,
                   nudged: bool = False) -> Reference:
    """The exact net, `twins` Keras twins, NUMPY_ORDERS float32 formulas and, when `nudged`, the exact run with
    every step STEP_FLOOR larger."""
    return Reference(exact, [build_twin() for _ in range(twins)],
                     [ExactNet(exact.lr, exact.settings, np.float32) for _ in range(NUMPY_ORDERS)],
                     [ExactNet(exact.lr * (1 + STEP_FLOOR), exact.settings)] if nudged else [])


def relative_errors(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> list[float]:
    """max |a - b| / max |b| per parameter (b the reference)."""
    return [float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))
            for a, b in zip(ours, theirs, strict=True)]


def largest_gaps(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> list[float]:
    """max |ours - theirs| per parameter [W1, b1, W2, b2]."""
    return [float(np.abs(np.asarray(a, np.float64) - b).max()) for a, b in zip(ours, theirs, strict=True)]


@dataclass(frozen=True)
class Measured:
    """A net's distances from exact per parameter, float32's largest distance (over its samples and the
    parameters), and the floor of the bound."""

    net: list[float]
    float32: float
    floor: float
    samples: str = "float32"  # what the yardstick's samples are, as the table names them

    @property
    def bound(self) -> float:
        """One bound for every parameter, from float32's largest distance over all of them: float32's
        ill-conditioning is the step's, and a small parameter (b2's 10 elements, W2's 320) is a small sample of
        it (my_net's W2 at adam, lr 0.1, seed 5: 7.1e-5 from exact at one element where Keras' three orders
        were within 1e-5, and W1's 6e-5)."""
        return SPREAD_FACTOR * self.float32 + self.floor

    @property
    def worst(self) -> int:
        """The parameter furthest from exact (NaN first)."""
        return int(np.argmax([n if np.isfinite(n) else np.inf for n in self.net]))

    @property
    def share(self) -> float:
        """The largest distance as a share of the bound: <= 1 passes; a bug's margin is how far above 1."""
        largest = self.net[self.worst]
        return largest / self.bound if np.isfinite(largest) else np.inf

    @property
    def passed(self) -> bool:
        return self.share <= 1

    def describe(self, what: str, names: Sequence[str] = PARAMETER_NAMES) -> str:
        """`W1 1.3e-04 from exact; float32 9.0e-05`: the parameter furthest from exact, and float32's largest
        distance (Keras' or the float32 formulas')."""
        i = self.worst
        name = f"{names[i]} " if len(names) > 1 else ""
        return f"{name}{what} {self.net[i]:.2g} from exact; {self.samples} {self.float32:.2g}"

    def tolerance(self) -> str:
        return f"{self.bound:.2g} = {SPREAD_FACTOR:g} x {self.samples} + {self.floor:.2g}"


def measured(net: Sequence[np.ndarray], twins: Sequence[Sequence[np.ndarray]], exact: Sequence[np.ndarray],
             floor: float, distance: Callable = relative_errors, samples: str = "float32") -> Measured:
    """The net's values against the exact ones, per parameter, and the samples' largest distance."""
    return Measured(distance(net, exact), float(np.max([distance(twin, exact) for twin in twins])), floor, samples)
