"""`--check`'s checks that train several steps: determinism (a seed gives one net, and one training) and the
paired trajectory against the Keras twin, which says at which step the two runs first part, and where.

Not for: single steps (steps.py) or the order of the checks (checks.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnist_compare.check.steps import mean_loss
from mnist_compare.check.tolerances import LOSS_TOLERANCE, STEP_TOLERANCE, WEIGHT_TOLERANCE
from mnist_compare.data.idx import Dataset
from mnist_compare.nets.optimizers import initial_weights
from mnist_compare.records.check import Check, verdict
from mnist_compare.records.spec import NUM_CLASSES, PARAMETER_NAMES, RunSpec

DETERMINISM_STEPS = 3
TRAJECTORY_EXAMPLES, TRAJECTORY_EPOCHS = 6000, 2  # 47 batches of 128 per epoch, the last one of 112


def same_weights(a: object, b: object) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def determinism_check(build: Callable[[int], object], seed: int, X: np.ndarray, y: np.ndarray,
                      batch_size: int) -> Check:
    """Two nets built with `seed` start identical and, after DETERMINISM_STEPS identical batches, end identical;
    a net built with seed + 1 starts elsewhere."""
    first, second, other = build(seed), build(seed), build(seed + 1)
    start_equal, seeds_differ = same_weights(first, second), not same_weights(first, other)
    for step in range(DETERMINISM_STEPS):
        batch = slice(step * batch_size, (step + 1) * batch_size)
        for net in (first, second):
            net.train_on_batch(X[batch], y[batch])
    end_equal = same_weights(first, second)
    measured = (f"same seed: {'identical' if start_equal else 'different'} start, "
                f"{'identical' if end_equal else 'different'} after {DETERMINISM_STEPS} steps; "
                f"seeds {seed} and {seed + 1} {'differ' if seeds_differ else 'give the same weights'}")
    if not start_equal:
        diagnosis = ("the seed is ignored: two nets built with the same seed start with different weights, so the "
                     "net draws from a global random state (np.random.*); draw from np.random.default_rng(seed)")
    elif not end_equal:
        diagnosis = ("training is not repeatable: two identical nets trained on identical batches end apart, so "
                     "train_on_batch draws from a global random state or keeps state beyond its weights")
    else:
        diagnosis = f"the seed is not used: seeds {seed} and {seed + 1} give identical weights"
    return verdict("determinism", start_equal and end_equal and seeds_differ, measured,
                   "identical, identical, differ", diagnosis)


def largest_gaps(ours: list[np.ndarray], theirs: list[np.ndarray]) -> list[float]:
    """max |ours - theirs| per parameter [W1, b1, W2, b2]."""
    return [float(np.abs(np.asarray(a, np.float64) - b).max()) for a, b in zip(ours, theirs, strict=True)]


def gaps_and_bound(net: object, twin: object, start: list[np.ndarray]) -> tuple[list[float], float]:
    """(largest_gaps of the net against the twin, the bound they must stay within): WEIGHT_TOLERANCE plus
    STEP_TOLERANCE (one step's relative bound) of how far the twin's weights have moved from `start`. SGD's
    measured 1.2e-7 fits the first term; Adam moves each weight about lr per step, and its float32 round-off
    (2-3e-5 of a step, measured) adds up with the distance travelled (6.7e-5 after 94 steps at lr 0.1, which an
    absolute 2e-6 failed). A 1% lr slip is 1e-2 of the distance, a wrong last-batch mean 1/8 of a step."""
    theirs = twin.get_weights()
    moved = max(largest_gaps(theirs, start))
    return largest_gaps(net.get_weights(), theirs), WEIGHT_TOLERANCE + STEP_TOLERANCE * moved


def trajectory_check(spec: RunSpec, net: object, twin: object, data: Dataset) -> Check:
    """The paired run of the tests, step by step: identical initial weights and batch order, 2 epochs on 6,000
    images with a short last batch; final weights within gaps_and_bound's bound and final losses within
    LOSS_TOLERANCE. The first step after which any weight is further apart than that bound is recorded
    (1-based epoch, step within it, global step) with the parameter furthest apart then."""
    X, y = data[0][:TRAJECTORY_EXAMPLES], data[1][:TRAJECTORY_EXAMPLES]
    weights = initial_weights(np.random.default_rng(spec.seed), (X.shape[1], spec.hidden_size, NUM_CLASSES),
                              spec.init)
    for model in (net, twin):
        model.set_weights([w.copy() for w in weights])
    start = [w.astype(np.float64) for w in weights]
    rng, global_step, first = np.random.default_rng(spec.seed), 0, None
    for epoch in range(TRAJECTORY_EPOCHS):
        order = rng.permutation(len(X))
        for step, begin in enumerate(range(0, len(X), spec.batch_size)):
            batch = order[begin:begin + spec.batch_size]
            with np.errstate(all="ignore"):
                net.train_on_batch(X[batch], y[batch])
            twin.train_on_batch(X[batch], y[batch])
            global_step += 1
            if first is None:
                gaps, allowed = gaps_and_bound(net, twin, start)
                if not max(gaps) <= allowed:  # NaN counts as apart
                    worst = int(np.argmax(np.nan_to_num(gaps, nan=np.inf)))
                    first = {"first_divergence": {"epoch": epoch + 1, "step": step + 1, "global_step": global_step},
                             "first_parameter": PARAMETER_NAMES[worst]}
    gaps, allowed = gaps_and_bound(net, twin, start)
    difference = max(gaps)
    with np.errstate(all="ignore"):
        losses = mean_loss(net, X, y), mean_loss(twin, X, y)
    passed = difference <= allowed and abs(losses[0] - losses[1]) <= LOSS_TOLERANCE
    check = verdict("trajectory", passed, f"weights {difference:.3g} apart, losses {losses[0]:.6f} / {losses[1]:.6f}",
                    f"{allowed:.3g}, {LOSS_TOLERANCE:g}", trajectory_diagnosis(first, global_step))
    check.details = first or {"first_divergence": None, "first_parameter": None}
    return check


def trajectory_diagnosis(first: dict | None, steps: int) -> str:
    """Where the paired runs part, and what that points to."""
    if first is None:
        return (f"the weights stay within tolerance for all {steps} steps but the final losses differ: "
                "predict or the loss differs (see forward)")
    where = first["first_divergence"]
    place = (f"first parts at epoch {where['epoch']}, step {where['step']} (global step {where['global_step']}), "
             f"{first['first_parameter']} first")
    if where["global_step"] == 1:
        return f"{place}: the very first step differs, see the single step check"
    same = where["global_step"] - 1
    return (f"{place}, after {same} identical step{'s' * (same > 1)}: a step that depends on more than the "
            "batch and the weights (a learning rate that changes, a random order of its own, state kept between "
            "calls)?")
