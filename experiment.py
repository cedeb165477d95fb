"""Plan and run the training runs a command asks for: nets x settings x repeats, with progress.

Not for: option parsing (main.py) or rendering (report.py). Imports keras_net only when a Keras run
is planned, so `--net_type my` never loads TensorFlow.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from results import RunResult, hyperparameters

NETS = {"my": "my_net", "keras": "keras_net"}  # --net_type -> the net's module, also its name in the table


@dataclass(frozen=True)
class RunSpec:
    """One training run: which net, its settings, its seed, and whether it is paired with its twin."""

    net: str
    hidden_size: int
    lr: float
    batch_size: int
    number_epochs: int
    seed: int
    paired: bool = False
    eval_every_epoch: bool = False
    optimizer: str = "sgd"
    init: str = "glorot_uniform"
    optimizer_options: dict[str, float] = field(default_factory=dict, hash=False)

    def describe(self) -> str:
        return f"{NETS[self.net]} h={self.hidden_size} lr={self.lr} batch={self.batch_size} seed={self.seed}"


def plan_runs(nets: list[str], hidden_sizes: list[int], lrs: list[float], batch_sizes: list[int],
              repeats: int, seed: int, **common: Any) -> list[RunSpec]:
    """Every (setting, repeat, net) in order: settings as a cartesian product, seeds seed, seed+1, ...,
    and within each, the nets in the order given (my_net first)."""
    return [RunSpec(net, h, lr, batch, seed=seed + r, **common)
            for h, lr, batch in itertools.product(hidden_sizes, lrs, batch_sizes)
            for r in range(repeats) for net in nets]


def estimated_memory_bytes(hidden_size: int, batch_size: int, input_size: int = 784,
                           eval_chunk: int = 10_000) -> int:
    """Rough float32 footprint of one run: parameters with gradients and optimiser state (x4),
    training buffers (the gathered batch and its activations), and the evaluation chunk's activations;
    Keras needs about the same."""
    parameters = 4 * (input_size + 11) * hidden_size
    batch = min(batch_size, 60_000)
    activations = batch * (input_size + 3 * hidden_size) + 2 * eval_chunk * hidden_size
    return 4 * (parameters + activations)


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def initial_weights(spec: RunSpec, input_size: int) -> list:
    """The weights both nets of a paired run start from: my_net's initialisation for spec.seed."""
    import my_net

    return my_net.NeuralNetwork(input_size, spec.hidden_size, 10, spec.lr, spec.seed,
                                init=spec.init).get_weights()


def train(spec: RunSpec, data: tuple, on_epoch_end: Any = None) -> RunResult:
    """Run one spec on data (X_train, y_train, X_test, y_test) and return its result."""
    module = importlib.import_module(NETS[spec.net])
    pairing = {}
    if spec.paired:
        pairing = {"initial_weights": initial_weights(spec, data[0].shape[1]), "order_seed": spec.seed}
    return module.fit_and_test_net_on_MNIST(
        spec.hidden_size, spec.batch_size, spec.number_epochs, spec.lr, seed=spec.seed, data=data,
        on_epoch_end=on_epoch_end, eval_every_epoch=spec.eval_every_epoch, optimizer=spec.optimizer,
        init=spec.init, **pairing, **spec.optimizer_options)


def interrupted_result(spec: RunSpec) -> RunResult:
    settings = hyperparameters(spec.hidden_size, spec.batch_size, spec.number_epochs, spec.lr, spec.optimizer,
                               spec.init, **spec.optimizer_options)
    return RunResult(NETS[spec.net], settings, spec.seed).mark_interrupted()


class Progress:
    """tqdm bars on stderr: one over all runs (when there are several), one over each run's epochs;
    with `verbose`, a summary line per epoch. Bars hide when stderr is not a terminal or when quiet."""

    def __init__(self, total_runs: int, quiet: bool = False, verbose: bool = False):
        self.disable = True if quiet else None  # None: tqdm hides itself when stderr is not a TTY
        self.verbose = verbose and not quiet
        self.overall = tqdm(total=total_runs, desc="runs", unit="run", file=sys.stderr,
                            disable=True if quiet or total_runs < 2 else None, position=0)
        self.bar: tqdm | None = None
        self.spec: RunSpec | None = None

    def start(self, spec: RunSpec) -> None:
        self.spec = spec
        self.bar = tqdm(total=spec.number_epochs, desc=spec.describe(), unit="epoch", file=sys.stderr,
                        disable=self.disable, leave=False, position=1 if self.overall.total > 1 else 0)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{100 * logs['accuracy']:.2f}%", refresh=False)
        self.bar.update(1)
        if self.verbose:
            tqdm.write(f"{self.spec.describe()} epoch {epoch + 1}/{self.spec.number_epochs}: "
                       f"loss {logs['loss']:.4f}, accuracy {100 * logs['accuracy']:.2f}%, "
                       f"{logs['epoch_time_s']:.2f}s", file=sys.stderr)

    def finish(self) -> None:
        self.bar.close()
        self.overall.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.overall.close()


def run_all(specs: list[RunSpec], data: tuple, progress: Progress) -> tuple[list[RunResult], bool]:
    """Train every spec in order; on Ctrl-C keep the finished results, mark the running one
    interrupted, and return (results, True)."""
    results: list[RunResult] = []
    for spec in specs:
        progress.start(spec)
        try:
            results.append(train(spec, data, progress.on_epoch_end))
        except KeyboardInterrupt:
            results.append(interrupted_result(spec))
            progress.close()
            return results, True
        progress.finish()
        if progress.verbose or (progress.disable is None and not sys.stderr.isatty()):
            print(f"finished {spec.describe()}", file=sys.stderr, flush=True)
    progress.close()
    return results, False
