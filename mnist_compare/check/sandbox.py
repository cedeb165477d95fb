"""A submitted net's room of its own: its code runs in a child process (sandbox_child.py) under a time and a
memory limit, and the grader sees only what it returns, as plain numbers. The checks never know: a
RemoteNet stands in for the net's class and forwards each call; `fresh_process(net_class)` gives each check
a new process, so one check's endless loop, exhausted memory, exit or crash costs only that check.

Each way out is a SubmissionStopped whose message says it in words ("timed out after 120 s in train_on_batch
(call 41)"); a net's own exception is a NetRaised, as in training. No child outlives its check: the process
group is killed, and descendants that left it come back to the grader (a Linux subreaper) and are killed too.
Not for: what the checks compute (checks.py, steps.py, runs.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mnist_compare.check import wire
from mnist_compare.nets.submission_source import SOURCE_SUFFIXES
from mnist_compare.nets.user_net import NetLoadError, NetRaised
from mnist_compare.records.spec import RunSpec

PR_SET_CHILD_SUBREAPER = 36
LOAD_SECONDS = 60  # importing the net's file and building its class: a file that hangs here is a load error
PATH_VARIABLE = "MNIST_COMPARE_SANDBOX_PATH"  # the grader's sys.path, so that package.module:CLASS imports alike
SETTINGS = ("optimizer", "init")  # what the stand-in passes on to the net's constructor, when it takes them
PRINTS_SHOWN = 2000  # characters of a net's prints kept per check (the rest counted, not shown)


@dataclass(frozen=True)
class Limits:
    """What a submission's process may take per check: seconds of its calls and bytes of address space."""

    seconds: float = 120.0
    memory: int = 4 * 2**30

    def memory_text(self) -> str:
        return f"{self.memory / 2**30:g} GiB" if self.memory >= 2**30 else f"{self.memory / 2**20:g} MiB"


class SubmissionStopped(Exception):
    """The net's process timed out, ran out of memory, or ended; the message says which, in words, and `kind`
    in one word: timeout, memory or ended."""

    def __init__(self, reason: str, kind: str = "ended") -> None:
        super().__init__(reason)
        self.kind = kind


class Room:
    """One child process holding the net's class and the nets built in it; calls are timed against the
    check's budget of seconds."""

    def __init__(self, net: str, limits: Limits) -> None:
        self.net, self.limits, self.used, self.calls = net, limits, 0.0, {}
        self.prints = tempfile.TemporaryFile()  # noqa: SIM115  (open while the room lives; closed by close())
        down_read, self.down = os.pipe()
        self.up, up_write = os.pipe()
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               PATH_VARIABLE: os.pathsep.join(os.path.abspath(p) for p in sys.path)}
        self.directory = tempfile.TemporaryDirectory(prefix="mnist-compare-net-")
        self.others = children()  # this process's children that are not the net's: left alone by close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnist_compare.check.sandbox_child", str(down_read), str(up_write), net,
             str(limits.memory)], pass_fds=(down_read, up_write), stdin=subprocess.DEVNULL, stdout=self.prints,
            stderr=self.prints, cwd=self.directory.name, env=env, start_new_session=True)
        os.close(down_read)
        os.close(up_write)
        self.info = self.answer("importing it", LOAD_SECONDS, loading=True)

    def answer(self, doing: str, seconds: float, loading: bool = False) -> tuple[dict, list[np.ndarray]]:
        """The child's next answer, waiting `seconds` at most; SubmissionStopped (NetLoadError while loading)
        when it does not come, and NetRaised when the net's code raised."""
        try:
            header, arrays = wire.read_answer(self.up, time.monotonic() + seconds)
        except wire.WireTimeout:
            self.kill()
            limit = LOAD_SECONDS if loading else self.limits.seconds
            raise self.stopped(f"timed out after {limit:g} s in {doing}", loading, "timeout") from None
        except wire.WireError as err:
            self.kill()
            raise self.stopped(f"{self.ending()} in {doing}" if "ended" in str(err) else
                               f"sent {err} in {doing}", loading) from None
        if "load_error" in header:
            raise NetLoadError(str(header["load_error"]))
        if "raised" in header:
            raise NetRaised(str(header["raised"]))
        if header.get("memory"):
            raise self.stopped(f"needed more than {self.limits.memory_text()} in {doing}", loading, "memory")
        return header, arrays

    def stopped(self, reason: str, loading: bool, kind: str = "ended") -> Exception:
        return NetLoadError(f"{self.net}: {reason}") if loading else SubmissionStopped(reason, kind)

    def ending(self) -> str:
        """How the process ended, in words: its exit status or the signal that killed it."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the net's code closed its channel to the grader"
        if code < 0:
            return f"the net's code ended its process (signal {-code}, {signal.Signals(-code).name})"
        return f"the net's code ended its process (exit status {code})"

    def call(self, request: tuple, doing: str) -> tuple[dict, list[np.ndarray]]:
        """Send one request and wait for its answer within what is left of the check's seconds."""
        if self.process.poll() is not None:
            raise SubmissionStopped(f"{self.ending()} before {doing}")
        left = self.limits.seconds - self.used
        start = time.monotonic()
        try:
            wire.send_request(self.down, request)
        except OSError:
            raise SubmissionStopped(f"{self.ending()} before {doing}") from None
        try:
            return self.answer(doing, max(left, 0.001))
        finally:
            self.used += time.monotonic() - start

    def method(self, handle: int, name: str, args: tuple) -> tuple[dict, list[np.ndarray]]:
        self.calls[name] = self.calls.get(name, 0) + 1
        batch = f" on a batch of {len(args[0])}" if name in ("train_on_batch", "predict", "gradients") else ""
        return self.call((name, handle, args), f"{name} (call {self.calls[name]}){batch}")

    def printed(self) -> str:
        """What the net's code printed in this room: the first PRINTS_SHOWN characters, and how many more."""
        self.prints.seek(0, os.SEEK_END)
        size = self.prints.tell()
        self.prints.seek(0)
        text = self.prints.read(PRINTS_SHOWN).decode("utf-8", "replace")
        return text + (f"\n... ({size - PRINTS_SHOWN:,} more bytes not shown)" if size > PRINTS_SHOWN else "")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.process.wait(timeout=10)

    def close(self) -> None:
        for fd in (self.down, self.up):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.kill()
        kill_orphans(self.others)
        self.prints.close()
        self.directory.cleanup()


def become_subreaper() -> None:
    """Descendants that leave the child's process group (a double fork, setsid) come back to this process
    when their parent dies, so that kill_orphans can end them. Linux only; elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children() -> set[int]:
    """The process ids whose parent is this process (from /proc; empty where there is none)."""
    me, found = str(os.getpid()), set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and f.read().rsplit(")", 1)[1].split()[1] == me:
                    found.add(int(entry))
        except (OSError, IndexError):
            continue
    return found


def kill_orphans(others: set[int]) -> None:
    """Kill and reap every child of this process but `others`: the room's process and whatever of its
    descendants came back here (see become_subreaper), a double fork or a setsid included."""
    for pid in children() - others:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


class RemoteNet:
    """Stands in for a submitted net's class in the grader: constructing it builds the net in the current
    room, and each method is a call there whose answer is plain arrays."""

    net: str = ""
    limits: Limits = Limits()
    room: Room | None = None

    def __init__(self, input_size: int, hidden_size: int, output_size: int, lr: float, seed: int,
                 **settings: object) -> None:
        room = type(self).current_room()
        spec = RunSpec(object, hidden_size, lr, **{k: v for k, v in settings.items() if k in SETTINGS})
        header, _ = room.call(("build", seed, spec, input_size), "building the net")
        self.room, self.handle = room, int(header["handle"])

    @classmethod
    def current_room(cls) -> Room:
        if cls.room is None:
            raise SubmissionStopped("no process is open for the net (a grader's bug)")
        return cls.room

    def train_on_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(self.room.method(self.handle, "train_on_batch", (X, y))[0]["float"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.room.method(self.handle, "predict", (X,))[1][0]

    def get_weights(self) -> list[np.ndarray]:
        return self.room.method(self.handle, "get_weights", ())[1]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.room.method(self.handle, "set_weights", ([np.asarray(w) for w in weights],))

    def remote_gradients(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        return self.room.method(self.handle, "gradients", (X, y))[1]


def remote_class(net: str, limits: Limits) -> type[RemoteNet]:
    """A RemoteNet subclass for the net `PATH.py:CLASS`: the class is loaded once in a process of its own
    (NetLoadError when it cannot be, or hangs, or ends the process), and the stand-in takes its name, its
    methods and its constructor's parameters."""
    become_subreaper()
    target, _, name = net.rpartition(":")
    absolute = os.path.abspath(os.path.expanduser(target))
    if target.endswith(SOURCE_SUFFIXES):  # the room works in a directory of its own
        net = f"{absolute}:{name}"
    try:
        room = Room(net, limits)
        try:
            info = room.info[0]
        finally:
            room.close()
    except NetLoadError as err:  # said with the path as typed, not the one the room was given
        raise NetLoadError(str(err).replace(absolute, target)) from None
    attributes = {"net": net, "limits": limits, "name": info["name"],
                  "__signature__": inspect.Signature([inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                                      for p in info["parameters"]])}
    if "gradients" in info["methods"]:
        attributes["gradients"] = RemoteNet.remote_gradients
    return type(info["name"], (RemoteNet,), attributes)


@contextlib.contextmanager
def fresh_process(net_class: type) -> Iterator[Room | None]:
    """A new process for a RemoteNet class for the block (its prints are the room's), closed afterwards;
    for any other class (my_net, the Keras twin: trusted code) nothing."""
    if not (isinstance(net_class, type) and issubclass(net_class, RemoteNet)):
        yield None
        return
    net_class.room = Room(net_class.net, net_class.limits)
    try:
        yield net_class.room
    finally:
        net_class.room.close()
        net_class.room = None
