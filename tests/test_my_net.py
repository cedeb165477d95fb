"""my_net: gradients against finite differences, numerics, the last partial batch, seeding, accuracy."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from mnist_compare.data.idx import one_hot
from mnist_compare.nets import my_net
from mnist_compare.nets.my_net import NeuralNetwork
from mnist_compare.records.results import TrainingDiverged
from mnist_compare.runs import runner


def mean_cross_entropy_float64(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    """The loss written out plainly in float64: the reference for finite differences."""
    H = np.maximum(X @ params["W1"] + params["b1"], 0)
    Z = H @ params["W2"] + params["b2"]
    Z = Z - Z.max(axis=1, keepdims=True)
    log_p = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def finite_difference_gradients(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
                                step: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences (L(w + e) - L(w - e)) / 2e of the float64 loss for every parameter entry."""
    grads = {}
    for name, p in params.items():
        g = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + step
            up = mean_cross_entropy_float64(params, X, y)
            p[index] = saved - step
            down = mean_cross_entropy_float64(params, X, y)
            p[index] = saved
            g[index] = (up - down) / (2 * step)
        grads[name] = g
    return grads


def float64_net(seed: int, d: int = 12, h: int = 7, c: int = 10) -> NeuralNetwork:
    """A small net whose parameters are float64 copies, so the analytic gradients are float64 too."""
    net = NeuralNetwork(d, h, c, seed=seed)
    rng = np.random.default_rng(seed + 100)
    net.params = {name: p.astype(np.float64) for name, p in net.params.items()}
    net.params["b1"] += rng.normal(0, 0.3, h)  # nonzero biases, some of them pushing units below zero
    net.params["b2"] += rng.normal(0, 0.3, c)
    return net


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max() + np.abs(b).max(), 1e-12))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_gradient_matches_central_finite_differences(seed):
    net = float64_net(seed)
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(9, 12)), rng.integers(0, 10, 9)
    H = np.maximum(X @ net.params["W1"] + net.params["b1"], 0)
    assert 0 < np.count_nonzero(H == 0) < H.size, "the check must cover both active and inactive ReLUs"
    analytic = net.gradients(X, y)
    numeric = finite_difference_gradients({k: v.copy() for k, v in net.params.items()}, X, y)
    for name in my_net.PARAMETER_NAMES:
        assert relative_error(analytic[name], numeric[name]) < 1e-6, name  # measured: 3e-10 to 1.3e-9


def test_gradients_of_one_hot_and_integer_labels_agree():
    net = NeuralNetwork(784, 16, 10, seed=3)
    X = np.random.default_rng(3).random((20, 784), dtype=np.float32)
    y = np.arange(20) % 10
    for name, g in net.gradients(X, y).items():
        np.testing.assert_array_equal(g, net.gradients(X, one_hot(y))[name])


def test_gradients_are_float32_in_the_parameter_shapes():
    net = NeuralNetwork(784, 16, 10, seed=0)
    grads = net.gradients(np.ones((5, 784), np.float32), np.arange(5))
    for name, p in net.params.items():
        assert grads[name].dtype == np.float32 and grads[name].shape == p.shape


def test_softmax_and_loss_stay_finite_for_logits_of_magnitude_1e4():
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], np.float32)
    log_p = my_net.log_softmax(Z)
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(log_p[:, [0, 2]].max(axis=1), 0.0, atol=1e-6)
    loss_sum, correct = NeuralNetwork.softmax_cross_entropy(Z.copy(), np.array([1, 2]))
    assert loss_sum == pytest.approx(2e4) and correct == 1  # -log P[0, 1] = 2e4, -log P[1, 2] = 0


def test_evaluate_is_finite_when_the_weights_make_huge_logits():
    net = NeuralNetwork(4, 3, 10, seed=0)
    net.params["W2"] *= 1e5
    loss, accuracy = net.evaluate(np.ones((2, 4), np.float32), np.array([0, 1]))
    assert math.isfinite(loss) and 0 <= accuracy <= 1
    P = net.predict(np.ones((2, 4), np.float32))
    assert np.isfinite(P).all() and np.allclose(P.sum(axis=1), 1.0)


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("out_order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_accumulates_in_place_like_numpy_for_every_layout(transpose_a, transpose_b, out_order, dtype):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((7, 5)).astype(dtype)
    B = rng.standard_normal((5, 4)).astype(dtype)
    A_arg = np.ascontiguousarray(A.T).T if transpose_a else A  # a transposed view, as X.T is
    B_arg = np.ascontiguousarray(B.T).T if transpose_b else B
    out = np.array(rng.standard_normal((7, 4)), dtype, order=out_order)  # "F": as the workspace's logits
    expected = -0.5 * (A @ B) + out
    result = my_net.gemm(A_arg, B_arg, out, alpha=-0.5, beta=1.0)
    assert result is out
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("n", [128, 100])  # 100: a last batch, in part of the workspace's buffers
def test_fused_sgd_step_equals_weights_minus_lr_times_the_gradients(mnist, n):
    X, y = mnist[0][:n], mnist[1][:n]
    fused = NeuralNetwork(784, 64, 10, lr=0.1, seed=4)
    reference = fused.get_weights()
    grads = fused.gradients(X, y)
    fused.train_step(X, y, my_net.Workspace(128, fused.params))
    for name, before, after in zip(my_net.PARAMETER_NAMES, reference, fused.get_weights(), strict=True):
        expected = before - np.float32(0.1) * grads[name]
        np.testing.assert_allclose(after, expected, rtol=0, atol=1e-7, err_msg=name)  # measured max 7.5e-9


def test_one_sgd_step_matches_a_hand_computed_update():
    """d=2, h=2, c=2, one example; every number below was worked out by hand."""
    net = NeuralNetwork(2, 2, 2, lr=0.5)
    net.set_weights([np.array([[1.0, -1.0], [0.0, 2.0]], np.float32), np.zeros(2, np.float32),
                     np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.zeros(2, np.float32)])
    X, y = np.array([[1.0, 1.0]], np.float32), np.array([0])
    # Z1 = [1, 1], H = [1, 1], Z2 = [1, 1], P = [0.5, 0.5], dZ2 = [-0.5, 0.5]
    # dW2 = H^T dZ2 = [[-0.5, 0.5], [-0.5, 0.5]], db2 = [-0.5, 0.5]
    # dZ1 = dZ2 W2^T * [Z1 > 0] = [-0.5, 0.5], dW1 = X^T dZ1 = [[-0.5, 0.5], [-0.5, 0.5]], db1 = [-0.5, 0.5]
    loss_sum, _ = net.train_step(X, y, my_net.Workspace(1, net.params))
    assert loss_sum == pytest.approx(math.log(2))
    W1, b1, W2, b2 = net.get_weights()
    np.testing.assert_allclose(W1, [[1.25, -1.25], [0.25, 1.75]])
    np.testing.assert_allclose(b1, [0.25, -0.25])
    np.testing.assert_allclose(W2, [[1.25, -0.25], [0.25, 0.75]])
    np.testing.assert_allclose(b2, [0.25, -0.25])


def test_last_partial_batch_is_averaged_over_its_own_size():
    """10 examples in batches of 4: the last batch of 2 must step by lr * (its gradient mean over 2)."""
    rng = np.random.default_rng(5)
    X, y = rng.random((10, 6), dtype=np.float32), rng.integers(0, 10, 10)
    net = NeuralNetwork(6, 5, 10, lr=0.3, seed=5)
    reference = NeuralNetwork(6, 5, 10, lr=0.3, seed=5)
    net.fit(X, y, batch_size=4, number_epochs=1, rng=np.random.default_rng(9))
    order = np.random.default_rng(9).permutation(10)
    for start in range(0, 10, 4):
        batch = order[start:start + 4]
        for name, g in reference.gradients(X[batch], y[batch]).items():  # gradients are means over len(batch)
            reference.params[name] -= np.float32(0.3) * g
    for name in my_net.PARAMETER_NAMES:
        np.testing.assert_allclose(net.params[name], reference.params[name], rtol=1e-5, atol=1e-7)
    wrong = NeuralNetwork(6, 5, 10, lr=0.3, seed=5)
    for start in range(0, 10, 4):
        batch = order[start:start + 4]
        for name, g in wrong.gradients(X[batch], y[batch]).items():
            wrong.params[name] -= np.float32(0.3 * len(batch) / 4) * g  # the mean over batch_size instead
    assert not np.allclose(net.params["W1"], wrong.params["W1"], rtol=1e-5, atol=1e-7)


def test_same_seed_gives_identical_weights_and_history(mnist_subset):
    """With BLAS's own thread count: "auto" would follow the machine's load, and rounds differently when it
    changes the count (test_threads.py)."""
    X, y = mnist_subset[0][:1000], mnist_subset[1][:1000]
    first, second = (NeuralNetwork(784, 20, seed=11, blas_threads="all") for _ in range(2))
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    h1, h2 = first.fit(X, y, 100, 2), second.fit(X, y, 100, 2)
    assert h1["loss"] == h2["loss"] and h1["accuracy"] == h2["accuracy"]
    np.testing.assert_array_equal(first.params["W1"], second.params["W1"])


def test_different_seeds_give_different_weights():
    assert not np.array_equal(NeuralNetwork(784, 20, seed=1).params["W1"], NeuralNetwork(784, 20, seed=2).params["W1"])


def test_initial_weights_follow_glorot_uniform_with_zero_biases():
    net = NeuralNetwork(784, 300, 10, seed=0)
    limit = math.sqrt(6 / (784 + 300))
    W1 = net.params["W1"]
    assert W1.dtype == np.float32 and np.abs(W1).max() <= limit
    assert W1.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)  # U(-a, a) has std a / sqrt(3)
    assert not net.params["b1"].any() and not net.params["b2"].any()


def test_a_huge_learning_rate_raises_training_diverged_in_the_first_epoch(mnist_subset):
    X, y = mnist_subset[0], mnist_subset[1]
    with pytest.raises(TrainingDiverged) as info:
        NeuralNetwork(784, 32, seed=0, lr=1e10).fit(X, y, 128, 3)
    assert info.value.epoch == 1


def test_history_has_one_entry_per_epoch_and_a_falling_loss(mnist_subset):
    X, y = mnist_subset[0], mnist_subset[1]
    history = NeuralNetwork(784, 32, seed=0).fit(X, y, 128, 3)
    assert len(history["loss"]) == len(history["accuracy"]) == len(history["epoch_time_s"]) == 3
    assert history["loss"][2] < history["loss"][0]


def test_my_net_module_never_imports_tensorflow():
    code = "import my_net, sys; print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_hidden_128_reaches_95_percent_in_5_epochs_on_real_mnist(mnist):
    result = runner.fit_and_test(my_net.NeuralNetwork, 128, 128, 5, 0.1, seed=0, data=mnist)
    assert result.test_accuracy >= 0.95
    assert 0 < result.test_loss < 0.2 and result.train_accuracy >= 0.95
    assert len(result.history["loss"]) == 5
