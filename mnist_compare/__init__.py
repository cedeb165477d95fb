"""mnist-compare: train a hand-written NumPy network and its Keras twin on MNIST and compare them.

The package's folders show its architecture; dependencies point one way, down this list (import-linter's
contracts in pyproject.toml enforce it):

    cli/      the command: options, modes (train here, on a cluster, --check), exit codes, progress
    output/   what comes out: tables, result files' contents, the verdict, plots
    runs/     how runs are made: the runner that times any net, worker processes, Dask jobs, data sources
    nets/     what is compared: my_net, the Keras twin, the net contract, a user's net, --check
    records/  shared records: the run spec, results, the MNIST reader, optimisers, the machine, signals

The original tool's files (main.py, my_net.py, keras_net.py, read_mnist.py) stay at the repository root as
thin faces over this package.
"""

__version__ = "1.2.0"
