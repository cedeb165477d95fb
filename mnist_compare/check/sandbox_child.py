"""The submission's own process: `python -m mnist_compare.check.sandbox_child READ_FD WRITE_FD NET MEMORY`.

It limits its own address space to MEMORY bytes, loads the net's class (PATH.py:CLASS or package.module:CLASS),
then answers the grader's calls one at a time: build a net, or call a method of one. Every answer is plain
numbers (wire.py); whatever the net's code does here (loop, exhaust memory, exit, crash, print, patch this
package) stays in this process. Imports neither TensorFlow nor the checks.
"""

from __future__ import annotations

import inspect
import os
import resource
import sys
from dataclasses import replace

import numpy as np

from mnist_compare.check import wire
from mnist_compare.nets.contract import construct
from mnist_compare.nets.user_net import NetLoadError, load_class
from mnist_compare.records.spec import PARAMETER_NAMES

METHODS = ("train_on_batch", "predict", "get_weights", "set_weights", "gradients")


def limit_memory(size: int) -> None:
    """At most `size` bytes of address space: a larger allocation raises MemoryError in the net's code."""
    resource.setrlimit(resource.RLIMIT_AS, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def class_info(cls: type) -> dict:
    """What the grader needs to stand in for the class: its name, methods and constructor's parameters."""
    return {"name": cls.__name__, "methods": [m for m in METHODS if callable(getattr(cls, m, None))],
            "parameters": list(inspect.signature(cls).parameters)}


def plain(method: str, value: object) -> tuple[dict, list[np.ndarray]]:
    """A method's return value as the wire carries it: a float, an array, or a list of four arrays."""
    if method == "train_on_batch":
        return {"float": float(value)}, []
    if method == "set_weights":
        return {}, []
    if method == "gradients" and isinstance(value, dict):
        value = [value[name] for name in PARAMETER_NAMES]
    if method in ("get_weights", "gradients"):
        return {"list": True}, [numeric(w) for w in value]
    return {}, [numeric(value)]


def numeric(value: object) -> np.ndarray:
    array = np.array(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"returned an array of {array.dtype}, not numbers")
    return array


def serve(read_fd: int, write_fd: int, cls: type) -> None:
    """Answer calls until the grader closes the pipe: ("build", seed, spec, d) or (method, handle, args)."""
    nets: list[object] = []
    while True:
        try:
            op, *rest = wire.read_request(read_fd)
        except wire.WireError:
            return
        try:
            if op == "build":
                seed, spec, d = rest
                nets.append(construct(cls, replace(spec, net=cls), d, seed))
                header, arrays = {"handle": len(nets) - 1}, []
            else:
                handle, args = rest
                header, arrays = plain(op, getattr(nets[handle], op)(*args))
        except MemoryError:
            header, arrays = {"memory": True}, []
        except BaseException as err:  # sys.exit and a KeyboardInterrupt of the net's own too
            header, arrays = {"raised": f"{type(err).__name__}: {err}"}, []
        wire.send_answer(write_fd, header, arrays)


def main() -> None:
    read_fd, write_fd, net, memory = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    sys.path[:] = os.environ.pop("MNIST_COMPARE_SANDBOX_PATH", "").split(os.pathsep) or sys.path
    limit_memory(memory)
    try:
        cls = load_class(net)
    except NetLoadError as err:
        wire.send_answer(write_fd, {"load_error": str(err)})
        return
    except MemoryError:
        wire.send_answer(write_fd, {"load_error": f"{net}: importing it needed more memory than the limit"})
        return
    wire.send_answer(write_fd, class_info(cls))
    serve(read_fd, write_fd, cls)


if __name__ == "__main__":
    main()
    os._exit(0)  # the net's threads or atexit handlers must not keep this process alive
