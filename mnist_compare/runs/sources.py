"""Where a run's data comes from: the IDX files (bundled, or a --data_dir) or Keras' own copy of MNIST.

A DataSource is what a worker process or a cluster worker receives instead of the arrays: it loads the
same data there, from its own copy, verified against the same checksums.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_compare.data import idx
from mnist_compare.data.idx import Dataset


@dataclass(frozen=True)
class DataSource:
    """Where a worker loads its data: the same files (or Keras' copy) as the parent."""

    data_dir: str | None = None
    keras: bool = False

    def load(self) -> Dataset:
        if self.keras:
            from mnist_compare.nets import keras_net

            return idx.load_data(splits=keras_net.load_mnist())
        return idx.load_data(self.data_dir)
