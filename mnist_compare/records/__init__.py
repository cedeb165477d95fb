"""Shared records every layer reads: the run spec, results, the MNIST reader, optimisers, the machine, signals.

Imports nothing else of the package."""
