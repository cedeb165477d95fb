"""What crosses between the grader and a submission's process: requests go down pickled (the grader is
trusted), answers come up as a JSON header and plain arrays in NumPy's .npy format read with
allow_pickle=False, so that nothing a submission sends can run code in the grader or be other than numbers.

    frame = 8-byte big-endian length, then {"header": ..., "arrays": [sizes]} as JSON, then the .npy blobs

Not for: starting or limiting the process (sandbox.py) or what it runs (sandbox_child.py).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import select
import struct
import time

import numpy as np

MAX_FRAME = 1 << 30  # an answer above 1 GiB is refused: no check needs one, and it would cost the grader's memory


class WireError(Exception):
    """The other side sent something that is not a frame, or went away; the message says which."""


class WireTimeout(Exception):
    """No answer came before the deadline."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    """`size` bytes from fd, waiting until `deadline` (time.monotonic()) at most; WireError at end of file."""
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise WireTimeout
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise WireError("the process ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send_request(fd: int, request: tuple) -> None:
    data = pickle.dumps(request, protocol=5)
    write_all(fd, struct.pack(">Q", len(data)) + data)


def read_request(fd: int) -> tuple:
    (size,) = struct.unpack(">Q", read_exactly(fd, 8, None))
    return pickle.loads(read_exactly(fd, size, None))  # from the grader: trusted


def send_answer(fd: int, header: dict, arrays: list[np.ndarray] = ()) -> None:
    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        blobs.append(buffer.getvalue())
    head = json.dumps({"header": header, "arrays": [len(b) for b in blobs]}).encode()
    body = struct.pack(">Q", len(head)) + head + b"".join(blobs)
    write_all(fd, struct.pack(">Q", len(body)) + body)


def read_answer(fd: int, deadline: float) -> tuple[dict, list[np.ndarray]]:
    """One answer from the submission's process: (header, arrays); WireError when it is not a valid frame."""
    (size,) = struct.unpack(">Q", read_exactly(fd, 8, deadline))
    if size > MAX_FRAME:
        raise WireError(f"an answer of {size:,} bytes, above the {MAX_FRAME:,} allowed")
    body = read_exactly(fd, size, deadline)
    try:
        (head_size,) = struct.unpack(">Q", body[:8])
        head = json.loads(body[8:8 + head_size])
        header, sizes = head["header"], [int(s) for s in head["arrays"]]
        if not isinstance(header, dict) or sum(sizes) != size - 8 - head_size:
            raise ValueError("sizes do not add up")
        arrays, offset = [], 8 + head_size
        for length in sizes:
            arrays.append(np.load(io.BytesIO(body[offset:offset + length]), allow_pickle=False))
            offset += length
    except (ValueError, KeyError, TypeError, struct.error, EOFError, OSError) as err:
        raise WireError(f"an answer that is not a valid frame ({type(err).__name__})") from None
    return header, arrays
