"""pixels.py: skipping the pixels a batch has at zero is exact, pays where it should, and is undone."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_compare.nets import my_net, pixels
from mnist_compare.nets.workspace import Workspace


def test_no_batch_of_a_real_epoch_drops_a_non_zero_pixel(mnist):
    X = mnist[0]
    renumbered = pixels.RenumberedPixels(X)
    assert renumbered.X is None, "MNIST's inputs are 8-bit values / 255: kept as bytes"
    np.testing.assert_array_equal(pixels.decode(renumbered.codes, np.empty_like(X)), X[:, renumbered.order])
    order = np.random.default_rng(0).permutation(len(X))
    for start in range(0, len(X), 128):
        batch = order[start:start + 128]
        k = renumbered.prefix_length(batch)
        assert not renumbered.codes[batch, k:].any(), f"batch at {start} has a non-zero pixel beyond k = {k}"
        assert renumbered.codes[batch, k - 1].any(), f"batch at {start}: k = {k} is not the smallest prefix"
    print(f"MNIST, batch 128: {renumbered.share_used:.3f} of the dense first-layer work")
    assert 0.6 < renumbered.share_used < 0.9  # measured 0.809


def test_a_batch_reads_back_exactly_the_values_of_its_examples(mnist):
    """Bytes where the inputs are 8-bit values / 255 (MNIST), a float copy where they are not (inputs scaled
    otherwise, zeros kept): either way the batch is X's values bit for bit, in the renumbered order, cut at k."""
    X = mnist[0][:4096]
    rescaled = np.where(X > 0, X * np.float32(0.7) + np.float32(0.1), np.float32(0))
    batch = np.random.default_rng(1).permutation(len(X))[:128]
    for inputs, kept_as_bytes in ((X, True), (rescaled, False)):
        renumbered = pixels.RenumberedPixels(inputs)
        assert (renumbered.codes is not None) == kept_as_bytes
        ws = Workspace(128, my_net.NeuralNetwork(784, 8).params)
        batch_inputs = renumbered.batch_inputs(batch, ws)
        k = batch_inputs.shape[1]
        assert batch_inputs.flags.c_contiguous and k < 784
        np.testing.assert_array_equal(batch_inputs.view(np.uint32),
                                      inputs[batch][:, renumbered.order[:k]].view(np.uint32))


def test_inputs_are_kept_as_bytes_only_when_they_read_back_exactly():
    def as_bytes(X):
        codes = np.empty(X.shape, np.uint8)
        return codes if pixels.to_bytes(X, codes, np.empty_like(X)) else None

    exact = np.arange(256, dtype=np.float32)[np.newaxis] / 255
    np.testing.assert_array_equal(as_bytes(exact), np.arange(256)[np.newaxis])
    for value in (0.5, -1 / 255, 256 / 255, np.nan, np.inf, np.nextafter(np.float32(1 / 255), 1, dtype=np.float32)):
        assert as_bytes(np.array([[0.0, value]], np.float32)) is None, value


def test_an_all_zero_batch_still_multiplies_one_pixel():
    renumbered = pixels.RenumberedPixels(np.zeros((4, 6), np.float32))
    assert renumbered.prefix_length(np.arange(4)) == 1
    assert renumbered.epoch_prefixes(np.arange(4), 3) == [1, 1]


def test_an_epochs_prefixes_are_each_batchs_own_and_count_the_same_work(mnist):
    """epoch_prefixes (one pass, as fit uses it) gives every batch the k prefix_length gives it, the last
    short batch included, and batch_inputs with that k counts the same share of the dense work."""
    X = mnist[0][:10_000]
    order = np.random.default_rng(2).permutation(len(X))
    batches = [order[start:start + 128] for start in range(0, len(X), 128)]
    one_by_one, at_once = pixels.RenumberedPixels(X), pixels.RenumberedPixels(X)
    ws = Workspace(128, my_net.NeuralNetwork(784, 8).params)
    prefixes = at_once.epoch_prefixes(order, 128)
    assert prefixes == [one_by_one.prefix_length(batch) for batch in batches] and len(batches[-1]) == 16
    for batch, k in zip(batches, prefixes, strict=True):
        assert at_once.batch_inputs(batch, ws, k).shape == (len(batch), k)
    assert at_once.share_used == one_by_one.share_used < 1


def test_renumbering_pays_on_mnist_for_fits_long_enough_for_their_layer(mnist):
    X = mnist[0]
    for hidden, shortest_fit_that_pays in ((30, 12), (128, 6), (300, 4)):  # ab.py measured ~13 and ~6
        assert pixels.worth_renumbering(X, hidden, 128, shortest_fit_that_pays)
        assert not pixels.worth_renumbering(X, hidden, 128, shortest_fit_that_pays - 2)
    assert not pixels.worth_renumbering(X, 300, 128, 1)
    not_bytes = X * np.float32(0.7)  # the same zero pixels, a float copy: pays for large layers only
    assert pixels.worth_renumbering(not_bytes, 300, 128, 20)
    assert not pixels.worth_renumbering(not_bytes, 128, 128, 20)


def test_data_with_few_zero_pixels_keeps_the_dense_loop(mnist):
    """Like Fashion-MNIST (about half the pixels non-zero): MNIST's images with the background lit
    in a random half of the pixels of every image."""
    X = mnist[0][:8192].copy()
    background = np.random.default_rng(0).random(X.shape) < 0.5
    X[background & (X == 0)] = 0.1
    assert not pixels.worth_renumbering(X, 300, 128, 20)
    assert not pixels.worth_renumbering(X, 1000, 128, 100)


def fit_weights(X, y, skip: bool, monkeypatch, epochs: int = 2) -> tuple[list[np.ndarray], dict, float | None]:
    monkeypatch.setattr(my_net, "worth_renumbering", lambda *fit: True)  # a short fit: renumber anyway
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
    from mnist_compare.records.spec import OptimizerSettings

    monkeypatch.setattr(my_net, "worth_renumbering", lambda *fit: True)
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
