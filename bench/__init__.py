"""Benchmarks of mnist-compare, run as modules from the repository root:
`python -m bench.bench`, `python -m bench.ab`, `python -m bench.bound`."""
