"""The one guarded way the tool reads a file a user gives it (results files, baselines, weights files, IDX
data, nets and notebooks): whatever the path names, reading it ends within seconds in its bytes or in one
line that says why not.

    checked before opening:  it exists, it is a regular file (not a directory, FIFO, device or socket: a FIFO
                             would block until a writer comes, /dev/zero never ends) and at most `limit` bytes
    opened non-blocking:     a path swapped for a FIFO after the check cannot hang the read either
    read at most limit + 1:  a file that grows, or a /proc file that reports size 0, is still capped (read_capped)
    JSON:                    parsed, then refused when nested deeper than MAX_JSON_DEPTH (json's own recursion
                             raises at ~1000 levels; anything deeper than a results file's few is not one)

Not for: what the bytes mean (records/, output/baseline.py, data/idx.py, nets/submission_source.py).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

MIB = 1 << 20
MAX_JSON_DEPTH = 64
KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
         (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


class FileRefused(Exception):
    """A file that cannot be read, or whose content is not what it should be; the message names the file.
    `usage` is True when the path itself is wrong (missing, not a file, unreadable): the caller's usage exit
    code; False when the content is bad: its data exit code."""

    def __init__(self, message: str, usage: bool):
        super().__init__(message)
        self.usage = usage


def read_bytes(path: str | os.PathLike, what: str, limit: int) -> bytes:
    """The content of the regular file `path`, at most `limit` bytes; FileRefused otherwise. `what` names
    the file in the message ("the baseline", "the weights file")."""
    name = display_path(path)
    try:
        size = checked_regular(os.stat(path), name, what)
        if size > limit:
            raise FileRefused(too_large(name, what, limit), usage=False)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise FileRefused(f"cannot read {what} {name}: {err.strerror or err}", usage=True) from None
    try:
        size = checked_regular(os.fstat(fd), name, what)
        with os.fdopen(fd, "rb") as f:
            content = read_capped(f, size, limit)
    except OSError as err:
        raise FileRefused(f"cannot read {what} {name}: {err.strerror or err}", usage=True) from None
    if len(content) > limit:
        raise FileRefused(too_large(name, what, limit), usage=False)
    return content


def read_capped(f: BinaryIO, size: int, limit: int) -> bytes:
    """At most limit + 1 bytes of f: its stated size at once, then (a file that grows, a /proc file that
    says 0) by MiB; never a buffer of `limit` bytes allocated up front, as f.read(limit + 1) would."""
    parts, total = [], 0
    want = min(size, limit) + 1
    while total <= limit:
        part = f.read(min(want, limit + 1 - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
        want = MIB
    return b"".join(parts)


def checked_regular(status: os.stat_result, name: str, what: str) -> int:
    """The size of a regular file; FileRefused naming what else the path is."""
    for test, kind in KINDS:
        if test(status.st_mode):
            raise FileRefused(f"{what} {name} is {kind}, not a file", usage=True)
    return status.st_size


def too_large(name: str, what: str, limit: int) -> str:
    return f"{what} {name} is larger than {limit / MIB:g} MiB: not a file this tool wrote or reads"


def read_text(path: str | os.PathLike, what: str, limit: int) -> str:
    """The file as UTF-8 text (read_bytes' checks first); FileRefused when it is not UTF-8."""
    content = read_bytes(path, what, limit)
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileRefused(f"{what} {display_path(path)} is not UTF-8 text (byte {err.start})", usage=False) from None


def read_json(path: str | os.PathLike, what: str, limit: int) -> Any:
    """The file's JSON value, nested at most MAX_JSON_DEPTH levels; FileRefused for anything else."""
    text = read_text(path, what, limit)
    name = display_path(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise FileRefused(f"{what} {name} is not complete JSON (truncated?): {err.msg} at line {err.lineno}",
                          usage=False) from None
    except RecursionError:
        value = None
        depth = MAX_JSON_DEPTH + 1
    else:
        depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise FileRefused(f"{what} {name} nests its JSON deeper than {MAX_JSON_DEPTH} levels: not a file this "
                          "tool wrote", usage=False)
    return value


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    return depth + 1
                stack.append((child, depth + 1))
        deepest = max(deepest, depth + isinstance(item, dict | list))
    return deepest


def lookup(path: str | os.PathLike, what: str = "the path") -> os.stat_result | None:
    """What the file system says of `path`: its status, or None when nothing is there; FileRefused (usage)
    in the operating system's words when it refuses the path itself (too long, a NUL byte, a loop, no access
    to a directory on the way), where Path.exists() would raise."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise FileRefused(f"{what} {display_path(path)}: {err.strerror or err}", usage=True) from None
    except ValueError:  # os.stat's own refusal of a NUL byte
        raise FileRefused(f"{what} {display_path(path)!r} contains a NUL byte, which no path can hold",
                          usage=True) from None


def display_path(path: str | Path) -> str:
    """A path as a message may print it: bytes the file system allows but UTF-8 cannot encode escaped."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
