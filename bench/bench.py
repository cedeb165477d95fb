"""Benchmark: my_net against keras_net at several hidden sizes, side by side in one process.

    python bench/bench.py --repeats 3 --output results/benchmark.json --markdown results/benchmark.md

First the fp32 GEMM roofline: the better of NumPy's and scipy's BLAS (my_net uses scipy's), best of
several 2048^3 products each. Then, for each repeat,
every hidden size with my_net and keras_net interleaved, each timed as the tool times it (fit only,
data loaded). Reports best-of-N fit times, the keras/my ratio, my_net's useful GFLOPS and its share of
the roofline, and my_net's per-epoch first/min/median/max. Only ratios measured in one run mean anything:
these machines are shared and their speed varies by up to 2x between runs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import click
import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import experiment
import keras_net
import my_net
import read_mnist
import report
from results import atomic_write
from spec import RunSpec

NETS = {"my_net": my_net.NeuralNetwork, "keras_net": keras_net.KerasNet}

GEMM_SIZE = 2048


def gemm_gflops(repeats: int = 7) -> dict[str, float]:
    """Best-of-`repeats` fp32 GEMM rate on (2048, 2048) @ (2048, 2048), in GFLOPS, of NumPy's BLAS and
    of scipy's (the one my_net uses), taking turns; "roofline" is the higher of the two."""
    a = np.random.default_rng(0).random((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    out = np.empty_like(a)
    products = {"numpy": lambda: np.matmul(a, a, out=out), "scipy": lambda: my_net.gemm(a, a, out)}
    times: dict[str, list[float]] = {name: [] for name in products}
    for _ in range(repeats + 1):  # the first round warms both libraries up and is not counted
        for name, product in products.items():
            time.sleep(0.3)  # the other library's threads stop spinning before this one starts
            start = time.perf_counter()
            product()
            times[name].append(time.perf_counter() - start)
    rates = {name: 2 * GEMM_SIZE**3 / min(ts[1:]) / 1e9 for name, ts in times.items()}
    return {**rates, "roofline": max(rates.values())}


def thread_settings() -> dict[str, str | int]:
    """How many threads each library may use, as this run saw it (0 in TensorFlow: its default)."""
    keras_net.import_keras()
    import tensorflow as tf  # already imported, quietly, by import_keras

    return {"cpu_count": os.cpu_count(), "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
            "tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def useful_gflop(hidden: int, examples: int, epochs: int, inputs: int = 784, classes: int = 10) -> float:
    """2 (d h + h c) FLOPs forward and as many backward per example (no input gradient), in GFLOP."""
    return 4 * (inputs * hidden + hidden * classes) * examples * epochs / 1e9


def run_once(net: str, hidden: int, epochs: int, data: tuple, seed: int) -> dict:
    """One run timed exactly as the tool times it: experiment.train."""
    result = experiment.train(RunSpec(NETS[net], hidden, 0.1, 128, epochs, seed), data)
    return {"net": net, "hidden_size": hidden, "seed": seed, "train_time_s": result.train_time_s,
            "epoch_time_s": result.history["epoch_time_s"], "test_accuracy": result.test_accuracy}


def summarise(runs: list[dict], hidden: int, epochs: int, examples: int, roofline: float) -> dict:
    mine = [r for r in runs if r["net"] == "my_net" and r["hidden_size"] == hidden]
    theirs = [r for r in runs if r["net"] == "keras_net" and r["hidden_size"] == hidden]
    best_mine = min(mine, key=lambda r: r["train_time_s"])
    best_theirs = min(r["train_time_s"] for r in theirs)
    gflops = useful_gflop(hidden, examples, epochs) / best_mine["train_time_s"]
    epochs_s = best_mine["epoch_time_s"]
    return {"hidden_size": hidden, "my_net_s": best_mine["train_time_s"], "keras_net_s": best_theirs,
            "ratio": best_theirs / best_mine["train_time_s"], "my_net_gflops": gflops,
            "roofline_share": gflops / roofline, "epoch_min_s": min(epochs_s),
            "epoch_median_s": statistics.median(epochs_s), "epoch_max_s": max(epochs_s),
            "first_epoch_s": epochs_s[0]}


def render(rows: list[dict], gemm_rates: dict[str, float]) -> str:
    table = [[r["hidden_size"], f"{r['my_net_s']:.2f}", f"{r['keras_net_s']:.2f}", f"{r['ratio']:.2f}x",
              f"{r['my_net_gflops']:.0f}", f"{100 * r['roofline_share']:.0f}%",
              f"{r['first_epoch_s']:.3f} / {r['epoch_min_s']:.3f} / {r['epoch_median_s']:.3f} / "
              f"{r['epoch_max_s']:.3f}"] for r in rows]
    headers = ["hidden", "my_net (s)", "keras_net (s)", "keras/my", "my_net GFLOPS", "% of GEMM roofline",
               "my_net epoch first / min / median / max (s)"]
    return (f"GEMM roofline (fp32, {GEMM_SIZE}^3, best of 7): {gemm_rates['roofline']:.0f} GFLOPS "
            f"(NumPy's BLAS {gemm_rates['numpy']:.0f}, scipy's BLAS, which my_net uses, {gemm_rates['scipy']:.0f})\n\n"
            + tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))


@click.command()
@click.option("--hidden_sizes", default="30,128,256,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Best-of-N per net.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write every run and the summary as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the table and the command as Markdown.")
def main(hidden_sizes: str, epochs: int, repeats: int, output: str | None, markdown: str | None) -> None:
    """Measure the GEMM roofline, then my_net and keras_net, interleaved, best-of-N."""
    sizes = [int(h) for h in hidden_sizes.split(",")]
    data = read_mnist.load_data()
    keras_net.import_keras()
    gemm_rates = gemm_gflops()
    roofline = gemm_rates["roofline"]
    runs = []
    for repeat in range(repeats):
        for hidden in sizes:
            for net in ("my_net", "keras_net"):
                runs.append(run_once(net, hidden, epochs, data, seed=repeat))
                click.echo(f"repeat {repeat + 1}/{repeats} hidden {hidden} {net}: "
                           f"{runs[-1]['train_time_s']:.2f}s", err=True)
    rows = [summarise(runs, h, epochs, len(data[0]), roofline) for h in sizes]
    text = render(rows, gemm_rates)
    click.echo(text)
    meta = report.run_metadata({"hidden_sizes": sizes, "epochs": epochs, "repeats": repeats, "batch_size": 128,
                                "lr": 0.1})
    if output:
        with atomic_write(output) as f:
            json.dump({**meta, "gemm_gflops": gemm_rates, "threads": thread_settings(), "summary": rows,
                       "runs": runs}, f, indent=2)
            f.write("\n")
    if markdown:
        with atomic_write(markdown) as f:
            f.write(f"# Benchmark\n\nCommand: `python {' '.join(sys.argv)}`  \n"
                    f"Date: {meta['date']}; CPU: {meta['cpu']} ({meta['cpu_count']} cores); "
                    f"numpy {meta['libraries']['numpy']}, tensorflow {meta['libraries']['tensorflow']},"
                    f" keras {meta['libraries']['keras']}\n\n{text}\n")


if __name__ == "__main__":
    main()
