"""Benchmark: my_net against every peer, side by side in one run, on the CPU's own BLAS kernels.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench --repeats 3 --load \
        --output results/benchmark.json --markdown results/benchmark.md

First the fp32 GEMM roofline (NumPy's and scipy's BLAS, best of 7 2048^3 products) with the kernel and
thread count each runs (threadpoolctl; a warning when an environment variable pins an older kernel). Then,
for each repeat, every hidden size with every contender interleaved: my_net, Keras on each installed backend
(another backend than TensorFlow in a worker process) and PyTorch eager as a reference, each timed exactly as
the tool times it (experiment.train). Reports best-of-N fit times, steady and first epochs, my_net's ratio to
the fastest Keras, its dense-equivalent GFLOPS and share of the roofline, and the issue's targets. With
--load, my_net again under one busy core (a bounded helper process, always stopped), as it comes (its BLAS
threads following the load) and with one BLAS thread. Each fit runs in its own process.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import replace

import click
from tabulate import tabulate

from bench import products
from bench.products import GEMM_SIZE, gemm_gflops
from mnist_compare.data import idx
from mnist_compare.nets import keras_backends, keras_net, my_net
from mnist_compare.output import files
from mnist_compare.records.results import atomic_write
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs.worker import DataSource, train_in_worker
from mnist_compare.system import machine

LOAD_SECONDS = 1800  # the busy helper stops by itself after this, whatever happens to the benchmark


def contenders() -> dict[str, RunSpec]:
    """name -> spec template of every contender installed here: my_net, Keras per backend, PyTorch eager."""
    found = {"my_net": RunSpec(my_net.NeuralNetwork)}
    for backend in keras_backends.installed_backends():
        found[f"keras_net[{backend}]"] = RunSpec(keras_net.KerasNet, keras_backend=backend)
    if "torch" in keras_backends.installed_backends():
        from bench.torch_reference import TorchEagerNet

        found["pytorch_eager"] = RunSpec(TorchEagerNet)
    return found


def useful_gflop(hidden: int, examples: int, epochs: int, inputs: int = 784, classes: int = 10) -> float:
    """2 (d h + h c) FLOPs forward and as many backward per example (no input gradient), in GFLOP."""
    return 4 * (inputs * hidden + hidden * classes) * examples * epochs / 1e9


def timed(name: str, template: RunSpec, hidden: int, epochs: int, seed: int) -> dict:
    """One fit in a fresh process, timed there by experiment.train. A process each, because the thread pools
    a contender leaves behind (OpenMP's, TensorFlow's, a second OpenBLAS) spin on after it and slowed the next
    contender in a shared process (my_net 2.3x at hidden 128, measured)."""
    spec = replace(template, hidden_size=hidden, number_epochs=epochs, seed=seed)
    result = train_in_worker(spec, DataSource(), None)
    return {"net": name, "hidden_size": hidden, "seed": seed, "train_time_s": result.train_time_s,
            "first_epoch_s": result.first_epoch_s, "steady_epoch_s": result.steady_epoch_s,
            "epoch_time_s": result.history["epoch_time_s"], "test_accuracy": result.test_accuracy,
            "net_info": result.net_info}


def summarise(runs: list[dict], hidden: int, epochs: int, examples: int, roofline: float) -> dict:
    """Best-of-N per contender at one hidden size, and my_net against the fastest Keras."""
    best = {}
    for run in (r for r in runs if r["hidden_size"] == hidden):
        if run["net"] not in best or run["train_time_s"] < best[run["net"]]["train_time_s"]:
            best[run["net"]] = run
    steady = {name: min(r["steady_epoch_s"] for r in runs if r["net"] == name and r["hidden_size"] == hidden)
              for name in best}
    keras = [name for name in best if name.startswith("keras_net")]
    fastest = min(keras, key=lambda name: best[name]["train_time_s"])
    steadiest = min(keras, key=lambda name: steady[name])
    mine = best["my_net"]
    gflops = useful_gflop(hidden, examples, epochs) / mine["train_time_s"]
    return {"hidden_size": hidden, "best_s": {name: r["train_time_s"] for name, r in best.items()},
            "steady_epoch_s": steady, "first_epoch_s": {name: r["first_epoch_s"] for name, r in best.items()},
            "fastest_keras": fastest, "my_net_s": mine["train_time_s"], "keras_net_s": best[fastest]["train_time_s"],
            "ratio": best[fastest]["train_time_s"] / mine["train_time_s"],
            "steady_ratio": steady[steadiest] / steady["my_net"], "my_net_gflops": gflops,
            "roofline_share": gflops / roofline,
            "first_layer_share": (mine.get("net_info") or {}).get("first_layer_share") or 1.0}


def busy_core() -> subprocess.Popen:
    """One core kept busy by another process, as a browser or a CI neighbour would; it ends by itself."""
    code = f"import time\nend = time.monotonic() + {LOAD_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def under_load(sizes: list[int], epochs: int, repeats: int) -> tuple[list[dict], list[dict]]:
    """my_net as it comes (--blas_threads auto) and with one BLAS thread, taking turns, while another process
    keeps one core busy; returns the best of each per hidden size, and every run."""
    helper = busy_core()
    rows, runs = [], []
    try:
        time.sleep(1)
        for hidden in sizes:
            times: dict[str, list[float]] = {"default": [], "one_thread": []}
            for repeat in range(repeats):
                for name, threads in (("default", "auto"), ("one_thread", "1")):
                    spec = RunSpec(my_net.NeuralNetwork, blas_threads=threads)
                    runs.append({**timed("my_net", spec, hidden, epochs, repeat), "under_load": name})
                    times[name].append(runs[-1]["train_time_s"])
            rows.append({"hidden_size": hidden, **{name: min(ts) for name, ts in times.items()}})
    finally:
        helper.kill()
        helper.wait()
    return rows, runs


def targets(rows: list[dict], load_rows: list[dict], product_rows: list[dict]) -> list[str]:
    """The issues' targets, each with its verdict in this run."""
    lines = [f"hidden {r['hidden_size']}: fit {r['ratio']:.2f}x faster than {r['fastest_keras']} (target >= 2: "
             f"{'met' if r['ratio'] >= 2 else 'not met'}); steady epoch {r['steady_ratio']:.2f}x (target >= 1.5: "
             f"{'met' if r['steady_ratio'] >= 1.5 else 'not met'})" for r in rows]
    lines += [f"hidden {r['hidden_size']}: {100 * r['roofline_share']:.0f}% of the GEMM roofline, dense-equivalent "
              f"(target >= 70%: "
              f"{'met' if r['roofline_share'] >= 0.7 else 'not met'})" for r in rows if r["hidden_size"] == 300]
    lines += [f"hidden {r['hidden_size']}: my_net's products at {100 * r['share_of_plain']:.0f}% of the plain GEMM "
              f"of the same shapes (target >= 90%: {'met' if r['share_of_plain'] >= 0.9 else 'not met'})"
              for r in product_rows]
    quiet = {r["hidden_size"]: r["my_net_s"] for r in rows}
    for r in load_rows:
        one, own = r["default"] / r["one_thread"], r["default"] / quiet[r["hidden_size"]]
        lines.append(f"hidden {r['hidden_size']} under one busy core: {one:.2f}x one BLAS thread's time (target <= "
                     f"1.2: {'met' if one <= 1.2 else 'not met'}), {own:.2f}x its quiet time (target <= 1.8: "
                     f"{'met' if own <= 1.8 else 'not met'})")
    return lines


def render(rows: list[dict], load_rows: list[dict], gemm_rates: dict[str, float], blas: list[dict],
           product_rows: list[dict]) -> str:
    names = list(rows[0]["best_s"])
    table = [[r["hidden_size"], *(f"{r['best_s'][n]:.2f} ({r['steady_epoch_s'][n]:.3f} / {r['first_epoch_s'][n]:.2f})"
                                  for n in names), f"{r['ratio']:.2f}x", f"{r['steady_ratio']:.2f}x",
              f"{r['my_net_gflops']:.0f}", f"{100 * r['roofline_share']:.0f}%",
              f"{100 * r['first_layer_share']:.0f}%"] for r in rows]
    kernels = ", ".join(f"{b['internal_api']} {b['architecture']} x{b['num_threads']}" for b in blas)
    text = (f"GEMM roofline (fp32, {GEMM_SIZE}^3, best of 7): {gemm_rates['roofline']:.0f} GFLOPS (NumPy's BLAS "
            f"{gemm_rates['numpy']:.0f}, scipy's {gemm_rates['scipy']:.0f}); kernels: {kernels}\n\n"
            "Fit time in seconds, best of N (steady epoch / first epoch):\n\n"
            + tabulate(table, headers=["hidden", *names, "fastest Keras / my_net", "steady ratio",
                                       "my_net dense-equivalent GFLOPS", "% of roofline (dense-equivalent)",
                                       "first-layer work done"], tablefmt="github", disable_numparse=True)
            + "\n\nDense-equivalent: the multiply-adds of the dense network, 4 (d h + h c) per example and epoch, "
              "over my_net's fit time, although my_net skips the pixels a batch has at zero (pixels.py) and does "
              "only the share of the first layer's work in the last column.")
    if load_rows:
        text += "\n\nUnder one busy core, my_net fit time (s), best of N:\n\n" + tabulate(
            [[r["hidden_size"], f"{r['default']:.2f}", f"{r['one_thread']:.2f}"] for r in load_rows],
            headers=["hidden", "my_net (default: --blas_threads auto)", "my_net (--blas_threads 1)"],
            tablefmt="github")
    text += (f"\n\nmy_net's two big products (X W1 and the W1 update) replayed on one epoch's batch shapes, taking "
             f"turns with the plain GEMM of the same shapes (scipy's sgemm on OpenBLAS's own threads), best of "
             f"{products.ROUNDS} (bench/products.py), on {products.cpu_kind()}:\n\n"
             + products.render(product_rows))
    return text + "\n\nTargets:\n\n" + "\n".join(f"- {line}" for line in targets(rows, load_rows, product_rows))


@click.command()
@click.option("--hidden_sizes", default="30,128,256,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--epochs", type=click.IntRange(min=2), default=20, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Best-of-N per net.")
@click.option("--load", is_flag=True, help="Also time my_net under one busy core.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write every run and the summary as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the tables and the command as Markdown.")
def main(hidden_sizes: str, epochs: int, repeats: int, load: bool, output: str | None, markdown: str | None) -> None:
    """Measure the GEMM roofline, then every contender, interleaved, best-of-N (and under load)."""
    pinned = machine.kernel_pin_warning()
    if pinned:
        click.echo(f"Warning: {pinned}", err=True)
    sizes = [int(h) for h in hidden_sizes.split(",")]
    examples = len(idx.load_data()[0])
    gemm_rates, blas = gemm_gflops(), machine.blas_libraries()
    product_rows = products.product_rows(sizes, gemm_rates["roofline"])
    runs = []
    for repeat in range(repeats):
        for hidden in sizes:
            for name, template in contenders().items():
                runs.append(timed(name, template, hidden, epochs, repeat))
                click.echo(f"repeat {repeat + 1}/{repeats} hidden {hidden} {name}: "
                           f"{runs[-1]['train_time_s']:.2f}s", err=True)
    rows = [summarise(runs, h, epochs, examples, gemm_rates["roofline"]) for h in sizes]
    load_rows, load_runs = under_load(sizes, epochs, repeats) if load else ([], [])
    text = render(rows, load_rows, gemm_rates, blas, product_rows)
    click.echo(text)
    meta = files.run_metadata({"hidden_sizes": sizes, "epochs": epochs, "repeats": repeats, "batch_size": 128,
                                "lr": 0.1, "load": load})
    if output:
        with atomic_write(output) as f:
            json.dump({**meta, "gemm_gflops": gemm_rates, "machine": machine.machine_record([]), "summary": rows,
                       "products": product_rows, "cpu_kind": products.cpu_kind(), "under_load": load_rows,
                       "targets": targets(rows, load_rows, product_rows), "runs": runs + load_runs}, f,
                      indent=2)
            f.write("\n")
    if markdown:
        with atomic_write(markdown) as f:
            f.write(f"# Benchmark\n\nCommand: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                    f"python -m bench.bench {shlex.join(sys.argv[1:])}`  \n"
                    f"Date: {meta['date']}; CPU: {meta['cpu']} ({meta['cpu_count']} cores); "
                    f"numpy {meta['libraries']['numpy']}, tensorflow {meta['libraries']['tensorflow']}, keras "
                    f"{meta['libraries']['keras']}, jax {meta['libraries']['jax']}, torch {meta['libraries']['torch']}"
                    f"\n\n{text}\n")


if __name__ == "__main__":
    main()
