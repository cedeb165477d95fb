"""Read MNIST-format data sets from IDX files; the only module that knows file formats.

The IDX format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, the number of
dimensions k, then k big-endian uint32 sizes, then the data in C order. Files may be gzip-compressed.
MNIST itself is bundled in data/mnist/ and verified against SHA-256 sums of its uncompressed content; so is
any other directory that carries the same manifest, and one without it (Fashion-MNIST, KMNIST) loads unverified.

Not for: scaling or batching for a particular network beyond `flatten_and_scale` and `one_hot`.
Reads every file by the guarded reader (system/reading.py) and imports no other module of the project.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from pathlib import Path

import numpy as np

from mnist_compare.system.reading import MIB, FileRefused, read_bytes, read_text

BUNDLED_DIR = Path(__file__).resolve().parent / "mnist"  # package data: mnist_compare/data/mnist
CHECKSUM_FILE = "SHA256SUMS.uncompressed"
FILE_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
NUM_CLASSES = 10
IDX_LIMIT = 2048 * MIB  # a file, and what its gzip unpacks to: MNIST's largest is 47 MiB
MAX_DIMENSIONS = 32  # NumPy's limit (64 from NumPy 2); MNIST's files have 1 (labels) or 3 (images)

# IDX dtype codes; multi-byte types are big-endian.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

Split = tuple[np.ndarray, np.ndarray]


Dataset = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""X_train (N, d) float32 in [0, 1], y_train (N,) labels, X_test (M, d), y_test (M,)."""


class MnistDataError(Exception):
    """A data file is missing, malformed, corrupt or fails its checksum; the message is one line."""


def find_idx_file(data_dir: Path, stem: str) -> Path:
    """The path of `stem` or `stem.gz` in data_dir; raw files win when both are present."""
    for name in (stem, stem + ".gz"):
        path = data_dir / name
        if path.exists():  # a FIFO or a directory by that name is refused by the reader, in words
            return path
    raise MnistDataError(f"{data_dir / stem}[.gz]: file not found")


def read_file_bytes(path: Path) -> bytes:
    """The content of `path`, decompressed if it starts with the gzip magic bytes; at most IDX_LIMIT bytes
    either way (a gzip bomb is refused, not unpacked into memory)."""
    try:
        raw = read_bytes(path, "the data file", IDX_LIMIT)
    except FileRefused as err:
        raise MnistDataError(str(err)) from None
    return gunzipped(raw, path) if raw[:2] == b"\x1f\x8b" else raw


def gunzipped(raw: bytes, path: Path) -> bytes:
    """The concatenated members of gzip data, unpacked to at most IDX_LIMIT bytes."""
    parts, size = [], 0
    while raw:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = member.decompress(raw, IDX_LIMIT + 1 - size)
        except zlib.error as err:
            raise MnistDataError(f"{path}: truncated or corrupt gzip data ({err})") from None
        size += len(part)
        if size > IDX_LIMIT:
            raise MnistDataError(f"{path}: unpacks to more than {IDX_LIMIT // MIB} MiB: not an MNIST-format file")
        if not member.eof:
            raise MnistDataError(f"{path}: truncated or corrupt gzip data (it ends inside the compressed stream)")
        parts.append(part)
        raw = member.unused_data.lstrip(b"\0")  # gzip allows zero padding between members
    return b"".join(parts)


def parse_idx(content: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Parse IDX `content` into an array of the dtype and shape its header gives.

    Raises MnistDataError naming `path` for a bad magic number, an unknown dtype code, or
    a data size that does not match the dimensions.
    """
    if len(content) < 4 or content[:2] != b"\x00\x00":
        raise MnistDataError(f"{path}: bad magic number {content[:4].hex() or '(empty file)'}, not an IDX file")
    dtype_code, ndim = content[2], content[3]
    if dtype_code not in IDX_DTYPES:
        raise MnistDataError(f"{path}: unknown IDX dtype code 0x{dtype_code:02x}")
    if ndim > MAX_DIMENSIONS:
        raise MnistDataError(f"{path}: its header gives {ndim} dimensions, more than the {MAX_DIMENSIONS} an "
                             "array can have (MNIST-format files have 1 or 3)")
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(content) < header_size:
        raise MnistDataError(f"{path}: truncated IDX header ({ndim} dimensions, {len(content)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[dtype_code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a header's product cannot overflow
    actual = len(content) - header_size
    if actual != expected:
        raise MnistDataError(
            f"{path}: dimensions {dims} need {expected} data bytes but the file has {actual}"
        )
    return np.frombuffer(content, dtype=dtype, offset=header_size).reshape(dims)


def read_checksums(data_dir: Path) -> dict[str, str]:
    """The manifest `name -> sha256 hex` of the uncompressed files in data_dir."""
    manifest = data_dir / CHECKSUM_FILE
    try:
        lines = read_text(manifest, "the checksum manifest", MIB).split("\n")
    except FileRefused as err:
        raise MnistDataError(str(err)) from None
    pairs = [line.split() for line in lines if line.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise MnistDataError(f"{manifest}: not a checksum manifest (each line: a SHA-256 digest and a file name)")
    return {name.lstrip("*"): digest for digest, name in pairs}


def verify_checksum(content: bytes, path: Path, expected: str | None) -> None:
    """Raise MnistDataError unless sha256(content) equals `expected`."""
    actual = hashlib.sha256(content).hexdigest()
    if expected is None:
        raise MnistDataError(f"{path}: no checksum listed in {CHECKSUM_FILE}")
    if actual != expected:
        raise MnistDataError(f"{path}: checksum mismatch (sha256 {actual[:12]}..., expected {expected[:12]}...)")


def read_idx(path: Path, checksum: str | None = None, verify: bool = False) -> np.ndarray:
    """Read one IDX file (gzip or raw); with `verify`, check its uncompressed SHA-256 first."""
    content = read_file_bytes(path)
    if verify:
        verify_checksum(content, path, checksum)
    return parse_idx(content, path)


def check_split(images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path) -> Split:
    """Check that images (n, rows, cols) and labels (n,) in 0..9 belong together; return them as uint8."""
    if images.ndim != 3:
        raise MnistDataError(f"{image_path}: expected 3 dimensions (n, rows, cols), found {images.shape}")
    if labels.ndim != 1:
        raise MnistDataError(f"{label_path}: expected 1 dimension (n,), found {labels.shape}")
    if images.ndim == 3 and 0 in images.shape:
        raise MnistDataError(f"{image_path}: no images to read (dimensions {images.shape})")
    if len(images) != len(labels):
        raise MnistDataError(f"{image_path}: {len(images)} images but {label_path.name} has {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise MnistDataError(f"{label_path}: labels outside 0-{NUM_CLASSES - 1} (found {labels.min()}..{labels.max()})")
    if images.dtype != np.uint8:
        raise MnistDataError(f"{image_path}: expected unsigned byte pixels, found {images.dtype}")
    return images, labels.astype(np.uint8)


def load_split(data_dir: Path, split: str, checksums: dict[str, str] | None) -> Split:
    """Read the images and labels of `split` ("train" or "test") from data_dir."""
    paths = [find_idx_file(data_dir, FILE_STEMS[f"{split}_{kind}"]) for kind in ("images", "labels")]
    verify = checksums is not None
    images, labels = (read_idx(p, (checksums or {}).get(p.name.removesuffix(".gz")), verify) for p in paths)
    return check_split(images, labels, *paths)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """`data_dir`, else $MNIST_DATA_DIR, else the bundled data/mnist/."""
    chosen = data_dir or os.environ.get("MNIST_DATA_DIR") or BUNDLED_DIR
    return Path(chosen).expanduser().resolve()


def get_MNIST(data_dir: str | os.PathLike | None = None) -> tuple[Split, Split]:
    """Load ((x_train, y_train), (x_test, y_test)) from IDX files.

    Returns uint8 arrays: x_train (60000, 28, 28), y_train (60000,), x_test (10000, 28, 28),
    y_test (10000,) for MNIST. The bundled files are checked against their SHA-256 manifest.
    """
    directory = resolve_data_dir(data_dir)
    if not directory.is_dir():
        raise MnistDataError(f"{directory}: data directory not found")
    has_manifest = directory == BUNDLED_DIR.resolve() or (directory / CHECKSUM_FILE).is_file()
    checksums = read_checksums(directory) if has_manifest else None
    return check_image_sizes(load_split(directory, "train", checksums), load_split(directory, "test", checksums),
                             directory)


def check_image_sizes(train: Split, test: Split, source: Path) -> tuple[Split, Split]:
    """Refuse training and test images of different sizes: a net trained on one cannot read the other."""
    if train[0].shape[1:] != test[0].shape[1:]:
        raise MnistDataError(f"{source}: training images are {'x'.join(map(str, train[0].shape[1:]))} but test "
                             f"images are {'x'.join(map(str, test[0].shape[1:]))}")
    return train, test


def load_data(data_dir: str | os.PathLike | None = None,
              splits: tuple[Split, Split] | None = None) -> tuple[np.ndarray, ...]:
    """X_train (60000, 784) float32 in [0, 1], y_train (60000,) uint8, X_test (10000, 784), y_test (10000,).

    From the IDX files in data_dir (get_MNIST), or from `splits` already read elsewhere (the Keras source).
    """
    (x_train, y_train), (x_test, y_test) = splits if splits is not None else get_MNIST(data_dir)
    return flatten_and_scale(x_train), y_train, flatten_and_scale(x_test), y_test


def flatten_and_scale(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, rows, cols) -> float32 (n, rows*cols) in [0, 1]."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    flat /= 255
    return flat


def normalized_MNIST(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original tool's normalisation of both image sets: uint8 (n, rows, cols) -> float32 (n, rows*cols)
    in [0, 1] (flatten_and_scale on each)."""
    return flatten_and_scale(x_train), flatten_and_scale(x_test)


def one_hot(y: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels (n,) -> float32 one-hot rows (n, num_classes)."""
    Y = np.zeros((len(y), num_classes), dtype=np.float32)
    Y[np.arange(len(y)), y] = 1.0
    return Y
