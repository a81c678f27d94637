"""Write a data set as shard folders (``OUT/train``, and ``OUT/test`` when it has a test split).

    python -m kmeans_exp.shards mnist OUT
    python -m kmeans_exp.shards fashion_mnist OUT
    python -m kmeans_exp.shards npz FILE.npz OUT        (x_train, y_train, x_test, y_test)
    python -m kmeans_exp.shards npy FILE.npy OUT [--labels LABELS.npy]
    python -m kmeans_exp.shards mixture OUT --rows 50_000_000 --dim 96 --clusters 1000

then ``python -m kmeans_exp data=shards data.path=OUT/train data.test_path=OUT/test``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kmeans_exp.errors import KMeansExpError
from kmeans_exp.shards import write


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        written = _write(args)
    except KMeansExpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for folder in written:
        print(folder)
    return 0


def _write(args: argparse.Namespace) -> list[Path]:
    out, per = Path(args.out), args.shard_rows
    if args.source in ("mnist", "fashion_mnist"):
        from kmeans_exp import config, data

        d = config.compose([f"data={args.source}"]).data
        raw = data.load_raw(d.source, d.path, d.dataset, d.url)
        return _train_and_test(
            out,
            per,
            raw.train_images.reshape(len(raw.train_images), -1),
            raw.train_labels,
            raw.test_images.reshape(len(raw.test_images), -1),
            raw.test_labels,
        )
    if args.source == "npz":
        from kmeans_exp import data

        arrays = data.npz_arrays(Path(args.file), f"{args.file}: no such file")
        flat = [a.reshape(len(a), -1) if a.ndim > 2 else a for a in arrays.values()]
        return _train_and_test(out, per, *(_rows(f, args.file) for f in flat))
    if args.source == "npy":
        rows = _rows(np.load(args.file, mmap_mode="r"), args.file)
        labels = None if args.labels is None else np.load(args.labels, mmap_mode="r")
        return [write.write_arrays(out / "train", rows, labels, per)]
    common = dict(dim=args.dim, clusters=args.clusters, seed=args.seed, dtype=args.dtype)
    folders = [write.mixture(out / "train", args.rows, shard_rows=per, **common)]
    if args.test_rows:
        test = write.mixture(out / "test", args.test_rows, first_row=args.rows, **common)
        folders.append(test)
    return folders


def _train_and_test(out: Path, per: int, x_train, y_train, x_test, y_test) -> list[Path]:
    return [
        write.write_arrays(out / "train", x_train, y_train, per),
        write.write_arrays(out / "test", x_test, y_test, per),
    ]


def _rows(array: np.ndarray, name: str) -> np.ndarray:
    """Labels pass through; rows stay uint8 or become float32."""
    if array.ndim == 1 or array.dtype in (np.uint8, np.float32):
        return array
    return array.astype(np.float32)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kmeans_exp.shards",
        description="Write a data set as folders of .npy shards (OUT/train, OUT/test).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--shard-rows", type=int, default=write.DEFAULT_SHARD_ROWS, help="rows per shard file"
    )
    sub = parser.add_subparsers(dest="source", required=True)

    def source(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    for name in ("mnist", "fashion_mnist"):
        source(name, f"{name} (uint8 pixels, 784 columns)").add_argument("out")
    npz = source("npz", "an .npz with x_train, y_train, x_test, y_test")
    npz.add_argument("file")
    npz.add_argument("out")
    npy = source("npy", "one .npy of rows (n, d), labels optional")
    npy.add_argument("file")
    npy.add_argument("out")
    npy.add_argument("--labels")
    mix = source("mixture", "a seeded Gaussian mixture with its true labels")
    mix.add_argument("out")
    mix.add_argument("--rows", type=int, required=True)
    mix.add_argument("--dim", type=int, required=True)
    mix.add_argument("--clusters", type=int, required=True)
    mix.add_argument("--test-rows", type=int, default=0)
    mix.add_argument("--dtype", choices=("float32", "uint8"), default="float32")
    mix.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    sys.exit(main())
