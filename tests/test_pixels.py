"""pixels.py: skipping the pixels a batch has at zero is exact, pays where it should, and is undone."""

from __future__ import annotations

import numpy as np
import pytest

import my_net
import pixels


def test_no_batch_of_a_real_epoch_drops_a_non_zero_pixel(mnist):
    X = mnist[0]
    renumbered = pixels.RenumberedPixels(X)
    np.testing.assert_array_equal(renumbered.X, X[:, renumbered.order])
    order = np.random.default_rng(0).permutation(len(X))
    for start in range(0, len(X), 128):
        batch = order[start:start + 128]
        k = renumbered.prefix_length(batch)
        assert not renumbered.X[batch, k:].any(), f"batch at {start} has a non-zero pixel beyond k = {k}"
        assert renumbered.X[batch, k - 1].any(), f"batch at {start}: k = {k} is not the smallest prefix"
    print(f"MNIST, batch 128: {renumbered.share_used:.3f} of the dense first-layer work")
    assert 0.6 < renumbered.share_used < 0.9  # measured 0.809


def test_an_all_zero_batch_still_multiplies_one_pixel():
    renumbered = pixels.RenumberedPixels(np.zeros((4, 6), np.float32))
    assert renumbered.prefix_length(np.arange(4)) == 1


def test_renumbering_pays_on_mnist_for_large_layers_and_long_fits_only(mnist):
    X = mnist[0]
    assert pixels.worth_renumbering(X, 300, 128, 20)
    assert pixels.worth_renumbering(X, 256, 128, 20)
    assert not pixels.worth_renumbering(X, 128, 128, 20)
    assert not pixels.worth_renumbering(X, 30, 128, 20)
    assert not pixels.worth_renumbering(X, 300, 128, 1)


def test_data_with_few_zero_pixels_keeps_the_dense_loop(mnist):
    """Like Fashion-MNIST (about half the pixels non-zero): MNIST's images with the background lit
    in a random half of the pixels of every image."""
    X = mnist[0][:8192].copy()
    background = np.random.default_rng(0).random(X.shape) < 0.5
    X[background & (X == 0)] = 0.1
    assert not pixels.worth_renumbering(X, 300, 128, 20)
    assert not pixels.worth_renumbering(X, 1000, 128, 100)


def fit_weights(X, y, skip: bool, monkeypatch, epochs: int = 2) -> tuple[list[np.ndarray], dict, float | None]:
    monkeypatch.setattr(pixels, "SAVED_PER_COPIED", 0)  # renumber whenever anything is saved
    monkeypatch.setattr(my_net.NeuralNetwork, "skip_zero_pixels", skip)
    net = my_net.NeuralNetwork(784, 64, seed=3)
    history = net.fit(X, y, 128, epochs, rng=np.random.default_rng(3))
    return net.get_weights(), history, net.describe()["first_layer_share"]


def test_a_fit_skipping_zero_pixels_equals_the_dense_fit_to_float32_rounding(mnist, monkeypatch):
    """Measured on 12,800 images, 2 epochs, hidden 64: weights 2.1e-7 apart (the sums run in another order);
    the tolerance is the paired tests' 2e-6, which a 1% learning-rate change exceeds 1,500 times (on 6,000
    images)."""
    X, y = mnist[0][:12_800], mnist[1][:12_800]
    dense, dense_history, dense_share = fit_weights(X, y, False, monkeypatch)
    skipping, skipping_history, share = fit_weights(X, y, True, monkeypatch)
    assert dense_share is None and 0.6 < share < 0.9
    difference = max(float(np.abs(a - b).max()) for a, b in zip(dense, skipping, strict=True))
    print(f"dense vs skipping zero pixels: max |weight difference| {difference:.3g}, share {share:.3f}")
    assert difference < 2e-6
    np.testing.assert_allclose(dense_history["loss"], skipping_history["loss"], rtol=1e-5)
    # W1 comes back in the original pixel order: a pixel no training image uses keeps its initial row
    never_used = ~mnist[0][:12_800].any(axis=0)
    initial = my_net.NeuralNetwork(784, 64, seed=3).params["W1"]
    np.testing.assert_array_equal(skipping[0][never_used], initial[never_used])


def test_momentum_and_adam_keep_the_dense_loop(mnist, monkeypatch):
    from optimizers import OptimizerSettings

    monkeypatch.setattr(pixels, "SAVED_PER_COPIED", 0)
    net = my_net.NeuralNetwork(784, 64, seed=3, optimizer=OptimizerSettings("adam"))
    net.fit(mnist[0][:2048], mnist[1][:2048], 128, 1)
    assert net.describe()["first_layer_share"] is None


def test_logits_refuse_inputs_of_another_width():
    net = my_net.NeuralNetwork(784, 16, seed=0)
    with pytest.raises(ValueError, match="700 columns"):
        net.predict(np.zeros((3, 700), np.float32))


def test_prefaulted_memory_is_an_ordinary_writable_array():
    array = pixels.prefaulted_empty((3, 5), np.float32)
    array[...] = 2.5
    assert array.shape == (3, 5) and array.dtype == np.float32 and float(array.sum()) == 37.5
    assert pixels.prefaulted_empty((0, 5), np.float32).shape == (0, 5)
