"""PyTorch eager on the same network: the benchmark's reference row for what a framework does without Keras.

    Linear(d, h) -> ReLU -> Linear(h, c); cross-entropy from the logits, averaged over the batch; plain SGD.

Implements experiment's TrainableNet, so it is timed by the same runner as every other net. Weights follow
Keras' layout ([W1 (d, h), b1, W2 (h, c), b2]; torch stores the kernels transposed).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mnist_compare.records.results import TrainingDiverged


class TorchEagerNet:
    name = "pytorch_eager"

    def __init__(self, input_size: int, hidden_size: int, output_size: int, lr: float, seed: int | None):
        if seed is not None:
            torch.manual_seed(seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(input_size, hidden_size), torch.nn.ReLU(),
                                         torch.nn.Linear(hidden_size, output_size))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.loss = torch.nn.CrossEntropyLoss()

    def train_on_batch(self, X: np.ndarray, y: np.ndarray) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(torch.from_numpy(X)), torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        self.optimizer.step()
        return float(loss)

    def predict(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(X)), dim=1).numpy()

    def get_weights(self) -> list[np.ndarray]:
        first, second = self.model[0], self.model[2]
        return [t.detach().numpy().copy() for t in (first.weight.T, first.bias, second.weight.T, second.bias)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        with torch.no_grad():
            for tensor, value in zip((self.model[0].weight, self.model[0].bias, self.model[2].weight,
                                      self.model[2].bias), (weights[0].T, weights[1], weights[2].T, weights[3]),
                                     strict=True):
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def fit(self, X: np.ndarray, y: np.ndarray, batch_size: int, number_epochs: int,
            rng: np.random.Generator | None, on_epoch_end) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        inputs, labels = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        for epoch in range(number_epochs):
            start, total = time.perf_counter(), 0.0
            order = torch.from_numpy(rng.permutation(len(X)))
            for first in range(0, len(X), batch_size):
                batch = order[first:first + batch_size]
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.loss(self.model(inputs[batch]), labels[batch])
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(batch)
            if not np.isfinite(total):
                raise TrainingDiverged(epoch + 1)
            if on_epoch_end is not None:
                on_epoch_end(epoch, {"loss": total / len(X), "epoch_time_s": time.perf_counter() - start})

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        with torch.no_grad():
            logits = self.model(torch.from_numpy(X))
            labels = torch.from_numpy(y.astype(np.int64))
            return float(self.loss(logits, labels)), float((logits.argmax(1) == labels).float().mean())
