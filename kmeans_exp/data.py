"""MNIST-like data: bundled MNIST, IDX directories, Keras ``mnist.npz`` files, opt-in download
(Keras' ``mnist.npz``, or a named data set's four IDX ``.gz`` files from a folder URL).

Every source is read into the same ``RawDataset`` (uint8 images, int64 labels, official order),
checked for format (shapes, counts, label range, finite values) and, when the data set is named
(MNIST, Fashion-MNIST), against its label counts and the sha256 of its official IDX files.
Errors are ``DataError``: one line naming the file and what was expected.
This module imports neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import io
import os
import struct
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kmeans_exp import options
from kmeans_exp.errors import DataError
from kmeans_exp.options import DataSource

# sha256 of the uncompressed official IDX files: the ground truth for every source of MNIST.
MNIST_IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# sha256 of the uncompressed Fashion-MNIST IDX files, as Debian's dataset-fashion-mnist
# (0.0~git20200523.55506a9-1, from the Zalando repository) ships them gzipped. Zalando publishes
# only the md5 of its own .gz files, which Debian recompressed; these are the bytes inside.
FASHION_IDX_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# sha256 of Keras' mnist.npz, checked before a downloaded file is used.
KERAS_MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
BUNDLED_MNIST = "mnist.npz"

# Byte alignment of the image arrays, so that the engine can hand them to TensorFlow as they
# are (DLPack) instead of copying them: XLA's CPU code expects aligned buffers.
ALIGNMENT = 64
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class NamedDataset:
    """A data set known by name (``data.dataset``): what its files must hold, what its classes
    are called, and where to get it."""

    idx_sha256: dict[str, str]  # of each uncompressed IDX file
    train_counts: tuple[int, ...]  # images per class, the official training set (60,000)
    test_counts: tuple[int, ...]
    class_names: tuple[str, ...]
    noun: str  # what figures call a class
    how_to_get: str  # for the missing-files message


NAMED = {
    "mnist": NamedDataset(
        MNIST_IDX_SHA256,
        (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        tuple("0123456789"),
        "digit",
        "data.source=bundled has it, or data.source=download fetches Keras' mnist.npz",
    ),
    "fashion_mnist": NamedDataset(
        FASHION_IDX_SHA256,
        (6000,) * 10,
        (1000,) * 10,
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        "class",
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or, with "
        "a network, data.source=download fetches the four official .gz files (data.url) into "
        "data.path",
    ),
}


@dataclass(frozen=True)
class RawDataset:
    """Images (N, rows, cols) uint8 and labels (N,) int64, as the files hold them."""

    name: str
    source: str
    location: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1

    @property
    def class_names(self) -> tuple[str, ...]:
        """Each class's name: a named data set's (T-shirt/top, ...), else its index."""
        named = NAMED.get(self.name)
        return named.class_names if named else tuple(str(i) for i in range(self.num_classes))

    @property
    def noun(self) -> str:
        """What figures call a class: "digit" for MNIST, "class" otherwise."""
        named = NAMED.get(self.name)
        return named.noun if named else "class"


@dataclass(frozen=True)
class Splits:
    """Images as (N, rows*cols) uint8 pixels (or float embeddings, (N, d)), and int64 labels,
    for train, validation and test.

    The pixels stay uint8, views of the loaded arrays: no float copy of the data set is made.
    The engine reads uint8 as value / 255; ``features`` gives that float32 array where a caller
    needs one.
    """

    raw: RawDataset
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(rows, cols) of the images; None for embeddings (rows that are no images)."""
        shape = self.raw.train_images.shape
        return (shape[1], shape[2]) if len(shape) == 3 else None


# ---------------------------------------------------------------------------------------------
# IDX format


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX file holding ``array`` (uint8 images or labels), header included."""
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def idx_members(raw: RawDataset) -> dict[str, np.ndarray]:
    """The four standard IDX file names mapped to the arrays they hold."""
    return {
        "train-images-idx3-ubyte": raw.train_images,
        "train-labels-idx1-ubyte": raw.train_labels,
        "t10k-images-idx3-ubyte": raw.test_images,
        "t10k-labels-idx1-ubyte": raw.test_labels,
    }


def parse_idx(path: Path) -> np.ndarray:
    """Read one IDX file (raw or gzipped), checking its magic number and that its size fits.

    A raw file's body is read straight into an aligned array: no second copy of a large file.
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                f.seek(0)
                payload = io.BytesIO(gzip.decompress(f.read()))
                return _read_idx(path, payload, len(payload.getbuffer()))
            f.seek(0)
            return _read_idx(path, f, os.fstat(f.fileno()).st_size)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read the IDX file ({e})") from None


def _read_idx(path: Path, stream: BinaryIO, size: int) -> np.ndarray:
    """The array in an IDX ``stream`` of ``size`` bytes, checked before anything is allocated."""
    if size < 8:
        raise DataError(f"{path}: truncated IDX file ({size} bytes, expected a header)")
    magic = struct.unpack(">I", stream.read(4))[0]
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise DataError(
            f"{path}: wrong IDX magic number 0x{magic:08x}, expected 0x{IDX_IMAGES_MAGIC:08x} "
            f"(images) or 0x{IDX_LABELS_MAGIC:08x} (labels) for unsigned bytes"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if size < header_size:
        raise DataError(f"{path}: truncated IDX header ({size} bytes)")
    shape = struct.unpack(f">{ndim}I", stream.read(4 * ndim))
    expected = header_size + int(np.prod(shape))
    if size != expected:
        raise DataError(
            f"{path}: IDX file of {size} bytes, expected {expected} for shape {shape}"
            + (" (truncated)" if size < expected else "")
        )
    body = _aligned_empty(expected - header_size)
    if stream.readinto(memoryview(body)) != body.nbytes:
        raise DataError(f"{path}: the IDX file changed while it was read")
    return body.reshape(shape)


def aligned(array: np.ndarray) -> np.ndarray:
    """``array`` if it is C-contiguous, writeable and ``ALIGNMENT``-aligned, else such a copy."""
    flags = array.flags
    if flags.c_contiguous and flags.writeable and array.ctypes.data % ALIGNMENT == 0:
        return array
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array starting on an ``ALIGNMENT`` boundary (TensorFlow can share it)."""
    return _aligned_empty(int(np.prod(shape)) * np.dtype(dtype).itemsize).view(dtype).reshape(shape)


def _aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialised uint8 array of ``nbytes`` starting on an ``ALIGNMENT`` boundary."""
    buffer = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start : start + nbytes]


# ---------------------------------------------------------------------------------------------
# Sources


def bundled_path() -> Path:
    """The MNIST archive shipped inside the package."""
    return Path(str(resources.files("kmeans_exp.resources").joinpath(BUNDLED_MNIST)))


def _find_idx_file(directory: Path, stem: str, hint: str = "") -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    # Some distributions name the files with a dot before "idx" (t10k-images.idx3-ubyte).
    dotted = stem.replace("-idx", ".idx")
    for candidate in (directory / dotted, directory / f"{dotted}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory}: missing IDX file {stem} (or {stem}.gz){hint}")


def read_idx_dir(directory: Path, name: str) -> RawDataset:
    """Load the four standard IDX files (raw or .gz) from ``directory``."""
    named = NAMED.get(name)
    hint = f": {named.how_to_get}" if named else ""
    if not directory.is_dir():
        raise DataError(
            f"data.path={directory}: not a directory holding the four IDX files of {name}{hint}"
        )
    arrays = {stem: parse_idx(_find_idx_file(directory, stem, hint)) for stem in MNIST_IDX_SHA256}
    for stem, array in arrays.items():
        want = 3 if "images" in stem else 1
        if array.ndim != want:
            raise DataError(
                f"{_find_idx_file(directory, stem)}: {array.ndim}-dimensional IDX data, "
                f"expected {want} dimensions for {'images' if want == 3 else 'labels'}"
            )
    return RawDataset(
        name=name,
        source="idx",
        location=str(directory),
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"].astype(np.int64),
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
    )


def npz_arrays(path: Path, missing_file: str) -> dict[str, np.ndarray]:
    """x_train, y_train, x_test and y_test from an ``.npz`` (no pickled objects)."""
    if not path.is_file():
        raise DataError(missing_file)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing arrays {missing}, expected {list(NPZ_KEYS)} (Keras format)"
                )
            return {key: archive[key] for key in NPZ_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None


def read_npz(path: Path, name: str, source: str = "npz") -> RawDataset:
    """Load a Keras-format archive: x_train, y_train, x_test, y_test (no pickled objects)."""
    arrays = npz_arrays(path, f"{path}: no such file (expected a Keras-format mnist.npz)")
    for key in ("x_train", "x_test"):
        arrays[key] = aligned(_as_uint8_images(path, key, arrays[key]))
    for key in ("y_train", "y_test"):
        arrays[key] = _as_labels(path, key, arrays[key])
    return RawDataset(
        name=name,
        source=source,
        location=str(path),
        train_images=arrays["x_train"],
        train_labels=arrays["y_train"],
        test_images=arrays["x_test"],
        test_labels=arrays["y_test"],
    )


def _as_uint8_images(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 3:
        raise DataError(f"{path}: {key} has shape {array.shape}, expected (N, rows, cols)")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise DataError(f"{path}: {key} holds non-finite or non-numeric values (NaN or inf)")
    if array.min() < 0 or array.max() > 255 or not np.all(array == np.round(array)):
        raise DataError(f"{path}: {key} must hold integer pixel values 0..255 (uint8)")
    return array.astype(np.uint8)


def _as_labels(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        raise DataError(f"{path}: {key} has shape {array.shape}, expected (N,)")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise DataError(f"{path}: {key} holds non-finite or non-numeric labels")
        if not np.all(array == np.round(array)):
            raise DataError(f"{path}: {key} must hold integer class labels")
    return array.astype(np.int64)


def download(url: str, path: Path, timeout_s: float = 60.0) -> Path:
    """Fetch Keras' MNIST archive to ``path`` atomically, unless a verified copy is there."""
    if path.is_file() and sha256_file(path) == KERAS_MNIST_NPZ_SHA256:
        return path
    _make_folder(path.parent)
    with _partial(path) as part:
        _fetch(url, part, timeout_s)
        digest = sha256_file(part)
        if digest != KERAS_MNIST_NPZ_SHA256:
            raise DataError(
                f"{url}: downloaded file has sha256 {digest}, expected {KERAS_MNIST_NPZ_SHA256} "
                "(Keras' mnist.npz)"
            )
        os.replace(part, path)
    return path


def download_idx(url: str, directory: Path, name: str, timeout_s: float = 60.0) -> Path:
    """Fetch a named data set's four IDX files (``<url>/<file>.gz``) into ``directory``.

    Each file lands atomically once the sha256 of its content is the official one; a file
    already there with that content is kept, so a second call fetches nothing.
    """
    named = NAMED.get(name)
    if named is None:
        raise DataError(
            f"data.dataset={name}: data.source=download of IDX files needs a named data set "
            f"({', '.join(NAMED)}) whose files can be checked"
        )
    _make_folder(directory)
    for stem, expected in named.idx_sha256.items():
        target = directory / f"{stem}.gz"
        if target.is_file() and _gz_content_sha256(target) == expected:
            continue
        source = f"{url.rstrip('/')}/{stem}.gz"
        with _partial(target) as part:
            _fetch(source, part, timeout_s)
            digest = _gz_content_sha256(part, source)
            if digest != expected:
                raise DataError(
                    f"{source}: content has sha256 {digest[:12]}…, expected the official "
                    f"{name} {expected[:12]}…"
                )
            os.replace(part, target)
    return directory


def _make_folder(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"data.path={directory}: cannot hold the downloaded files ({e})") from None


@contextlib.contextmanager
def _partial(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, removed unless it was moved into place."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def _fetch(url: str, part: Path, timeout_s: float) -> None:
    try:
        with open(part, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except OSError as e:
        raise DataError(f"{url}: download failed ({e})") from None


def _gz_content_sha256(path: Path, where: str | None = None) -> str:
    """The sha256 of a gzip file's content."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{where or path}: not a readable gzip file ({e})") from None
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Checks


def check_format(raw: RawDataset) -> None:
    """Shapes agree, image and label counts match, labels are small non-negative integers."""
    where = raw.location
    if raw.train_images.shape[1:] != raw.test_images.shape[1:]:
        raise DataError(
            f"{where}: train images are {raw.train_images.shape[1:]} but test images are "
            f"{raw.test_images.shape[1:]}, expected the same size"
        )
    for split, images, labels in (
        ("train", raw.train_images, raw.train_labels),
        ("test", raw.test_images, raw.test_labels),
    ):
        if len(images) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if len(images) != len(labels):
            raise DataError(
                f"{where}: {len(images)} {split} images but {len(labels)} {split} labels, "
                "expected one label per image"
            )
        if labels.min() < 0 or labels.max() > 255:
            raise DataError(
                f"{where}: {split} labels range {labels.min()}..{labels.max()}, "
                "expected class indices 0..255"
            )


def check_named(raw: RawDataset, named: NamedDataset) -> None:
    """A named data set's label counts per class, then each array against the IDX file it must
    equal, byte for byte."""
    other = "(set data.dataset to another name to load a different MNIST-like set)"
    for split, labels, counts in (
        ("train", raw.train_labels, named.train_counts),
        ("test", raw.test_labels, named.test_counts),
    ):
        found = np.bincount(labels, minlength=len(counts))
        if tuple(found) != counts:
            raise DataError(
                f"{raw.location}: {split} labels count {', '.join(map(str, found))} per class, "
                f"expected the official {raw.name}'s {', '.join(map(str, counts))} {other}"
            )
    for stem, array in idx_members(raw).items():
        digest = hashlib.sha256(idx_bytes(array)).hexdigest()
        if digest != named.idx_sha256[stem]:
            raise DataError(
                f"{raw.location}: {stem} content has sha256 {digest[:12]}…, expected the "
                f"official {raw.name} {named.idx_sha256[stem][:12]}… {other}"
            )


# ---------------------------------------------------------------------------------------------
# Entry points


def load_raw(
    source: str | DataSource, path: str | None, dataset: str, url: str | None = None
) -> RawDataset:
    """Read and check the data set named by the ``data`` config group."""
    source = options.data_source(source, path, url)
    if source is DataSource.bundled:
        if dataset != "mnist":
            raise DataError(f"data.dataset={dataset}: the bundled data is 'mnist'")
        raw = read_npz(bundled_path(), name=dataset, source="bundled")
    elif source is DataSource.idx:
        raw = read_idx_dir(Path(path).expanduser(), name=dataset)
    elif source is DataSource.npz:
        raw = read_npz(Path(path).expanduser(), name=dataset)
    elif url.endswith(".npz"):
        raw = read_npz(download(url, Path(path).expanduser()), name=dataset, source="download")
    else:  # a folder of the four IDX .gz files
        folder = download_idx(url, Path(path).expanduser(), dataset)
        raw = dataclasses.replace(read_idx_dir(folder, name=dataset), source="download")
    check_format(raw)
    if dataset in NAMED:
        check_named(raw, NAMED[dataset])
    return raw


def split(raw: RawDataset, validation_size: int) -> Splits:
    """The first ``validation_size`` training images validate, the rest train (as the tutorial)."""
    n_train = len(raw.train_images)
    if not 0 <= validation_size < n_train:
        raise DataError(
            f"data.validation_size={validation_size}: expected 0 <= value < {n_train} "
            "(the number of training images)"
        )

    x = raw.train_images.reshape(n_train, -1)
    return Splits(
        raw=raw,
        x_train=x[validation_size:],
        y_train=raw.train_labels[validation_size:],
        x_val=x[:validation_size],
        y_val=raw.train_labels[:validation_size],
        x_test=raw.test_images.reshape(len(raw.test_images), -1),
        y_test=raw.test_labels,
    )


def features(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 features in [0, 1]: value / 255, what the engine computes."""
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)  # in place: one buffer, not two
    return x


def read_embeddings(path: Path) -> RawDataset:
    """Float embeddings made elsewhere: an ``.npz`` with x_train (n, d), y_train, x_test (m, d)
    and y_test, the names of a Keras-format image archive. Checked like the image sources."""
    missing_file = f"features.path={path}: no such file (expected an .npz of embeddings)"
    arrays = npz_arrays(path, missing_file)
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{path}: {key} has shape {x.shape} ({x.dtype}), expected (rows, d)")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{path}: {key} holds non-finite values (NaN or inf)")
        arrays[key] = aligned(np.ascontiguousarray(x, dtype=np.float32))
    if arrays["x_train"].shape[1] != arrays["x_test"].shape[1]:
        raise DataError(
            f"{path}: x_train rows have {arrays['x_train'].shape[1]} columns but x_test rows "
            f"{arrays['x_test'].shape[1]}, expected the same width"
        )
    for key in ("y_train", "y_test"):
        arrays[key] = _as_labels(path, key, arrays[key])
    raw = RawDataset(
        name=path.stem,
        source="precomputed",
        location=str(path),
        train_images=arrays["x_train"],
        train_labels=arrays["y_train"],
        test_images=arrays["x_test"],
        test_labels=arrays["y_test"],
    )
    check_format(raw)
    return raw


def as_floats(rows: np.ndarray) -> np.ndarray:
    """Rows as the engine reads them, as float32: pixels / 255, embeddings as they are."""
    return features(rows) if rows.dtype == np.uint8 else np.asarray(rows, dtype=np.float32)


def every_row(splits: Splits) -> Splits:
    """The splits as ``protocol=transductive`` fits and scores them: every image of every
    split (train, validation, test, in that order) as the one fitted split, nothing held out."""
    x = aligned(np.concatenate([splits.x_train, splits.x_val, splits.x_test]))
    y = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    return dataclasses.replace(
        splits, x_train=x, y_train=y, x_val=x[:0], y_val=y[:0], x_test=x[:0], y_test=y[:0]
    )


@functools.lru_cache(maxsize=2)
def load_embedding_splits(path: str, validation_size: int) -> Splits:
    """``read_embeddings`` then ``split``, cached per process like ``load_splits``."""
    return split(read_embeddings(Path(path).expanduser()), validation_size)


@functools.lru_cache(maxsize=2)
def load_splits(
    source: DataSource, path: str | None, dataset: str, url: str | None, validation_size: int
) -> Splits:
    """``load_raw`` then ``split``, cached per process: a sequential sweep reads the data once."""
    return split(load_raw(source, path, dataset, url), validation_size)
