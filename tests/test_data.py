"""Data sources and their checks: every bad file gets one line naming it and what was expected."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from kmeans_exp import data
from kmeans_exp.errors import ConfigError, DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx_dir(raw, directory, gzip_names=("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")):
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in data.idx_members(raw).items():
        payload = data.idx_bytes(array)
        if stem in gzip_names:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(payload, compresslevel=1))
        else:
            (directory / stem).write_bytes(payload)
    return directory


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_bundled_is_the_official_mnist(mnist_raw):
    assert mnist_raw.train_images.shape == (60000, 28, 28)
    assert mnist_raw.test_images.shape == (10000, 28, 28)
    assert mnist_raw.train_images.dtype == np.uint8
    assert np.bincount(mnist_raw.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist_raw.test_labels).tolist() == TEST_COUNTS
    data.check_named(mnist_raw, data.NAMED["mnist"])  # byte-for-byte the official IDX files


def test_split_follows_the_tutorial(mnist, mnist_raw):
    assert mnist.x_train.shape == (55000, 784) and mnist.x_val.shape == (5000, 784)
    assert mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.uint8 and mnist.x_train.max() == 255
    # Views of the loaded images, not copies: the data set is held once.
    assert np.shares_memory(mnist.x_train, mnist_raw.train_images)
    assert np.shares_memory(mnist.x_test, mnist_raw.test_images)
    np.testing.assert_array_equal(mnist.y_val, mnist_raw.train_labels[:5000])
    np.testing.assert_array_equal(mnist.x_train[0], mnist_raw.train_images[5000].ravel())
    features = data.features(mnist.x_train[:3])
    assert features.dtype == np.float32 and features.max() == 1.0
    np.testing.assert_array_equal(features * 255, mnist_raw.train_images[5000:5003].reshape(3, -1))
    with pytest.raises(DataError, match="data.validation_size=60000"):
        data.split(mnist_raw, 60000)


def test_idx_directory_gz_and_raw_loads_and_verifies(mnist_raw, tmp_path):
    directory = write_idx_dir(mnist_raw, tmp_path / "idx")
    raw = data.load_raw("idx", str(directory), "mnist")
    np.testing.assert_array_equal(raw.test_images, mnist_raw.test_images)
    np.testing.assert_array_equal(raw.train_labels, mnist_raw.train_labels)
    np.testing.assert_array_equal(raw.train_images, mnist_raw.train_images)
    np.testing.assert_array_equal(raw.test_labels, mnist_raw.test_labels)


def test_any_mnist_like_idx_set_loads_under_its_own_name(mnist_raw, tmp_path):
    other = data.RawDataset(
        "letters",
        "idx",
        "",
        255 - mnist_raw.train_images[:1000],
        mnist_raw.train_labels[:1000],
        mnist_raw.test_images[:200],
        mnist_raw.test_labels[:200],
    )
    directory = write_idx_dir(other, tmp_path / "letters")
    with pytest.raises(DataError, match="expected the official mnist's 5923, 6742") as excinfo:
        data.load_raw("idx", str(directory), "mnist")
    assert "data.dataset" in one_line(excinfo)
    raw = data.load_raw("idx", str(directory), "letters")
    assert raw.train_images.shape == (1000, 28, 28) and raw.num_classes == 10


@pytest.fixture(scope="module")
def idx_dir(mnist_raw, tmp_path_factory):
    return write_idx_dir(mnist_raw, tmp_path_factory.mktemp("good"), gzip_names=())


HUGE = (4 * 10**9).to_bytes(4, "big")  # an image count no file here can hold


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda d: (d / "t10k-labels-idx1-ubyte").unlink(), "missing IDX file t10k-labels"),
        (
            lambda d: _rewrite(d / "t10k-labels-idx1-ubyte", lambda b: b"\x00\x00\x09\x01" + b[4:]),
            "wrong IDX magic number 0x00000901",
        ),
        (lambda d: _rewrite(d / "t10k-images-idx3-ubyte", lambda b: b[:-100]), "truncated"),
        (
            lambda d: _rewrite(
                d / "t10k-labels-idx1-ubyte", lambda b: b[:4] + (9999).to_bytes(4, "big") + b[8:-1]
            ),
            "10000 test images but 9999 test labels",
        ),
        (
            lambda d: _rewrite(
                d / "t10k-images-idx3-ubyte",
                lambda b: b"\x00\x00\x08\x01" + (10000 * 784).to_bytes(4, "big") + b[16:],
            ),
            "expected 3 dimensions for images",
        ),
        (
            # the first two test labels (7, 2) swapped: the same counts, other bytes
            lambda d: _rewrite(
                d / "t10k-labels-idx1-ubyte", lambda b: b[:8] + b[9:10] + b[8:9] + b[10:]
            ),
            "t10k-labels-idx1-ubyte content has sha256",
        ),
        (
            lambda d: _rewrite(d / "train-images-idx3-ubyte", lambda b: b"\x1f\x8b" + b[2:100]),
            "cannot read the IDX file",
        ),
        (  # a header claiming 3 TB: refused by size, before any allocation
            lambda d: _rewrite(d / "t10k-images-idx3-ubyte", lambda b: b[:4] + HUGE + b[8:]),
            "expected 3136000000016 for shape \\(4000000000, 28, 28\\) \\(truncated\\)",
        ),
    ],
    ids=[
        "missing",
        "magic",
        "truncated",
        "count-mismatch",
        "dimensions",
        "hash",
        "bad-gzip",
        "huge-header",
    ],
)
def test_bad_idx_files_get_one_line_naming_the_file(idx_dir, tmp_path, corrupt, expected):
    directory = tmp_path / "copy"
    shutil.copytree(idx_dir, directory)
    corrupt(directory)
    with pytest.raises(DataError, match=expected) as excinfo:
        data.load_raw("idx", str(directory), "mnist")
    assert str(directory) in one_line(excinfo)


def _rewrite(path, change):
    path.write_bytes(change(path.read_bytes()))


def test_empty_directory_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="missing IDX file train-images-idx3-ubyte"):
        data.load_raw("idx", str(tmp_path), "mnist")
    with pytest.raises(DataError, match="not a directory"):
        data.load_raw("idx", str(tmp_path / "nope"), "mnist")
    with pytest.raises(ConfigError, match="data.path: required with data.source=npz"):
        data.load_raw("npz", None, "mnist")
    with pytest.raises(ConfigError, match="data.source=s3: expected one of bundled, idx"):
        data.load_raw("s3", None, "mnist")


def _npz(path, **overrides):
    arrays = {
        "x_train": np.zeros((20, 28, 28), np.uint8),
        "y_train": np.arange(20) % 10,
        "x_test": np.zeros((5, 28, 28), np.uint8),
        "y_test": np.arange(5),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"x_train": np.full((20, 28, 28), np.nan)}, "x_train holds non-finite"),
        ({"x_test": np.full((5, 28, 28), np.inf, np.float32)}, "x_test holds non-finite"),
        ({"y_test": np.array([0.5, 1, 2, 3, 4])}, "y_test must hold integer"),
        ({"y_train": np.arange(20) - 1}, "train labels range -1..18"),
        ({"y_test": None}, "missing arrays \\['y_test'\\]"),
        ({"x_train": np.zeros((20, 784), np.uint8)}, "x_train has shape \\(20, 784\\)"),
        ({"x_test": np.zeros((5, 14, 14), np.uint8)}, "expected the same size"),
        ({"y_train": np.arange(19)}, "20 train images but 19 train labels"),
    ],
    ids=["nan", "inf", "float-labels", "negative-label", "missing-key", "flat", "sizes", "count"],
)
def test_bad_npz_files(tmp_path, overrides, expected):
    path = _npz(tmp_path / "user.npz", **overrides)
    with pytest.raises(DataError, match=expected) as excinfo:
        data.load_raw("npz", str(path), "mine")
    assert str(path) in one_line(excinfo)


def test_good_user_npz_loads_without_mnist_hash(tmp_path):
    raw = data.load_raw("npz", str(_npz(tmp_path / "ok.npz")), "mine")
    assert raw.train_images.shape == (20, 28, 28) and raw.num_classes == 10


def test_truncated_or_corrupted_bundled_archive(tmp_path):
    copy = tmp_path / "mnist.npz"
    payload = data.bundled_path().read_bytes()
    copy.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DataError, match="not a readable .npz archive") as excinfo:
        data.read_npz(copy, "mnist")
    assert str(copy) in one_line(excinfo)


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    served = _npz(tmp_path / "served.npz")
    target = tmp_path / "cache" / "mnist.npz"
    with pytest.raises(DataError, match="downloaded file has sha256"):
        data.download(served.as_uri(), target)
    assert not target.exists() and not list(target.parent.glob("*.part"))
    monkeypatch.setattr(data, "KERAS_MNIST_NPZ_SHA256", data.sha256_file(served))
    assert data.download(served.as_uri(), target) == target
    assert target.read_bytes() == served.read_bytes()
    with pytest.raises(DataError, match="download failed"):
        data.download((tmp_path / "absent.npz").as_uri(), tmp_path / "other.npz")
    with pytest.raises(DataError, match=r"^data.path=.*served.npz: cannot hold the downloaded"):
        data.download(served.as_uri(), served / "mnist.npz")


def test_download_of_idx_files_checks_each_and_keeps_only_checked_ones(tmp_path, mnist_raw):
    every = tuple(data.MNIST_IDX_SHA256)
    served = write_idx_dir(mnist_raw, tmp_path / "served", gzip_names=every)
    good_labels = (served / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(data.idx_bytes(mnist_raw.test_labels[::-1].copy()))
    )
    target = tmp_path / "mnist-idx"
    url = served.as_uri()
    with pytest.raises(DataError) as excinfo:
        data.load_raw("download", str(target), "mnist", url)
    message = one_line(excinfo)
    assert message.startswith(f"{url}/t10k-labels-idx1-ubyte.gz: content has sha256")
    assert "expected the official mnist" in message
    # The three checked files stay; the refused one and every partial file are gone.
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{s}.gz" for s in every[:3])
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(good_labels)
    raw = data.load_raw("download", str(target), "mnist", url)
    assert raw.source == "download" and raw.test_labels.tolist() == mnist_raw.test_labels.tolist()
    shutil.rmtree(served)  # a second load finds checked files and fetches nothing
    again = data.load_raw("download", str(target), "mnist", url)
    assert again.train_images.shape == (60000, 28, 28)


def test_download_of_idx_files_refuses_an_unnamed_set_or_a_non_gzip_file(tmp_path):
    with pytest.raises(DataError, match=r"^data.dataset=mine: data.source=download of IDX"):
        data.download_idx(tmp_path.as_uri(), tmp_path / "mine", "mine")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError) as excinfo:
        data.download_idx(tmp_path.as_uri(), tmp_path / "got", "mnist")
    assert "train-images-idx3-ubyte.gz: not a readable gzip file" in one_line(excinfo)
    assert list((tmp_path / "got").iterdir()) == []
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DataError, match=r"^data.path=.*a_file: cannot hold the downloaded files"):
        data.download_idx(tmp_path.as_uri(), tmp_path / "a_file", "mnist")
