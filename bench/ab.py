"""A/B of my_net's fit: this checkout's my_net.py against my_net.py at a git revision.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.ab --against HEAD~1 --epochs 20

Both versions fit in one process from the same initial weights on the same permutations, whole fits taking
turns (which goes first alternates), so a drift in the machine's speed, up to 2x within minutes on these
shared machines, hits both alike. Whole fits, so that what a fit does once is counted. Prints each
version's best and median fit time, best steady epoch, and the largest weight difference at the end: 0
when the change leaves the arithmetic alone, float32 round-off growing over the epochs when it sums in
another order. Each version runs with its own revision's modules (my_net imports optimizers, results,
...), loaded from `git archive` into a temporary directory that is removed again. Memory a fit allocates
is faulted in once per process, so the later fits of both versions pay less for it than a fresh
process does (bench/bench.py runs every fit in its own).
"""

from __future__ import annotations

import importlib
import inspect
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType

import click
import numpy as np
from tabulate import tabulate

from mnist_compare.data import idx
from mnist_compare.nets import my_net

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZE, LR = 128, 0.1


def my_net_at(revision: str) -> ModuleType:
    """my_net as it was at `revision`, with the project modules of that revision it imports: the package's
    (mnist_compare.nets.my_net) or, before the package, the flat layout's (my_net.py at the root). This
    checkout's modules are put back in sys.modules afterwards."""
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()[-1]
        raise click.UsageError(f"--against {revision}: {message}")
    with tempfile.TemporaryDirectory() as directory, tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        packaged = any(m.name.startswith("mnist_compare/") for m in tar.getmembers())
        wanted = [m for m in tar.getmembers() if m.name.endswith(".py")
                  and (m.name.startswith("mnist_compare/") if packaged else "/" not in m.name)]
        tar.extractall(directory, members=wanted, filter="data")
        def owned(name: str) -> bool:  # the modules the old version brings, which must not mix with ours
            return name.split(".")[0] == "mnist_compare" if packaged else name in flat
        flat = {path.stem for path in Path(directory).glob("*.py")}
        saved = {name: module for name, module in sys.modules.items() if owned(name)}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, directory)
        try:
            return importlib.import_module("mnist_compare.nets.my_net" if packaged else "my_net")
        finally:
            sys.path.remove(directory)
            for name in [name for name in sys.modules if owned(name)]:
                del sys.modules[name]
            sys.modules.update(saved)


def fixed_threads(module: ModuleType) -> dict[str, str]:
    """BLAS's own thread count for a version that can follow the load: both versions then round alike."""
    return {"blas_threads": "all"} if "blas_threads" in inspect.signature(module.NeuralNetwork).parameters else {}


def alternate_fits(versions: dict[str, ModuleType], hidden: int, epochs: int, rounds: int, X: np.ndarray,
                   y: np.ndarray) -> tuple[dict[str, list[float]], dict[str, list[float]], float]:
    """Fit one net per version on X (N, 784), y (N,) labels, whole fits taking turns for `rounds` rounds
    (which goes first alternates), all from the same initial weights and permutations; return every
    version's fit times and steady-epoch times (median of epochs 2..n) in s, and the max |weight
    difference| between the first two versions' nets of the last round.

    Whole fits, so that what a fit does once (choosing threads, renumbering pixels) is counted."""
    fits: dict[str, list[float]] = {name: [] for name in versions}
    steady: dict[str, list[float]] = {name: [] for name in versions}
    weights = {}
    with np.errstate(all="ignore"):
        for round_ in range(rounds):
            for name in list(versions) if round_ % 2 == 0 else reversed(list(versions)):
                net = versions[name].NeuralNetwork(784, hidden, 10, LR, seed=0, **fixed_threads(versions[name]))
                start = time.perf_counter()
                history = net.fit(X, y, BATCH_SIZE, epochs, rng=np.random.default_rng(0))
                fits[name].append(time.perf_counter() - start)
                steady[name].append(statistics.median(history["epoch_time_s"][1:] or history["epoch_time_s"]))
                weights[name] = net.get_weights()
    first, second = weights.values()
    return fits, steady, max(float(np.abs(a - b).max()) for a, b in zip(first, second, strict=True))


@click.command()
@click.option("--against", default="HEAD", show_default=True, help="Git revision whose my_net.py is version A.")
@click.option("--hidden_sizes", default="30,128,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--epochs", type=click.IntRange(min=2), default=6, show_default=True, help="Epochs per fit.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Fits per version.")
def main(against: str, hidden_sizes: str, epochs: int, rounds: int) -> None:
    """Time my_net's fits at a git revision against this checkout's, taking turns, in one process."""
    sizes = [int(h) for h in hidden_sizes.split(",")]
    versions = {against: my_net_at(against), "checkout": my_net}
    X, y, _, _ = idx.load_data()
    labels = my_net.labels_of(y)
    rows = []
    for hidden in sizes:
        fits, steady, difference = alternate_fits(versions, hidden, epochs, rounds, X, labels)
        (a, b), (sa, sb) = (min(fits[name]) for name in versions), (min(steady[name]) for name in versions)
        rows += [[hidden, name, f"{min(fits[name]):.3f}", f"{statistics.median(fits[name]):.3f}",
                  f"{min(steady[name]):.4f}"] for name in versions]
        rows[-1] += [f"{100 * (b / a - 1):+.1f}%", f"{100 * (sb / sa - 1):+.1f}%", f"{difference:.2g}"]
    click.echo(tabulate(rows, ["hidden", "my_net", "fit min (s)", "fit median (s)", "steady epoch min (s)",
                               "fit vs A", "steady vs A", "max weight diff"], tablefmt="github"))


if __name__ == "__main__":
    main()
