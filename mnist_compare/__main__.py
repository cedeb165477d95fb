"""`python -m mnist_compare ...`: the same command as `mnist-compare ...` and the root's `python main.py ...`."""

from mnist_compare.cli.main import run

if __name__ == "__main__":
    run()
