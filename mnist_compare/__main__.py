"""`python -m mnist_compare ...` and the `mnist-compare` console script: the same command as the root's
`python main.py ...`. A Ctrl-C while the command's modules import (half a second) exits 130 quietly."""

import sys


def main() -> None:
    try:
        from mnist_compare.cli.main import run
    except KeyboardInterrupt:
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
