"""`--check`'s checks that train several steps: determinism (a seed gives one net, and one training) and the
paired trajectory against the exact run (float32 runs its yardstick), which says at which step the
net first parts from it, and where.

Not for: single steps (steps.py) or the order of the checks (checks.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnist_compare.check.measure import Measured, Reference, largest_gaps, measured
from mnist_compare.check.steps import mean_loss
from mnist_compare.check.tolerances import FORWARD_FLOOR, TRAJECTORY_FLOOR
from mnist_compare.data.idx import Dataset
from mnist_compare.nets.optimizers import initial_weights
from mnist_compare.records.check import Check, verdict
from mnist_compare.records.spec import NUM_CLASSES, PARAMETER_NAMES, RunSpec

DETERMINISM_STEPS = 3
TRAJECTORY_EXAMPLES, TRAJECTORY_EPOCHS = 6000, 2  # 47 batches of 128 per epoch, the last one of 112
SAMPLES = "samples"  # the trajectory's yardstick: the float32 formulas and the nudged exact run


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


def trajectory_gaps(weights: list[np.ndarray], ref: Reference, exact: list[np.ndarray]) -> Measured:
    """How far the net's `weights` are from the exact run's (`exact`), per parameter, against the samples'
    largest gap."""
    return measured(weights, [model.get_weights() for model in ref.samples], exact, TRAJECTORY_FLOOR, largest_gaps,
                    SAMPLES)


def trajectory_check(spec: RunSpec, net: object, ref: Reference, data: Dataset) -> Check:
    """The paired run of the tests, step by step: identical initial weights and batch order for the net, the
    exact run and its samples (the float32 formulas, each with the batch's rows in its own order, and the exact
    run with every step STEP_FLOOR larger), 2 epochs on 6,000 images with a short last batch; the exact run
    breaks ReLU's ties as the net did (ties.py), the samples as the exact run did. After every step each
    parameter must be within SPREAD_FACTOR times the samples' largest gap from the exact run plus a
    floor, and so must the final loss. The first step after which a parameter is past its bound is recorded
    (1-based epoch, step within it, global step) with that parameter."""
    X, y = data[0][:TRAJECTORY_EXAMPLES], data[1][:TRAJECTORY_EXAMPLES]
    weights = initial_weights(np.random.default_rng(spec.seed), (X.shape[1], spec.hidden_size, NUM_CLASSES),
                              spec.init)
    net.set_weights([w.copy() for w in weights])
    ref.set_weights(weights)
    rng, global_step, first, share = np.random.default_rng(spec.seed), 0, None, 0.0
    before, exact = weights, ref.exact.get_weights()
    for epoch in range(TRAJECTORY_EPOCHS):
        order = rng.permutation(len(X))
        for step, begin in enumerate(range(0, len(X), spec.batch_size)):
            batch = order[begin:begin + spec.batch_size]
            with np.errstate(all="ignore"):
                net.train_on_batch(X[batch], y[batch])
            after = net.get_weights()
            ref.exact.train_on_batch(X[batch], y[batch], like=(before, after))
            exact_before, exact = exact, ref.exact.get_weights()
            ref.step_each(X[batch], y[batch], like=(exact_before, exact))
            global_step, before = global_step + 1, after
            if first is None:
                gaps = trajectory_gaps(after, ref, exact)
                share = max(share, gaps.share)
                if not gaps.passed:
                    first = {"first_divergence": {"epoch": epoch + 1, "step": step + 1, "global_step": global_step},
                             "first_parameter": PARAMETER_NAMES[gaps.worst]}
    gaps = trajectory_gaps(before, ref, exact)
    with np.errstate(all="ignore"):
        losses = measured([np.float64(mean_loss(net, X, y))], [[np.float64(mean_loss(t, X, y))] for t in ref.samples],
                          [np.float64(mean_loss(ref.exact, X, y))], FORWARD_FLOOR, samples=SAMPLES)
    check = verdict("trajectory", gaps.passed and losses.passed and first is None,
                    f"{gaps.describe('weights')}; {losses.describe('loss (relative)', ['loss'])}",
                    f"{gaps.tolerance()}; {losses.tolerance()}", trajectory_diagnosis(first, global_step))
    check.details = {**(first or {"first_divergence": None, "first_parameter": None}),
                     "share_of_bound": float(max(share, gaps.share, losses.share))}
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
