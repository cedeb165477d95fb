"""Where my_net's training step spends its time, the floor its two big products put under a fit, and how they
compare with the plain GEMM of their shapes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bound --against results/benchmark.json \
        --markdown results/bound.md

Fits my_net as the tool does by default (plain SGD, batch 128, lr 0.1; 20 epochs unless --epochs) at each hidden size,
timing inside the fit every call of the two big products, Z1 = X W1 and W1 -= lr X^T dZ1 (the my_net.gemm
calls whose operand is the batch's inputs), every other product (the small ones: H W2, dZ2 W2^T, H^T dZ2 and the
bias sums), softmax with the loss, the output delta, and every batch's gathering (RenumberedPixels.batch_inputs,
or Workspace.gather in the dense loop). Prints per step: each part, the products' GFLOPS, and the rest (Python
and the ReLU, mask and copies between the parts); and the floor under the fit that the products and the gathering
set without the rest: steps x (products + gathering) + the renumbering, done once. Then the products' rate in the
fit as a share of the 2048^3 roofline, and the first epoch's product shapes replayed through my_net's gemm and
the plain GEMM taking turns (bench/products.py): the share of the plain GEMM's rate my_net's products reach.
With --against, a bench.py JSON file (results/benchmark.json): its ratio of the fastest Keras fit to my_net's,
and so the share of its time my_net's fit would have to shrink to for twice Keras' speed ("2x needs fit x",
ratio / 2). Where the floor's share of the fit ("floor / fit") is above that, the products and gathering
alone rule 2x out. Both are shares of fits timed in one run, since these shared machines drift 1.5x in
minutes. --markdown appends a section headed by the CPU kind (CPU and OpenBLAS kernel).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
from tabulate import tabulate

from bench import products
from mnist_compare.data import idx
from mnist_compare.nets import my_net
from mnist_compare.nets.pixels import RenumberedPixels
from mnist_compare.nets.workspace import Workspace
from mnist_compare.output import files

BATCH_SIZE, LR = 128, 0.1
STEP_PARTS = ("products", "gathering", "small products", "softmax", "output delta")


class StepClock:
    """Seconds spent in the big products, the small ones, softmax and the output delta, gathering, and
    renumbering, accumulated over a fit; the (n, k) of each batch's first-layer products."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.flops = 0.0
        self.shapes: list[tuple[int, int]] = []
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
                if A.strides[1] == A.itemsize:  # X W1: its (n, k) once a step
                    self.shapes.append(A.shape)
                return self.timed("products", original, A, B, out, alpha, beta)
            return self.timed("small products", original, A, B, out, alpha, beta)
        return gemm

    def method(self, part: str, original):
        def timed_method(*args, **kwargs):
            return self.timed(part, original, *args, **kwargs)
        return staticmethod(timed_method)

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
    """One default fit of `epochs` at `hidden`, with the parts of its steps and its renumbering timed inside it."""
    clock = StepClock()
    net_class = my_net.NeuralNetwork
    saved = (my_net.gemm, Workspace.gather, RenumberedPixels.batch_inputs, RenumberedPixels.__init__,
             net_class.__dict__["softmax_cross_entropy"], net_class.__dict__["output_delta"])
    my_net.gemm = clock.gemm(saved[0])
    Workspace.gather = clock.gather(saved[1])
    RenumberedPixels.batch_inputs = clock.gather(saved[2])
    RenumberedPixels.__init__ = lambda self, X: clock.timed("renumbering", saved[3], self, X)
    net_class.softmax_cross_entropy = clock.method("softmax", saved[4].__func__)
    net_class.output_delta = clock.method("output delta", saved[5].__func__)
    try:
        net = net_class(784, hidden, lr=LR, seed=0)
        start = time.perf_counter()
        history = net.fit(X, y, BATCH_SIZE, epochs)
        fit = time.perf_counter() - start
    finally:
        my_net.gemm = saved[0]
        Workspace.gather, RenumberedPixels.batch_inputs, RenumberedPixels.__init__ = saved[1:4]
        net_class.softmax_cross_entropy, net_class.output_delta = saved[4:]
    steps = epochs * -(-len(X) // BATCH_SIZE)
    per_step = {part: clock.seconds[part] / steps for part in STEP_PARTS}
    floor = clock.seconds["renumbering"] + steps * (per_step["products"] + per_step["gathering"])
    rest = (fit - clock.seconds["renumbering"]) / steps - sum(per_step.values())
    return {"hidden": hidden, "fit_s": fit, "steady_epoch_s": min(history["epoch_time_s"][1:]),
            **{f"{part.replace(' ', '_')}_us": seconds * 1e6 for part, seconds in per_step.items()},
            "products_gflops": clock.flops / clock.seconds["products"] / 1e9, "rest_us": rest * 1e6,
            "renumbering_s": clock.seconds["renumbering"], "floor_s": floor,
            "first_layer_share": net.describe()["first_layer_share"],
            "epoch_shapes": clock.shapes[:-(-len(X) // BATCH_SIZE)]}


def ratios(path: str | None) -> dict[int, tuple[str, float]]:
    """{hidden: (fastest Keras contender, its fit time / my_net's)} from a bench.py JSON file."""
    if path is None:
        return {}
    summary = json.loads(Path(path).read_text())["summary"]
    return {row["hidden_size"]: (row["fastest_keras"], row["ratio"]) for row in summary}


def step_table(rows: list[dict], keras: dict[int, tuple[str, float]]) -> str:
    """Per hidden size: the fit, the parts of a step (us), the floor and what 2x Keras would need."""
    table = []
    for row in rows:
        name, ratio = keras.get(row["hidden"], ("", float("nan")))
        table.append([row["hidden"], f"{row['fit_s']:.2f}", f"{row['steady_epoch_s']:.3f}",
                      f"{row['products_us']:.0f} ({row['products_gflops']:.0f} GFLOPS)", f"{row['gathering_us']:.0f}",
                      f"{row['small_products_us']:.0f}", f"{row['softmax_us']:.0f}", f"{row['output_delta_us']:.0f}",
                      f"{row['rest_us']:.0f}", f"{row['renumbering_s']:.2f}", f"{row['floor_s']:.2f}",
                      f"{row['floor_s'] / row['fit_s']:.2f}", f"{ratio:.2f}x {name}" if name else "",
                      f"{ratio / 2:.2f}" if name else ""])
    return tabulate(table, headers=["hidden", "fit (s)", "steady epoch (s)", "2 big products (us/step)",
                                    "gathering (us/step)", "small products", "softmax and loss", "output delta",
                                    "rest (us/step)", "renumbering (s)",
                                    "floor: products + gathering + renumbering (s)", "floor / fit",
                                    "benchmark: fastest Keras / my_net", "2x needs fit x"])


def product_table(rows: list[dict]) -> str:
    """Per hidden size: the products' rate in the fit as a share of the roofline, and replayed on the fit's
    first epoch's shapes against the plain GEMM of those shapes (bench/products.py)."""
    return tabulate([[row["hidden"], f"{row['products_gflops']:.0f}", f"{100 * row['products_roofline_share']:.0f}%",
                      f"{row['replayed']['my_net_gflops']:.0f}", f"{row['replayed']['plain_gflops']:.0f}",
                      f"{100 * row['replayed']['share_of_plain']:.0f}%"] for row in rows],
                    headers=["hidden", "products in the fit (GFLOPS)", "in the fit / 2048^3 roofline",
                             "replayed: my_net (GFLOPS)", "replayed: plain GEMM (GFLOPS)", "my_net / plain GEMM"])


@click.command()
@click.option("--hidden_sizes", default="30,128,256,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--epochs", type=click.IntRange(min=2), default=20, show_default=True, help="Epochs per fit.")
@click.option("--against", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A bench.py JSON file whose fastest Keras fits the floors are set against.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the rows as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Append this CPU kind's section as Markdown.")
def main(hidden_sizes: str, epochs: int, against: str | None, output: str | None, markdown: str | None) -> None:
    """Time the parts of my_net's step inside default fits, the floor they set under the fit time, and the
    products against the plain GEMM of their shapes."""
    X, y, _, _ = idx.load_data()
    keras = ratios(against)
    gemm_rates = products.gemm_gflops()
    rows = []
    for hidden in (int(h) for h in hidden_sizes.split(",")):
        rows.append(measured_fit(hidden, epochs, X, y))
        rows[-1]["replayed"] = products.product_times(hidden, rows[-1].pop("epoch_shapes"))
        rows[-1]["products_roofline_share"] = rows[-1]["products_gflops"] / gemm_rates["roofline"]
    kind = products.cpu_kind()
    text = (f"{kind}; 2048^3 roofline {gemm_rates['roofline']:.0f} GFLOPS\n\nThe parts of a step (us per step):\n\n"
            f"{step_table(rows, keras)}\n\nThe two big products against the plain GEMM of the same shapes:\n\n"
            f"{product_table(rows)}")
    click.echo(text)
    if output:
        meta = files.run_metadata({"hidden_sizes": hidden_sizes, "epochs": epochs})
        record = {**meta, "cpu_kind": kind, "gemm_gflops": gemm_rates, "rows": rows}
        Path(output).write_text(json.dumps(record, indent=2) + "\n")
    if markdown:
        with open(markdown, "a") as f:
            f.write(f"## {kind}\n\nCommand: `{products.command_line('bench.bound')}`  \n"
                    f"Date: {files.run_metadata({})['date']}\n\n```\n{text}\n```\n\n")


if __name__ == "__main__":
    main()
