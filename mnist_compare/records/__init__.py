"""Shared records every layer reads: the run spec and its settings, a run's results, a check's row, and a
results file's identity. Imports nothing else of the package."""
