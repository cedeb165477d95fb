"""What one training run is: a frozen RunSpec made from the command line once and read everywhere after.

Not for: running (runs/runner.py) or rendering (report.py). Imports no net, so every module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NUM_CLASSES = 10  # the digits 0-9: the output layer's width in every net
PARAMETER_NAMES = ("W1", "b1", "W2", "b2")  # the order of Keras' get_weights(): kernel, bias, kernel, bias
EVAL_CHUNK = 10_000  # rows per forward pass in evaluation: large GEMMs, bounded memory
SETTING_KEYS = ("hidden_size", "lr", "batch_size", "optimizer", "init")  # what a sweep may vary
# The names --optimizer and --init take; each net maps them to its own formulas (nets/optimizers.py, keras_net.py).
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal")
OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class OptimizerSettings:
    """Which optimiser, with Keras' defaults for the rest; the one place each default is defined.

    `momentum` applies to "momentum", `beta_1`, `beta_2`, `epsilon` to "adam"."""

    name: str = "sgd"
    momentum: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def applicable(self) -> dict[str, float]:
        """The settings that apply to this optimiser, as recorded in results ({} for plain SGD)."""
        if self.name == "momentum":
            return {"momentum": self.momentum}
        if self.name == "adam":
            return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
        return {}


DEFAULT_OPTIMIZER = OptimizerSettings()


@dataclass(frozen=True)
class RunSpec:
    """One training run: which net (a class implementing contract.Net), its settings, its seed.

    Keras' own settings (keras_backend, steps_per_execution, jit_compile) reach only a net whose class takes
    them. `paired`: start from the weights optimizers.initial_weights draws for `seed` and visit the batches
    in the order np.random.default_rng(seed) permutes them, so two nets of one setting and seed train
    identically. `eval_every_epoch`: record test loss/accuracy after every epoch (so does `target_accuracy`).
    """

    net: type = field(compare=True)
    hidden_size: int = 30
    lr: float = 0.1
    batch_size: int = 128
    number_epochs: int = 20
    seed: int = 0
    paired: bool = False
    eval_every_epoch: bool = False
    optimizer: OptimizerSettings = DEFAULT_OPTIMIZER
    init: str = "glorot_uniform"
    target_accuracy: float | None = None  # a fraction: record when the test accuracy first reaches it
    blas_threads: str = "auto"  # my_net: "auto" (following the load), "all" (BLAS's own count) or a number
    keras_backend: str | None = None  # None: the backend KERAS_BACKEND gives (TensorFlow), unnamed in tables
    steps_per_execution: int = 1
    jit_compile: str = "auto"

    @property
    def net_name(self) -> str:
        """The net's name in tables and files: its class's name_for(spec) (keras_net[jax]), its `name`
        (my_net), or the class name."""
        if hasattr(self.net, "name_for"):
            return self.net.name_for(self)
        return getattr(self.net, "name", self.net.__name__)

    def setting(self) -> tuple:
        """The values of SETTING_KEYS: runs with the same setting differ only in net and seed."""
        return (self.hidden_size, self.lr, self.batch_size, self.optimizer.name, self.init)

    def hyperparameters(self) -> dict[str, Any]:
        """The settings as recorded in results files (the optimiser's applicable settings flattened in)."""
        return {"hidden_size": self.hidden_size, "batch_size": self.batch_size, "number_epochs": self.number_epochs,
                "lr": self.lr, "optimizer": self.optimizer.name, "init": self.init, **self.optimizer.applicable()}

    def describe(self) -> str:
        return f"{self.net_name} h={self.hidden_size} lr={self.lr} batch={self.batch_size} seed={self.seed}"
