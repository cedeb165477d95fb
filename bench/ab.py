"""A/B of my_net's training epoch: this checkout's my_net.py against my_net.py at a git revision.

    python bench/ab.py --against HEAD~1 --hidden_sizes 30,128,300 --epochs 6

Both versions train in one process from the same initial weights on the same permutations, taking turns
epoch by epoch (which goes first alternates), so a drift in the machine's speed, up to 2x within minutes
on these shared machines, hits both alike. Prints each version's min and median epoch time and the
largest weight difference at the end: 0 when the change leaves the arithmetic alone, float32 round-off
growing over the epochs when it sums in another order. Each version runs with its own revision's
modules (my_net imports optimizers, results, ...), loaded from `git archive` into a temporary directory
that is removed again.
"""

from __future__ import annotations

import importlib
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import my_net
import read_mnist

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZE, LR = 128, 0.1


def my_net_at(revision: str) -> ModuleType:
    """my_net as it was at `revision`, with the project modules of that revision it imports; this
    checkout's modules are put back in sys.modules afterwards."""
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()[-1]
        raise click.UsageError(f"--against {revision}: {message}")
    with tempfile.TemporaryDirectory() as directory, tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, members=[m for m in tar.getmembers() if m.name.endswith(".py") and "/" not in m.name],
                       filter="data")
        project = {path.stem for path in Path(directory).glob("*.py")}
        saved = {name: sys.modules.pop(name) for name in project if name in sys.modules}
        sys.path.insert(0, directory)
        try:
            return importlib.import_module("my_net")
        finally:
            sys.path.remove(directory)
            for name in project:
                sys.modules.pop(name, None)
            sys.modules.update(saved)


def alternate_epochs(versions: dict[str, ModuleType], hidden: int, epochs: int, X: np.ndarray,
                     y: np.ndarray) -> tuple[dict[str, list[float]], float]:
    """Train one net per version on X (N, 784), y (N,) labels, an epoch each in turn; return every
    version's epoch times (s) and the max |weight difference| between the first two at the end."""
    nets = {name: module.NeuralNetwork(784, hidden, 10, LR, seed=0) for name, module in versions.items()}
    workspaces = {name: versions[name].Workspace(BATCH_SIZE, net.params) for name, net in nets.items()}
    times: dict[str, list[float]] = {name: [] for name in nets}
    rng = np.random.default_rng(0)
    with np.errstate(all="ignore"):
        for epoch in range(epochs):
            order = rng.permutation(len(X))
            for name in list(nets) if epoch % 2 == 0 else reversed(list(nets)):
                start = time.perf_counter()
                nets[name].train_epoch(X, y, order, BATCH_SIZE, workspaces[name])
                times[name].append(time.perf_counter() - start)
    first, second = (net.get_weights() for net in nets.values())
    return times, max(float(np.abs(a - b).max()) for a, b in zip(first, second, strict=True))


@click.command()
@click.option("--against", default="HEAD", show_default=True, help="Git revision whose my_net.py is version A.")
@click.option("--hidden_sizes", default="30,128,300", show_default=True, help="Comma-separated hidden sizes.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True, help="Epochs per version.")
def main(against: str, hidden_sizes: str, epochs: int) -> None:
    """Time my_net's epochs at a git revision against this checkout's, alternating, in one process."""
    sizes = [int(h) for h in hidden_sizes.split(",")]
    versions = {against: my_net_at(against), "checkout": my_net}
    X, y, _, _ = read_mnist.load_data()
    labels = my_net.labels_of(y)
    rows = []
    for hidden in sizes:
        times, difference = alternate_epochs(versions, hidden, epochs, X, labels)
        (a, b) = (min(times[name]) for name in versions)
        rows += [[hidden, name, f"{min(t):.4f}", f"{statistics.median(t):.4f}"] for name, t in times.items()]
        rows[-1] += [f"{100 * (b / a - 1):+.1f}%", f"{difference:.2g}"]
    click.echo(tabulate(rows, ["hidden", "my_net", "epoch min (s)", "median (s)", "min vs A", "max weight diff"],
                        tablefmt="github"))


if __name__ == "__main__":
    main()
