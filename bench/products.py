"""my_net's two big products against the plain GEMM of the same shapes and the 2048^3 roofline, per CPU kind.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.products --markdown results/products.md

A default fit (batch 128) multiplies, every step, Z1 = X W1 (n x k x h) and W1 -= lr X^T dZ1 (k x n x h), k the
pixels the batch needs (pixels.py). Here one epoch's batch shapes, drawn as a fit draws them, are replayed twice:
through my_net's gemm (fixed blocks on OpenBLAS's batched GEMM: the same bits at any thread count, blas.py) and
as one plain call of scipy's sgemm with OpenBLAS's own threads (the same library, kernels, alpha and beta; its
bits depend on the thread count). The two take turns, best of N rounds, so the share "plain time / my_net's
time" is a ratio from one run: these shared machines drift 1.5x in minutes. The roofline is the best 2048^3
product of NumPy's and scipy's BLAS. Markdown output is appended, a section per CPU kind (CPU, OpenBLAS kernel).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import click
import numpy as np
from tabulate import tabulate

from mnist_compare.data import idx
from mnist_compare.nets import blas
from mnist_compare.nets.pixels import RenumberedPixels
from mnist_compare.output import files
from mnist_compare.system import machine

GEMM_SIZE = 2048
KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # set on this project's machines to pin a kernel
BATCH_SIZE, LR = 128, 0.1
ROUNDS = 5


def gemm_gflops(repeats: int = 7) -> dict[str, float]:
    """Best-of-`repeats` fp32 GEMM rate on (2048, 2048) @ (2048, 2048), in GFLOPS, of NumPy's BLAS and
    of scipy's (the one my_net uses), taking turns; "roofline" is the higher of the two."""
    a = np.random.default_rng(0).random((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    out = np.empty_like(a)
    products = {"numpy": lambda: np.matmul(a, a, out=out), "scipy": lambda: blas.gemm(a, a, out)}
    times: dict[str, list[float]] = {name: [] for name in products}
    for _ in range(repeats + 1):  # the first round warms both libraries up and is not counted
        for name, product in products.items():
            time.sleep(0.3)  # the other library's threads stop spinning before this one starts
            start = time.perf_counter()
            product()
            times[name].append(time.perf_counter() - start)
    rates = {name: 2 * GEMM_SIZE**3 / min(ts[1:]) / 1e9 for name, ts in times.items()}
    return {**rates, "roofline": max(rates.values())}


def command_line(module: str) -> str:
    """How this run was started, with the OpenBLAS kernel variables as they were: unset (the CPU's own
    kernel) or the value that chose another."""
    pinned = " ".join(f"{name}={os.environ[name]}" for name in KERNEL_VARIABLES if name in os.environ)
    prefix = pinned or "env " + " ".join(f"-u {name}" for name in KERNEL_VARIABLES)
    return f"{prefix} python -m {module} {shlex.join(sys.argv[1:])}"


def cpu_kind() -> str:
    """The CPU's name and the kernel scipy's OpenBLAS runs on it, e.g. "AMD EPYC, OpenBLAS SkylakeX"."""
    scipy_blas = [b for b in machine.blas_libraries() if "scipy" in (b.get("filepath") or "")]
    kernel = f"OpenBLAS {scipy_blas[0]['architecture']}" if scipy_blas else "no OpenBLAS"
    return f"{files.cpu_name()}, {kernel}"


def epoch_shapes(X: np.ndarray, batch_size: int = BATCH_SIZE, seed: int = 0) -> list[tuple[int, int]]:
    """(n, k) of every batch of one epoch of X (N, d) in a fit's order: n examples, k the renumbered pixels
    they need (what the first layer's products multiply)."""
    prefixes = RenumberedPixels(X).epoch_prefixes(np.random.default_rng(seed).permutation(len(X)), batch_size)
    return [(min(batch_size, len(X) - start), k) for start, k in zip(range(0, len(X), batch_size), prefixes,
                                                                      strict=True)]


class Operands:
    """Random operands as large as the largest batch, sliced to each (n, k): X (n, k), W1 (k, h), dZ1 (n, h)."""

    def __init__(self, shapes: list[tuple[int, int]], hidden: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        n, k = max(s[0] for s in shapes), max(s[1] for s in shapes)
        self.X = rng.random(n * k, dtype=np.float32)
        self.W1 = rng.standard_normal((k, hidden), dtype=np.float32) * 0.05
        self.H = np.empty((n, hidden), np.float32)
        self.dZ1 = rng.standard_normal((n, hidden), dtype=np.float32) * 1e-3

    def step(self, n: int, k: int, product) -> None:
        """The step's two products, as my_net calls them (sgd_step, forward_into), through `product`."""
        X = self.X[:n * k].reshape(n, k)
        product(X, self.W1[:k], self.H[:n], 1.0, 1.0)
        product(X.T, self.dZ1[:n], self.W1[:k], -LR * 1e-3, 1.0)


def product_times(hidden: int, shapes: list[tuple[int, int]], rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds per step of the two big products over `shapes` (epoch_shapes), my_net's gemm and the plain
    GEMM taking turns, best of `rounds` (after one round to warm up), and their GFLOPS."""
    operands = Operands(shapes, hidden)
    best = {"my_net": float("inf"), "plain": float("inf")}
    for _ in range(rounds + 1):
        # "plain": one call of scipy's sgemm on OpenBLAS's own threads, the plain GEMM of the shape
        for name, product in (("my_net", blas.gemm), ("plain", blas.single_call)):
            start = time.perf_counter()
            for n, k in shapes:
                operands.step(n, k, product)
            best[name] = min(best[name], (time.perf_counter() - start) / len(shapes))
    flops = 4.0 * hidden * sum(n * k for n, k in shapes) / len(shapes)
    return {"my_net_s": best["my_net"], "plain_s": best["plain"], "my_net_gflops": flops / best["my_net"] / 1e9,
            "plain_gflops": flops / best["plain"] / 1e9, "share_of_plain": best["plain"] / best["my_net"]}


def product_rows(sizes: list[int], roofline: float, rounds: int = ROUNDS) -> list[dict]:
    """product_times at each hidden size on MNIST's training set, with each rate's share of the roofline."""
    shapes = epoch_shapes(idx.load_data()[0])
    rows = []
    for hidden in sizes:
        times = product_times(hidden, shapes, rounds)
        rows.append({"hidden_size": hidden, **times, "my_net_roofline_share": times["my_net_gflops"] / roofline,
                     "plain_roofline_share": times["plain_gflops"] / roofline})
    return rows


def render(rows: list[dict]) -> str:
    """The table: per hidden size, both rates and their shares of the plain GEMM and of the roofline."""
    table = [[r["hidden_size"], f"{r['my_net_s'] * 1e6:.0f} ({r['my_net_gflops']:.0f})",
              f"{r['plain_s'] * 1e6:.0f} ({r['plain_gflops']:.0f})", f"{100 * r['share_of_plain']:.0f}%",
              f"{100 * r['my_net_roofline_share']:.0f}%", f"{100 * r['plain_roofline_share']:.0f}%"] for r in rows]
    return tabulate(table, headers=["hidden", "my_net's 2 products, us/step (GFLOPS)",
                                       "plain GEMM, us/step (GFLOPS)", "my_net / plain GEMM rate",
                                   "my_net / roofline", "plain GEMM / roofline"],
                    tablefmt="github", disable_numparse=True)


@click.command()
@click.option("--hidden_sizes", default="30,128,256,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--rounds", type=click.IntRange(min=1), default=ROUNDS, show_default=True, help="Best of N rounds.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the rows as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Append this CPU kind's section as Markdown.")
def main(hidden_sizes: str, rounds: int, output: str | None, markdown: str | None) -> None:
    """Replay one epoch's products through my_net's gemm and the plain GEMM, taking turns, best of N."""
    pinned = machine.kernel_pin_warning()
    if pinned:
        click.echo(f"Warning: {pinned}", err=True)
    gemm_rates = gemm_gflops()
    rows = product_rows([int(h) for h in hidden_sizes.split(",")], gemm_rates["roofline"], rounds)
    kind = cpu_kind()
    text = (f"{GEMM_SIZE}^3 roofline: {gemm_rates['roofline']:.0f} GFLOPS (NumPy's BLAS {gemm_rates['numpy']:.0f}, "
            f"scipy's {gemm_rates['scipy']:.0f})\n\n{render(rows)}")
    click.echo(f"{kind}\n\n{text}")
    meta = files.run_metadata({"hidden_sizes": hidden_sizes, "rounds": rounds})
    if output:
        Path(output).write_text(json.dumps({**meta, "cpu_kind": kind, "gemm_gflops": gemm_rates, "rows": rows},
                                           indent=2) + "\n")
    if markdown:
        with open(markdown, "a") as f:
            f.write(f"## {kind}\n\nCommand: `{command_line('bench.products')}`  \n"
                    f"Date: {meta['date']}; numpy {meta['libraries']['numpy']}, "
                    f"scipy {meta['libraries'].get('scipy')}\n\n{text}\n\n")


if __name__ == "__main__":
    main()
