"""Where my_net's training step spends its time, and the floor its two big products put under a fit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bound --against results/benchmark.json

Fits my_net as the tool does by default (plain SGD, batch 128, lr 0.1; 20 epochs unless --epochs) at each hidden size,
timing inside the fit every call of the two big products, Z1 = X W1 and W1 -= lr X^T dZ1 (the my_net.gemm
calls whose operand is the batch's inputs), and every batch's gathering (RenumberedPixels.batch_inputs, or
Workspace.gather in the dense loop). Prints per step: the products and the GFLOPS they ran at, the gathering, and
the rest (Python and the ~30 small NumPy operations of a step); and the floor under the fit that the
products and the gathering set without the rest: steps x (products + gathering) + the renumbering, done once.
With --against, a bench.py JSON file (results/benchmark.json): its ratio of the fastest Keras fit to my_net's,
and so the share of its time my_net's fit would have to shrink to for twice Keras' speed ("2x needs fit x",
ratio / 2). Where the floor's share of the fit ("floor / fit") is above that, the products and gathering
alone rule 2x out. Both are shares of fits timed in one run, since these shared machines drift 1.5x in
minutes.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
from tabulate import tabulate

from mnist_compare.data import idx
from mnist_compare.nets import my_net
from mnist_compare.nets.pixels import RenumberedPixels
from mnist_compare.nets.workspace import Workspace

BATCH_SIZE, LR = 128, 0.1


class StepClock:
    """Seconds spent in the big products, in gathering, and in renumbering, accumulated over a fit."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.flops = 0.0
        self.batch: np.ndarray | None = None  # the last gathered batch inputs, (n, k)
        self.gathering = False  # inside a timed gather

    def timed(self, part: str, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[part] += time.perf_counter() - start
        return result

    def gemm(self, original):
        def gemm(A, B, out, alpha=1.0, beta=0.0):
            if self.batch is not None and A.base is not None and A.base is self.batch.base:  # X W1 or X^T dZ1
                self.flops += 2.0 * A.shape[0] * A.shape[1] * B.shape[1]
                return self.timed("products", original, A, B, out, alpha, beta)
            return original(A, B, out, alpha, beta)
        return gemm

    def gather(self, original):
        def gather(*args, **kwargs):
            if self.gathering:  # RenumberedPixels.batch_inputs gathers its float copy with Workspace.gather
                return original(*args, **kwargs)
            self.gathering = True
            try:
                self.batch = self.timed("gathering", original, *args, **kwargs)
            finally:
                self.gathering = False
            return self.batch
        return gather


def measured_fit(hidden: int, epochs: int, X: np.ndarray, y: np.ndarray) -> dict:
    """One default fit of `epochs` at `hidden`, with its products, gathering and renumbering timed inside it."""
    clock = StepClock()
    saved = my_net.gemm, Workspace.gather, RenumberedPixels.batch_inputs, RenumberedPixels.__init__
    my_net.gemm = clock.gemm(saved[0])
    Workspace.gather = clock.gather(saved[1])
    RenumberedPixels.batch_inputs = clock.gather(saved[2])
    RenumberedPixels.__init__ = lambda self, X: clock.timed("renumbering", saved[3], self, X)
    try:
        net = my_net.NeuralNetwork(784, hidden, lr=LR, seed=0)
        start = time.perf_counter()
        history = net.fit(X, y, BATCH_SIZE, epochs)
        fit = time.perf_counter() - start
    finally:
        my_net.gemm = saved[0]
        Workspace.gather, RenumberedPixels.batch_inputs, RenumberedPixels.__init__ = saved[1:]
    steps = epochs * -(-len(X) // BATCH_SIZE)
    per_step = {part: clock.seconds[part] / steps for part in ("products", "gathering")}
    floor = clock.seconds["renumbering"] + steps * sum(per_step.values())
    rest = (fit - clock.seconds["renumbering"]) / steps - sum(per_step.values())
    return {"hidden": hidden, "fit_s": fit, "steady_epoch_s": min(history["epoch_time_s"][1:]),
            "products_us": per_step["products"] * 1e6, "products_gflops": clock.flops / clock.seconds["products"] / 1e9,
            "gathering_us": per_step["gathering"] * 1e6, "rest_us": rest * 1e6,
            "renumbering_s": clock.seconds["renumbering"], "floor_s": floor,
            "first_layer_share": net.describe()["first_layer_share"]}


def ratios(path: str | None) -> dict[int, tuple[str, float]]:
    """{hidden: (fastest Keras contender, its fit time / my_net's)} from a bench.py JSON file."""
    if path is None:
        return {}
    summary = json.loads(Path(path).read_text())["summary"]
    return {row["hidden_size"]: (row["fastest_keras"], row["ratio"]) for row in summary}


@click.command()
@click.option("--hidden_sizes", default="30,128,256,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--epochs", type=click.IntRange(min=2), default=20, show_default=True, help="Epochs per fit.")
@click.option("--against", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A bench.py JSON file whose fastest Keras fits the floors are set against.")
def main(hidden_sizes: str, epochs: int, against: str | None) -> None:
    """Time the parts of my_net's step inside default fits, and the floor they set under the fit time."""
    X, y, _, _ = idx.load_data()
    keras = ratios(against)
    rows = []
    for hidden in (int(h) for h in hidden_sizes.split(",")):
        row = measured_fit(hidden, epochs, X, y)
        name, ratio = keras.get(hidden, ("", float("nan")))
        rows.append([hidden, f"{row['fit_s']:.2f}", f"{row['steady_epoch_s']:.3f}",
                     f"{row['products_us']:.0f} ({row['products_gflops']:.0f} GFLOPS)", f"{row['gathering_us']:.0f}",
                     f"{row['rest_us']:.0f}", f"{row['renumbering_s']:.2f}", f"{row['floor_s']:.2f}",
                     f"{row['floor_s'] / row['fit_s']:.2f}", f"{ratio:.2f}x {name}" if name else "",
                     f"{ratio / 2:.2f}" if name else ""])
    print(tabulate(rows, headers=["hidden", "fit (s)", "steady epoch (s)", "2 big products (us/step)",
                                  "gathering (us/step)", "rest (us/step)", "renumbering (s)",
                                  "floor: products + gathering + renumbering (s)", "floor / fit",
                                  "benchmark: fastest Keras / my_net", "2x needs fit x"]))


if __name__ == "__main__":
    main()
