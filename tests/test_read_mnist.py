"""read_mnist: the bundled files, IDX parsing, every error case, and scaling."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, write_dataset, write_idx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_compare.data import idx as read_mnist
from mnist_compare.data.idx import MnistDataError
from mnist_compare.nets import keras_net

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def raw_mnist():
    return read_mnist.get_MNIST()


def test_bundled_files_load_with_mnist_shapes_and_dtypes(raw_mnist):
    (x_train, y_train), (x_test, y_test) = raw_mnist
    assert [a.shape for a in (x_train, y_train, x_test, y_test)] == [(60000, 28, 28), (60000,), (10000, 28, 28),
                                                                      (10000,)]
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))


def test_bundled_label_counts_match_published_mnist(raw_mnist):
    (_, y_train), (_, y_test) = raw_mnist
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS


def test_bundled_pixel_means_match_published_mnist(raw_mnist):
    (x_train, _), (x_test, _) = raw_mnist
    assert x_train.mean() == pytest.approx(33.3184, abs=5e-4)
    assert x_test.mean() == pytest.approx(33.7912, abs=5e-4)


def test_bundled_manifest_matches_the_shared_copy():
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "SHA256SUMS.uncompressed"
    if not shared.exists():
        pytest.skip(f"{shared} is not beside the project")
    ours = read_mnist.read_checksums(read_mnist.BUNDLED_DIR)
    assert ours == read_mnist.read_checksums(shared.parent)
    assert len(ours) == 4


def test_reading_the_largest_file_takes_about_a_second_at_most():
    path = read_mnist.BUNDLED_DIR / "train-images-idx3-ubyte.gz"
    start = time.perf_counter()
    read_mnist.read_idx(path, read_mnist.read_checksums(read_mnist.BUNDLED_DIR)[path.stem], verify=True)
    assert time.perf_counter() - start < 2.0  # ~0.2 s measured; generous for a shared machine


def copy_of_bundled(tmp_path: Path) -> Path:
    target = tmp_path / "mnist"
    shutil.copytree(read_mnist.BUNDLED_DIR, target)
    return target


def test_checksum_fails_on_a_bundled_file_with_one_flipped_byte(tmp_path, monkeypatch):
    copy = copy_of_bundled(tmp_path)
    path = copy / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] ^= 0x01  # a label byte: still a valid IDX file, only the checksum can tell
    path.write_bytes(gzip.compress(bytes(content)))
    monkeypatch.setattr(read_mnist, "BUNDLED_DIR", copy)
    with pytest.raises(MnistDataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch"):
        read_mnist.get_MNIST()


def test_checksum_passes_on_an_unchanged_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(read_mnist, "BUNDLED_DIR", copy_of_bundled(tmp_path))
    (x_train, _), _ = read_mnist.get_MNIST()
    assert x_train.shape == (60000, 28, 28)


@pytest.mark.parametrize("compress", [False, True])
def test_small_idx_files_round_trip(tmp_path, compress):
    arrays = write_dataset(tmp_path, compress=compress)
    (x_train, y_train), (x_test, y_test) = read_mnist.get_MNIST(tmp_path)
    for loaded, written in zip((x_train, y_train, x_test, y_test), arrays, strict=True):
        np.testing.assert_array_equal(loaded, written)


@pytest.mark.parametrize("dtype,code", [(np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)])
def test_multibyte_idx_types_are_read_big_endian(dtype, code):
    array = np.arange(-3, 9, dtype=dtype).reshape(3, 4)
    np.testing.assert_array_equal(read_mnist.parse_idx(idx_bytes(array, code)), array)


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    arrays = write_dataset(tmp_path)
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    (_, y_train), _ = read_mnist.get_MNIST()
    np.testing.assert_array_equal(y_train, arrays[1])


def error_message(directory: Path) -> str:
    with pytest.raises(MnistDataError) as info:
        read_mnist.get_MNIST(directory)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory_is_reported(tmp_path):
    assert "data directory not found" in error_message(tmp_path / "nowhere")


def test_missing_file_is_reported_by_name(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    assert "t10k-labels-idx1-ubyte[.gz]: file not found" in error_message(tmp_path)


def test_bad_magic_number_is_reported_by_name(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not an idx file")
    assert "train-images-idx3-ubyte: bad magic number" in error_message(tmp_path)


def test_truncated_gzip_is_reported_by_name(tmp_path):
    write_dataset(tmp_path, compress=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    assert "train-images-idx3-ubyte.gz: truncated or corrupt gzip" in error_message(tmp_path)


def test_corrupt_gzip_is_reported_by_name(tmp_path):
    write_dataset(tmp_path, compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    content = bytearray(path.read_bytes())
    content[20:30] = b"\xff" * 10
    path.write_bytes(bytes(content))
    assert "train-labels-idx1-ubyte.gz: truncated or corrupt gzip" in error_message(tmp_path)


def test_dims_that_do_not_match_the_file_size_are_reported(tmp_path):
    write_dataset(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    assert "train-images-idx3-ubyte: dimensions (12, 28, 28) need 9408 data bytes but the file has 9403" in (
        error_message(tmp_path))


def test_image_and_label_count_mismatch_is_reported(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    assert "5 images but t10k-labels-idx1-ubyte has 4 labels" in error_message(tmp_path)


def test_labels_outside_0_to_9_are_reported(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(12, 11, np.uint8))
    assert "train-labels-idx1-ubyte: labels outside 0-9" in error_message(tmp_path)


def test_images_that_are_not_three_dimensional_are_reported(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 784), np.uint8))
    assert "expected 3 dimensions" in error_message(tmp_path)


def test_flatten_and_scale_gives_float32_rows_in_the_unit_interval(raw_mnist):
    (x_train, _), (x_test, _) = raw_mnist
    X_train, X_test = (read_mnist.flatten_and_scale(x) for x in (x_train, x_test))
    for X, n in ((X_train, 60000), (X_test, 10000)):
        assert X.dtype == np.float32 and X.shape == (n, 784)
        assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_allclose(X_test[0], x_test[0].ravel() / 255, rtol=1e-6)


def test_one_hot_is_float32_with_a_single_one_per_row():
    Y = read_mnist.one_hot(np.array([3, 0, 9]), 10)
    assert Y.dtype == np.float32 and Y.shape == (3, 10)
    np.testing.assert_array_equal(Y.argmax(axis=1), [3, 0, 9])
    np.testing.assert_array_equal(Y.sum(axis=1), [1, 1, 1])


def test_keras_source_loads_mnist_from_the_keras_cache():
    cache = Path("~/.keras/datasets/mnist.npz").expanduser()
    if not cache.exists():
        pytest.skip(f"{cache} is absent and tests never use the network")
    for keras_split, bundled_split in zip(keras_net.load_mnist(), read_mnist.get_MNIST(), strict=True):
        for keras_array, bundled_array in zip(keras_split, bundled_split, strict=True):
            np.testing.assert_array_equal(keras_array, bundled_array)


VALID_IDX = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=64), st.integers(0, len(VALID_IDX)).map(lambda k: VALID_IDX[:k]),
                 st.tuples(st.integers(0, len(VALID_IDX) - 1), st.integers(0, 255)).map(
                     lambda p: VALID_IDX[:p[0]] + bytes([p[1]]) + VALID_IDX[p[0] + 1:])))
def test_random_bytes_either_parse_to_their_dims_or_raise_the_module_error(content):
    try:
        array = read_mnist.parse_idx(content, "fuzz")
    except MnistDataError as err:
        assert str(err).startswith("fuzz: ")
        return
    ndim = content[3]
    dims = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    assert array.shape == dims


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2000))
def test_random_truncations_of_a_gzip_file_raise_the_module_error(tmp_path_factory, cut):
    directory = tmp_path_factory.mktemp("trunc")
    path = directory / "x.gz"
    path.write_bytes(gzip.compress(VALID_IDX * 20)[:cut])  # never a valid IDX file, truncated or not
    with pytest.raises(MnistDataError) as info:
        read_mnist.read_idx(path)
    assert str(info.value).startswith(str(path))
