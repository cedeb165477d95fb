"""Which nets a command trains, in which order, and the refusals that must come before any training.

Not for: the runs of a sweep (runner.plan_runs) or training (runner.train).
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import click

from mnist_compare.nets import keras_net, my_net
from mnist_compare.nets.keras_backends import backend_problem, current_backend
from mnist_compare.nets.user_net import shape_problem
from mnist_compare.records.spec import RunSpec

# --net_type my / keras -> the class; importing keras_net does not import TensorFlow: building a KerasNet does.
BUILTIN_NETS = {"my": my_net.NeuralNetwork, "keras": keras_net.KerasNet}


def contenders(template: RunSpec, compare_nets: bool, keras_backends: list[str] | None) -> list[RunSpec]:
    """The nets of each setting, in training order: my_net (or the user's net), then Keras on each backend
    asked for (or on KERAS_BACKEND, unnamed). Refuses what cannot run, before any training."""
    first = my_net.NeuralNetwork if template.net is keras_net.KerasNet else template.net
    wanted = [first, keras_net.KerasNet] if compare_nets else [template.net]
    if first not in BUILTIN_NETS.values() and first in wanted:
        refuse_unfit_user_net(replace(template, net=first))
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


def refuse_unfit_user_net(spec: RunSpec) -> None:
    """A usage error when a user's net cannot take the settings asked for or has the wrong weight shapes."""
    takes = inspect.signature(spec.net).parameters
    if spec.optimizer.name != "sgd" and "optimizer" not in takes:
        raise click.UsageError(f"--optimizer {spec.optimizer.name}: {spec.net_name} trains by plain SGD (its "
                               "constructor takes no optimizer)")
    if spec.init != "glorot_uniform" and "init" not in takes:
        raise click.UsageError(f"--init {spec.init}: {spec.net_name} chooses its own initialisation")
    problem = shape_problem(spec, 784)
    if problem:
        raise click.UsageError(problem)
