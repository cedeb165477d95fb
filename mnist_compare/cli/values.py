"""Parsing and checking option values (Click callbacks), so that bad input is refused before any work.

Each raises click.BadParameter or click.UsageError: one `Error:` line and exit 2. Not for: training.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from click.core import ParameterSource

from mnist_compare.nets import keras_net, my_net
from mnist_compare.nets.keras_backends import BACKEND_NAMES
from mnist_compare.nets.user_net import load_class
from mnist_compare.output import files, trackers
from mnist_compare.system.machine import install_hint
from mnist_compare.system.reading import FileRefused, lookup

# --net_type my / keras -> the class; importing keras_net does not import TensorFlow: building a KerasNet does.
BUILTIN_NETS = {"my": my_net.NeuralNetwork, "keras": keras_net.KerasNet}
SEED_LIMIT = 2**32  # numpy's legacy seeding, which Keras' set_random_seed calls, takes seeds below 2^32


class FiniteFloatRange(click.FloatRange):
    """Click's FloatRange, which lets nan and inf through (every comparison with nan is False): a value that
    is not a finite number is refused, so that `--margin nan` cannot make a gate that never fails."""

    name = "number"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def comma_list(kind: type, minimum: float, inclusive: bool = True) -> Callable:
    """A Click callback parsing `a,b,c` into a list of `kind`, each finite and >= (or >) minimum, none twice
    (a repeated value would train the same setting twice and pass for repeats)."""
    def parse(ctx: click.Context, param: click.Parameter, text: str) -> list:
        values = []
        for item in str(text).split(","):
            try:
                value = kind(item.strip())
            except ValueError:
                raise click.BadParameter(f"{item.strip()!r} is not a valid {kind.__name__}") from None
            if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
                bound = f">= {minimum}" if inclusive else f"> {minimum}"
                raise click.BadParameter(f"{item.strip()} must be a finite number {bound}")
            if kind is float:
                float32_positive(value, item.strip())
            if value in values:
                raise click.BadParameter(f"{item.strip()} is listed twice; use --repeats to train a setting again")
            values.append(value)
        return values
    return parse


def float32_positive(value: float, text: str) -> float:
    """value, refused when the nets' float32 would make it 0 or infinite (a learning rate of 1e-46 trains
    nothing, one of 1e39 is inf)."""
    with np.errstate(over="ignore", under="ignore"):  # the refusal below says it in words, not NumPy's warning
        as_float32 = float(np.float32(value))
    if as_float32 == 0 or not math.isfinite(as_float32):
        raise click.BadParameter(f"{text} is {as_float32:g} in float32, the nets' precision; use a value in "
                                 f"[{np.finfo(np.float32).tiny:.3g}, {np.finfo(np.float32).max:.3g}]")
    return value


def float32_positive_option(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback for a positive float option that the nets use in float32 (--epsilon)."""
    return float32_positive(value, str(value))


def accuracy_threshold(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """--min_test_accuracy as a fraction: a value in (0, 1] is a fraction, above 1 a percentage."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0 or value > 100:
        raise click.BadParameter("must be a percentage in (0, 100] or a fraction in (0, 1]")
    return value if value <= 1 else value / 100


def writable_outputs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(writable_output(ctx, param, value) for value in values)


def outputs_and_trackers(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """The training command's --output: files as writable_output checks them, and trackers (mlflow://...,
    tensorboard://...) whose package is installed, before any training."""
    return tuple(tracker_target(value) if trackers.tracker_of(value) else writable_output(ctx, param, value)
                 for value in values)


def tracker_target(value: str) -> str:
    """mlflow://EXPERIMENT[/RUN_NAME] or tensorboard://DIR (made absolute), refused when it names no
    experiment, when DIR cannot be made, or when its package is not installed (with the line that installs it)."""
    scheme = trackers.tracker_of(value)
    if scheme == "mlflow" and not trackers.mlflow_target(value)[0]:
        raise click.BadParameter(f"{value}: name the experiment, e.g. mlflow://mnist")
    if scheme == "tensorboard":
        directory = trackers.tensorboard_directory(value)
        existing = next((p for p in (directory, *directory.parents) if p.exists()), Path.cwd())
        if value == "tensorboard://" or not writable_directory(existing):
            raise click.BadParameter(f"{value}: cannot write there (not a writable directory)")
        value = f"tensorboard://{directory.absolute()}"
    if importlib.util.find_spec(trackers.TRACKERS[scheme]) is None:
        raise click.BadParameter(f"{value}: logging to {scheme} needs the {scheme} package: {install_hint(scheme)}")
    return value


def writable_output(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an output path with an unknown suffix or in an unwritable directory before training."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if param.name == "output" and path.suffix.lower() not in files.OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{value}: the suffix must be one of {', '.join(files.OUTPUT_SUFFIXES)}")
    required = {"plot": ".png", "report": ".html", "gradescope": ".json"}.get(param.name or "")
    if required and path.suffix.lower() != required:
        raise click.BadParameter(f"{value}: it is written as {required[1:].upper()}, so the suffix must be {required}")
    if not writable_directory(path.parent) or is_directory(path):
        raise click.BadParameter(f"{value}: cannot write there (directory missing or not writable)")
    return str(path.absolute())  # written where it was meant even if a user's net changes directory


def repeats_value(ctx: click.Context, param: click.Parameter, text: str) -> int | str:
    """--repeats: a number >= 1, or "auto" (repeat until --precision, --max_repeats or --budget)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        repeats = int(text)
    except ValueError:
        raise click.BadParameter(f"{text}: a number of repeats (1 or more) or auto") from None
    if repeats < 1:
        raise click.BadParameter(f"{text}: a number of repeats (1 or more) or auto")
    return repeats


DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def duration(ctx: click.Context, param: click.Parameter, text: str | None) -> float | None:
    """--budget: `90s`, `10m`, `1h30m` or plain seconds, as seconds > 0."""
    if text is None:
        return None
    found = DURATION.fullmatch(text.strip().lower())
    seconds = sum(float(part or 0) * unit for part, unit in zip(found.groups(), (3600, 60, 1), strict=True)) \
        if found and text.strip() else 0
    if not seconds or not math.isfinite(seconds):
        raise click.BadParameter(f"{text}: a duration such as 90s, 10m or 1h30m")
    return seconds


def history_directory(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--history DIR: an existing writable directory, or one whose parent is (made when the run is saved)."""
    if value is None:
        return None
    path = Path(value).expanduser().absolute()
    exists = looked_up(path) is not None
    if exists and not is_directory(path):
        raise click.BadParameter(f"{value}: not a directory")
    if not writable_directory(path if exists else path.parent):
        raise click.BadParameter(f"{value}: cannot save there (no such directory's parent, or not writable)")
    return str(path)


def is_directory(path: Path) -> bool:
    found = looked_up(path)
    return found is not None and stat.S_ISDIR(found.st_mode)


def writable_directory(path: Path) -> bool:
    return is_directory(path) and os.access(path, os.W_OK)


def looked_up(path: Path) -> os.stat_result | None:
    """The path's status, None when nothing is there; a BadParameter in the OS's words when it refuses it."""
    try:
        return lookup(path)
    except FileRefused as err:
        raise click.BadParameter(str(err)) from None


def check_weights(ctx: click.Context, param: click.Parameter, text: str | None) -> dict[str, float] | None:
    """--check_weights as {check name: weight}, every check named (its default weight unless given)."""
    from mnist_compare.check.checks import DEFAULT_WEIGHTS
    from mnist_compare.output.gradescope import WeightsError, parse_weights

    if text is None:
        return None
    try:
        return parse_weights(text, DEFAULT_WEIGHTS)
    except WeightsError as err:
        raise click.BadParameter(str(err)) from None


def slowdown_fraction(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """--max_slowdown in percent (10) as a fraction (0.1)."""
    return value / 100


def existing_directory(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The data directory with `~` expanded; an error naming MNIST_DATA_DIR when it came from there."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if is_directory(path):
        return str(path)
    if ctx.get_parameter_source(param.name) == ParameterSource.ENVIRONMENT:
        raise click.UsageError(f"MNIST_DATA_DIR={value}: directory does not exist")
    raise click.BadParameter(f"{value}: directory does not exist")


def checked_seed(seed: int | None, repeats: int, draw: Callable[[int], int]) -> int:
    """seed (drawn below 2^31 when None), refused unless seed .. seed + repeats - 1 all fit every net."""
    if seed is None:
        return draw(2**31)
    if seed < 0 or seed + repeats - 1 >= SEED_LIMIT:
        last = f" (with --repeats {repeats} the last seed is {seed + repeats - 1})" if repeats > 1 else ""
        raise click.BadParameter(f"{seed}: seeds must be in 0..{SEED_LIMIT - 1}{last}", param_hint="'--seed'")
    return seed


def backend_list(ctx: click.Context, param: click.Parameter, text: str | None) -> list[str] | None:
    """--keras_backend a,b as a list of distinct names (checked against what is installed later)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in BACKEND_NAMES:
            raise click.BadParameter(f"{name}: not a Keras backend; use one of {', '.join(BACKEND_NAMES)}")
    if len(set(names)) != len(names):
        raise click.BadParameter(f"{text}: a backend is listed twice")
    return names


@dataclass(frozen=True)
class NetChoice:
    """--net_type as given (`text`, recorded in results files) and the class it names (`net`): my_net's or
    the Keras twin's at once; a user's once the command has loaded it (main.py: here for training, in a
    process of its own for --check), None before."""

    text: str
    net: type | None = None


def net_class(ctx: click.Context, param: click.Parameter, text: str) -> NetChoice:
    """--net_type: my, keras, or the user's PATH.py:CLASS / package.module:CLASS (not loaded here: the command
    decides where the user's code runs)."""
    if text in BUILTIN_NETS:
        return NetChoice(text, BUILTIN_NETS[text])
    target, _, name = text.rpartition(":")
    if not target or not name:
        raise click.BadParameter(f"{text}: expected my, keras, PATH.py:CLASS or package.module:CLASS")
    return NetChoice(text)


def loaded_here(choice: NetChoice) -> NetChoice:
    """The user's net loaded into this process (training runs it here); NetLoadError says why it cannot be."""
    return choice if choice.net is not None else NetChoice(choice.text, load_class(choice.text))


def memory_size(ctx: click.Context, param: click.Parameter, text: str) -> int:
    """A size such as 4GiB, 512MiB, 2G or a number of bytes, as bytes (at least 64 MiB)."""
    units = {"": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20, "g": 2**30,
             "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}
    number = str(text).strip().rstrip("BbIiKkMmGgTt")
    unit = str(text).strip()[len(number):].lower()
    try:
        size = float(number) * units[unit]
    except (ValueError, KeyError):
        raise click.BadParameter(f"{text}: use a size such as 4GiB, 512MiB or 2G") from None
    if not math.isfinite(size) or size < 64 * 2**20:
        raise click.BadParameter(f"{text}: at least 64MiB (Python and NumPy alone need about 100 MiB)")
    return int(size)


def blas_threads_value(ctx: click.Context, param: click.Parameter, text: str) -> str:
    """--blas_threads: all, auto, or a positive number of threads."""
    if text in ("all", "auto") or (text.isdigit() and int(text) >= 1):
        return text
    raise click.BadParameter(f"{text}: use all, auto or a number of threads >= 1")
