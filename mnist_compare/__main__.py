"""`python -m mnist_compare ...` and the `mnist-compare` console script: the same command as the root's
`python main.py ...`. Before the command's modules import: a closed stderr becomes /dev/null, and a Ctrl-C
while they import (half a second) exits 130 quietly."""

import os
import sys


def writable_stderr() -> None:
    """A closed stderr (`2>&-`) becomes /dev/null, at descriptor 2 too (worker processes inherit it), so that
    the run goes on without its messages instead of failing on the first one. Done first: later, descriptor 2
    may already belong to a file some library opened."""
    if sys.stderr is None and os.open(os.devnull, os.O_WRONLY) == 2:
        os.set_inheritable(2, True)  # os.open's descriptors are closed on exec (PEP 446); stderr must not be
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115  (the process's stderr, for its whole life)


def main() -> None:
    writable_stderr()
    try:
        from mnist_compare.cli.main import run
    except KeyboardInterrupt:
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
