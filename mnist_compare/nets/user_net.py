"""A user's own network, named on the command line as PATH.py:CLASS or package.module:CLASS.

Loading it runs the user's code. Bad input (no such file or module, no such class, a missing method, wrong
weight shapes) is one line and exit 2 before any training; an exception while it trains becomes its row's
`error: <Type>: <message>`, with the user's traceback on stderr, since it is their code.
Not for: checking the net's mathematics (check.py).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from mnist_compare.nets.submission_source import SOURCE_SUFFIXES, SubmissionError, source_text
from mnist_compare.records.results import EpochCallback, RunFailed, RunResult
from mnist_compare.records.spec import NUM_CLASSES, RunSpec
from mnist_compare.system.reading import FileRefused, lookup
from mnist_compare.system.shutdown import Interrupted

REQUIRED_METHODS = ("train_on_batch", "predict", "get_weights", "set_weights")
USER_MODULE_PREFIX = "user_net_"  # a net's file PATH.py is loaded as the module user_net_<PATH's stem>


class NetLoadError(ValueError):
    """The named net cannot be used; the message is one line."""


def load_class(text: str) -> type:
    """The class that `PATH.py:CLASS` or `package.module:CLASS` names, with the contract's methods."""
    target, _, name = text.rpartition(":")
    if not target or not name:
        raise NetLoadError(f"{text}: expected my, keras, PATH.py:CLASS or package.module:CLASS")
    module = load_file(Path(target).expanduser()) if target.endswith(SOURCE_SUFFIXES) else load_module(target)
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        raise NetLoadError(f"{text}: {target} has no class {name}")
    missing = [method for method in REQUIRED_METHODS if not callable(getattr(cls, method, None))]
    if missing:
        raise NetLoadError(f"{text}: {name} has no method {', '.join(missing)} (a net needs "
                           f"{', '.join(REQUIRED_METHODS)})")
    return cls


def load_file(path: Path) -> object:
    """The module of a `.py` file, or of a notebook's definitions (submission_source.py), run as its code."""
    try:
        found = lookup(path, "the net file")
    except FileRefused as err:
        raise NetLoadError(str(err)) from None
    if found is None:
        raise NetLoadError(f"{path}: no such file")
    name = f"{USER_MODULE_PREFIX}{path.stem}"
    try:
        code = compile(source_text(path), str(path), "exec")
    except SubmissionError as err:
        raise NetLoadError(str(err)) from None
    except SyntaxError as err:
        raise NetLoadError(f"{path}: importing it raised {described(err)}") from None
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # so that its classes pickle and its dataclasses resolve
    beside = str(path.resolve().parent)
    if beside not in sys.path:  # its helper modules import as from a script's directory, after the installed ones
        sys.path.append(beside)
    try:
        with users_code():  # sys.exit or a KeyboardInterrupt of the file's own, too: one line, exit 2
            exec(code, module.__dict__)
    except Exception as err:
        raise NetLoadError(f"{path}: importing it raised {described(err)}{line_of(err, path)}") from None
    return module


def line_of(err: BaseException, path: Path) -> str:
    """` (line N)`: the line of the file at `path` where `err` was raised last, so that a student finds it."""
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__) if frame.filename == str(path)]
    return f" (line {lines[-1]})" if lines else ""


def load_module(name: str) -> object:
    try:
        with users_code():
            return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise NetLoadError(f"{name}: no such module ({err})") from None
    except Exception as err:
        raise NetLoadError(f"{name}: importing it raised {described(err)}") from None


def described(err: Exception) -> str:
    """`<Type>: <message>` of an exception from a user's code (NetRaised already reads so)."""
    return str(err) if isinstance(err, NetRaised) else f"{type(err).__name__}: {err}"


def weight_shapes(input_size: int, hidden_size: int) -> list[tuple[int, ...]]:
    """The shapes get_weights() must return: [W1 (d, h), b1 (h,), W2 (h, c), b2 (c,)], Keras' layout."""
    return [(input_size, hidden_size), (hidden_size,), (hidden_size, NUM_CLASSES), (NUM_CLASSES,)]


def settings_problem(spec: RunSpec) -> str:
    """Why spec.net's constructor cannot take the optimiser or the initialiser spec asks for ("" when it can)."""
    takes = inspect.signature(spec.net).parameters
    if spec.optimizer.name != "sgd" and "optimizer" not in takes:
        return f"--optimizer {spec.optimizer.name}: {spec.net_name} trains by plain SGD (its constructor takes no " \
               "optimizer)"
    if spec.init != "glorot_uniform" and "init" not in takes:
        return f"--init {spec.init}: {spec.net_name} chooses its own initialisation"
    return ""


def shape_problem(spec: RunSpec, input_size: int) -> str | None:
    """Why Net(d, h, c, lr, seed).get_weights() does not fit the requested sizes, or None when it does."""
    expected = weight_shapes(input_size, spec.hidden_size)
    try:
        with users_code():
            net = spec.net(input_size, spec.hidden_size, NUM_CLASSES, spec.lr, spec.seed)
            shapes = [tuple(np.shape(w)) for w in net.get_weights()]
    except Exception as err:
        return f"{spec.net_name}({input_size}, {spec.hidden_size}, {NUM_CLASSES}, lr, seed) raised {described(err)}"
    if shapes != expected:
        return f"{spec.net_name}.get_weights() has shapes {shapes}; hidden {spec.hidden_size} needs {expected}"
    return None


class NetRaised(Exception):
    """A user's net left its code by an exception that is not an Exception (sys.exit, a KeyboardInterrupt it
    raised itself, GeneratorExit): turned into one, so that every caller handles it as a net's error."""


@contextlib.contextmanager
def users_code() -> Iterator[None]:
    """Run a user's code: its prints go to stderr (stdout holds the table), and whatever leaves it by an
    exception of any kind comes out as an Exception. Only a stop signal (shutdown.Interrupted, raised by the
    command's SignalGuard) passes as it is."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except (Exception, Interrupted):
        raise
    except BaseException as err:
        raise NetRaised(f"{type(err).__name__}: {err}") from err


def train_reporting_errors(train_one: Callable, spec: RunSpec, data: tuple,
                           on_epoch_end: EpochCallback | None) -> RunResult:
    """train_one for a user's net: an exception of theirs, of any kind, is shown with its traceback and
    becomes RunFailed, so that the other nets still train."""
    try:
        with users_code():
            return train_one(spec, data, on_epoch_end)
    except RunFailed:
        raise
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        raise RunFailed(described(err)) from None
