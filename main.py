"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

    python main.py --net_type my --hidden_size 256 --lr 0.1 --batch_size 128 --number_epochs 20 --compare_nets

The original tool's entry point, kept at the root so that a clone runs without installing; the command itself
is mnist_compare/cli/main.py (installed, it is `mnist-compare` and `python -m mnist_compare`).
"""

import sys

try:  # Ctrl-C while the modules import (this package's first): no traceback, the signal's exit code
    from mnist_compare.__main__ import writable_stderr

    writable_stderr()  # a closed stderr becomes /dev/null, before any library can take its descriptor
    from mnist_compare.cli.main import main, run
except KeyboardInterrupt:
    sys.exit(130)

__all__ = ["main"]

if __name__ == "__main__":
    run()
