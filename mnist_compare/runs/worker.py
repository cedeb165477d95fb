"""Train one run in a fresh Python process: Keras fixes its backend at import, so a run on a backend other
than the one this process loaded (keras_net[jax] beside keras_net[tensorflow]) runs in a worker.

    parent: train_in_worker(spec, source, on_epoch_end)  ->  python -m mnist_compare.runs.worker  (KERAS_BACKEND set)
    worker: loads the data from the same source, runs runner.train, and sends back pickled messages:
            ("epoch", epoch, logs) after each epoch, then ("result", RunResult) or ("error", text)

Time(s) is measured inside the worker exactly as in-process. The worker ignores Ctrl-C and SIGHUP (they
reach the whole process group); the parent decides, and stops it with SIGTERM.
Not for: choosing what runs where (main.py) or training itself (runs/runner.py).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from mnist_compare.data.idx import Dataset
from mnist_compare.nets import keras_backends
from mnist_compare.records.results import EpochCallback, RunFailed, RunResult
from mnist_compare.records.spec import RunSpec
from mnist_compare.runs.runner import train
from mnist_compare.runs.sources import DataSource

ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the package: a clone or site-packages


class WorkerFailed(RunFailed):
    """The worker ended without a result; the message says how."""


def needs_worker(spec: RunSpec) -> bool:
    """True for a Keras run on a backend other than the one this process runs Keras on."""
    return spec.keras_backend is not None and spec.keras_backend != keras_backends.current_backend()


class Dispatcher:
    """runner.run_all's train_one: in this process, or in a worker when the spec needs one."""

    def __init__(self, source: DataSource):
        self.source = source

    def __call__(self, spec: RunSpec, data: Dataset, on_epoch_end: EpochCallback | None) -> RunResult:
        if needs_worker(spec):
            return train_in_worker(spec, self.source, on_epoch_end)
        return train(spec, data, on_epoch_end)


def train_in_worker(spec: RunSpec, source: DataSource, on_epoch_end: EpochCallback | None) -> RunResult:
    """Run `spec` in `python -m mnist_compare.runs.worker` on spec.keras_backend; relay its epochs to on_epoch_end."""
    env = {**os.environ, "KERAS_BACKEND": spec.keras_backend or keras_backends.current_backend()}
    process = subprocess.Popen([sys.executable, "-m", "mnist_compare.runs.worker"], cwd=ROOT, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        pickle.dump((spec, source), process.stdin)
        process.stdin.close()
        return relay(process.stdout, on_epoch_end, spec)
    finally:
        stop(process)


def relay(messages: IO[bytes], on_epoch_end: EpochCallback | None, spec: RunSpec) -> RunResult:
    """Read the worker's messages until its result; WorkerFailed when it sends an error or ends without one."""
    while True:
        try:
            kind, *payload = pickle.load(messages)
        except EOFError:
            raise WorkerFailed(f"the worker for {spec.describe()} ended without a result") from None
        if kind == "epoch" and on_epoch_end is not None:
            on_epoch_end(*payload)
        elif kind == "result":
            return payload[0]
        elif kind == "error":
            raise WorkerFailed(payload[0])


def stop(process: subprocess.Popen) -> None:
    """Make sure the worker is gone: SIGTERM if it still runs, SIGKILL if that is not enough."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream and not stream.closed:
            stream.close()


def serve() -> None:
    """The worker's side: read (spec, source) on stdin, train, send messages on the original stdout."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the message stream

    def send(*message: Any) -> None:
        pickle.dump(message, channel)
        channel.flush()

    spec, source = pickle.load(sys.stdin.buffer)
    try:
        result = train(spec, source.load(), lambda epoch, logs: send("epoch", epoch, logs))
    except Exception as err:
        traceback.print_exc()
        send("error", f"{type(err).__name__}: {err}")
        return
    send("result", result)


if __name__ == "__main__":
    serve()
