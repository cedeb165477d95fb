"""The command's options as one typed value (Options), and the frozen Plan made from them before any work:
the seed drawn, the runs (or --check's one setting), the --baseline read, the load before the runs. Every
refusal that must come before training happens here; a mode receives the Plan and reads it.

Not for: declaring options (options.py), checking one value (values.py) or training (modes.py, runs/).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import click

from mnist_compare.cli import refusals
from mnist_compare.cli.values import BUILTIN_NETS, NetChoice, checked_seed
from mnist_compare.nets import keras_net, my_net
from mnist_compare.nets.keras_backends import backend_problem, current_backend
from mnist_compare.nets.user_net import settings_problem, shape_problem
from mnist_compare.records.saved import SavedRuns
from mnist_compare.records.spec import OptimizerSettings, RunSpec
from mnist_compare.runs import runner
from mnist_compare.runs.sources import DataSource
from mnist_compare.system.machine import load_average


@dataclass(frozen=True)
class Options:
    """The command's options as parsed and checked by values.py: one typed value, read as options.x after.
    `given` names each option that came from the command line or the environment, and where from."""

    net_type: NetChoice
    compare_nets: bool
    check: bool
    paired: bool
    repeats: int | str  # a number, or "auto" (repeats.py decides, up to max_repeats)
    precision: float
    max_repeats: int
    budget: float | None
    seed: int | None
    data_dir: str | None
    data_source: str
    hidden_size: list[int]
    lr: list[float]
    batch_size: list[int]
    number_epochs: int
    init: str
    optimizer: str
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float
    table_format: str
    output: tuple[str, ...]
    plot: str | None
    eval_every_epoch: bool
    confusion: bool
    report: str | None
    report_title: str | None
    profile: bool
    min_test_accuracy: float | None
    target_accuracy: float | None
    quiet: bool
    verbose: bool
    baseline: str | None
    history: str | None
    gradescope: str | None
    check_weights: dict[str, float] | None
    check_timeout: float
    check_memory: int
    margin: float
    max_slowdown: float
    keras_backend: list[str] | None
    steps_per_execution: int
    jit_compile: str
    blas_threads: str
    scheduler: str | None
    worker_threads: int | None
    given: Mapping[str, str] = field(default_factory=dict)  # option name -> "command line" | "environment"

    @property
    def mode(self) -> str:
        """The one place the mode is decided: "check", "cluster" or "here" (modes.MODES' keys)."""
        return "check" if self.check else "cluster" if self.scheduler else "here"

    @property
    def planned_repeats(self) -> int:
        """The repeats planned: --repeats N, or --max_repeats with auto (the rule may stop a setting sooner)."""
        return self.max_repeats if self.repeats == "auto" else int(self.repeats)

    @property
    def source(self) -> DataSource:
        return DataSource(self.data_dir, self.data_source == "keras")

    def template(self, seed: int) -> RunSpec:
        """The RunSpec of the first setting; sweeps and repeats replace its sizes, lr and seed."""
        return RunSpec(self.net_type.net, self.hidden_size[0], self.lr[0], self.batch_size[0], self.number_epochs,
                       seed, self.paired, self.eval_every_epoch,
                       OptimizerSettings(self.optimizer, self.momentum, self.beta_1, self.beta_2, self.epsilon),
                       self.init, target_accuracy=self.target_accuracy, blas_threads=self.blas_threads,
                       steps_per_execution=self.steps_per_execution, jit_compile=self.jit_compile)

    def sweeps(self) -> dict[str, list]:
        """The values of the options a comma list sweeps (--check takes one of each)."""
        return {name: getattr(self, name) for name in refusals.SWEEPS}

    def recorded(self, seed: int | None) -> dict:
        """The options as results files record them: each value as parsed, the seed drawn, --net_type as given."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "given"}
        return {**values, "seed": seed, "net_type": self.net_type.text}


@dataclass(frozen=True)
class Plan:
    """What the command will do, decided before any work: the seed (drawn when --seed is absent), the first
    setting's spec (all --check runs), every training run in order, the --baseline read, and the machine's
    load average just before the runs."""

    seed: int
    template: RunSpec
    specs: tuple[RunSpec, ...] = ()
    baseline: SavedRuns | None = None
    load_before: tuple[float, ...] | None = None


def make_plan(options: Options, read_baseline: Callable[[str | None], SavedRuns | None]) -> Plan:
    """The Plan of `options`, or a usage error (exit 2) for what its mode cannot honour or run.
    `read_baseline(path)` reads --baseline (exiting 2 or 4 on a bad file)."""
    refusals.refuse_what_the_mode_ignores(options.mode, options.given, options.sweeps())
    if options.mode == "cluster" and options.repeats == "auto":
        raise click.UsageError("--repeats auto decides between repeats on this machine; with --scheduler give "
                               "--repeats N")
    if options.paired and not options.compare_nets:
        raise click.UsageError("--paired needs --compare_nets (it pairs the two nets)")
    refusals.refuse_without_what_they_need(options.given, {"baseline": options.baseline is not None,
                                                           "repeats_auto": options.repeats == "auto",
                                                           "check": options.check,
                                                           "report": options.report is not None})
    refusals.refuse_trackers_with_check(options.check, options.output)
    base = read_baseline(options.baseline)
    refusals.refuse_oversized(options.hidden_size, options.batch_size)
    seed = checked_seed(options.seed, options.planned_repeats, secrets.randbelow)
    template = options.template(seed)
    planned = contenders(template, options.compare_nets, options.keras_backend, build=not options.check)
    if options.check:
        return Plan(seed, template)
    specs = runner.plan_runs(planned, options.hidden_size, options.lr, options.batch_size, options.planned_repeats)
    refusals.refuse_unmatched(base, specs)
    return Plan(seed, template, tuple(specs), base, load_average())


def contenders(template: RunSpec, compare_nets: bool, keras_backends: list[str] | None,
               build: bool = True) -> list[RunSpec]:
    """The nets of each setting, in training order: my_net (or the user's net), then Keras on each backend
    asked for (or on KERAS_BACKEND, unnamed). Refuses what cannot run, before any training; with `build`, a
    user's net is built once to see its weights' shapes (--check's interface check does that in its own
    process instead)."""
    first = my_net.NeuralNetwork if template.net is keras_net.KerasNet else template.net
    wanted = [first, keras_net.KerasNet] if compare_nets else [template.net]
    if first not in BUILTIN_NETS.values() and first in wanted:
        refuse_unfit_user_net(replace(template, net=first), build)
    planned = [replace(template, net=net) for net in wanted if net is not keras_net.KerasNet]
    if keras_net.KerasNet in wanted:
        refuse_unusable_backends(template, keras_backends)
        planned += [replace(template, net=keras_net.KerasNet, keras_backend=b) for b in keras_backends or [None]]
    return planned


def refuse_unusable_backends(template: RunSpec, keras_backends: list[str] | None) -> None:
    """A usage error for a backend that is unknown or not installed, and for --steps_per_execution on torch."""
    source = "--keras_backend" if keras_backends else "KERAS_BACKEND"
    for backend in keras_backends or [current_backend()]:
        problem = backend_problem(backend, source)
        if problem:
            raise click.UsageError(problem)
        if backend == "torch" and template.steps_per_execution != 1:
            raise click.UsageError("--steps_per_execution: Keras' torch backend does not support it; leave it at 1 "
                                   "or drop torch from --keras_backend")


def refuse_unfit_user_net(spec: RunSpec, build: bool = True) -> None:
    """A usage error when a user's net cannot take the settings asked for or (built, with `build`) has the
    wrong weight shapes."""
    problem = settings_problem(spec) or (shape_problem(spec, 784) if build else None)
    if problem:
        raise click.UsageError(problem)
