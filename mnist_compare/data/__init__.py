"""MNIST: the bundled IDX files (mnist/, package data, with their SHA-256 manifest) and their reader (idx.py).

Imports nothing else of the package."""
