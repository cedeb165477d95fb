"""A two-layer network written the way a course teaches it: plain, vectorised NumPy, one line per formula.

    Z1 = X W1 + b1      H = relu(Z1)      Z2 = H W2 + b2      P = softmax(Z2)
    L  = -(1/n) sum_i log P[i, y_i],   log P = Z2 - m - log sum_j exp(Z2_j - m),  m the row maximum

    dZ2 = (P - Y) / n      dW2 = H^T dZ2      db2 = sum_i dZ2
    dZ1 = (dZ2 W2^T) * [Z1 > 0]      dW1 = X^T dZ1      db1 = sum_i dZ1

It implements mnist-compare's network contract, so the tool can train it beside Keras and check it (in a
clone it is examples/student_net.py; `mnist-compare example student_net > student_net.py` writes it out):

    mnist-compare --net_type student_net.py:StudentNet --check
    mnist-compare --net_type student_net.py:StudentNet --compare_nets --number_epochs 5
"""

import numpy as np


class StudentNet:
    def __init__(self, input_size, hidden_size, output_size, lr, seed):
        rng = np.random.default_rng(seed)
        limit1 = np.sqrt(6 / (input_size + hidden_size))  # Glorot-uniform
        limit2 = np.sqrt(6 / (hidden_size + output_size))
        self.W1 = rng.uniform(-limit1, limit1, (input_size, hidden_size)).astype(np.float32)
        self.b1 = np.zeros(hidden_size, np.float32)
        self.W2 = rng.uniform(-limit2, limit2, (hidden_size, output_size)).astype(np.float32)
        self.b2 = np.zeros(output_size, np.float32)
        self.lr = np.float32(lr)

    def get_weights(self):
        return [self.W1.copy(), self.b1.copy(), self.W2.copy(), self.b2.copy()]

    def set_weights(self, weights):
        self.W1, self.b1, self.W2, self.b2 = (np.array(w, np.float32) for w in weights)

    def forward(self, X):
        Z1 = X @ self.W1 + self.b1
        H = np.maximum(Z1, 0)
        Z2 = H @ self.W2 + self.b2
        Z2 = Z2 - Z2.max(axis=1, keepdims=True)  # softmax is unchanged by a shift; exp can no longer overflow
        log_P = Z2 - np.log(np.exp(Z2).sum(axis=1, keepdims=True))  # log softmax: no log(0) for a tiny P
        return Z1, H, log_P

    def predict(self, X):
        return np.exp(self.forward(X)[2])

    def gradients(self, X, y):
        n = len(y)
        Z1, H, log_P = self.forward(X)
        P = np.exp(log_P)
        Y = np.eye(P.shape[1], dtype=np.float32)[y]
        dZ2 = (P - Y) / n
        dW2 = H.T @ dZ2
        db2 = dZ2.sum(axis=0)
        dZ1 = (dZ2 @ self.W2.T) * (Z1 > 0)
        dW1 = X.T @ dZ1
        db1 = dZ1.sum(axis=0)
        return [dW1, db1, dW2, db2]

    def train_on_batch(self, X, y):
        log_P = self.forward(X)[2]
        loss = float(-np.mean(log_P[np.arange(len(y)), y]))
        dW1, db1, dW2, db2 = self.gradients(X, y)
        self.W1 -= self.lr * dW1
        self.b1 -= self.lr * db1
        self.W2 -= self.lr * dW2
        self.b2 -= self.lr * db2
        return loss
