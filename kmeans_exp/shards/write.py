"""Writing shard folders: from MNIST or Fashion-MNIST, an ``.npz`` or ``.npy``, or a seeded
synthetic mixture of any size. A folder is written under a temporary name and renamed when
complete, so a failed or interrupted write leaves no half-written data set behind.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kmeans_exp.errors import DataError
from kmeans_exp.shards import LABELS_SUFFIX

DEFAULT_SHARD_ROWS = 1_000_000
BLOCK_ROWS = 65_536  # rows generated at a time by ``mixture``


@contextmanager
def new_folder(folder: Path) -> Iterator[Path]:
    """A temporary sibling of ``folder`` to write into, renamed to ``folder`` on success."""
    folder = folder.expanduser()
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"{folder}: already exists and is not empty (choose a new folder)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if folder.exists():
        folder.rmdir()
    partial.rename(folder)


def write_arrays(
    folder: Path, rows: np.ndarray, labels: np.ndarray | None, shard_rows: int
) -> Path:
    """``rows`` (n, d) and optional ``labels`` (n,) as shards of ``shard_rows`` rows."""
    n = len(rows)
    return write_blocks(
        folder,
        n,
        shard_rows,
        lambda start, stop: (rows[start:stop], None if labels is None else labels[start:stop]),
    )


def write_blocks(
    folder: Path,
    n: int,
    shard_rows: int,
    block: Callable[[int, int], tuple[np.ndarray, np.ndarray | None]],
) -> Path:
    """Shards of ``n`` rows in all, each filled block by block from ``block(start, stop)``."""
    with new_folder(folder) as partial:
        for number, first in enumerate(range(0, n, shard_rows)):
            last = min(n, first + shard_rows)
            rows_file = partial / f"part-{number:05d}.npy"
            rows_out = labels_out = None
            for start in range(first, last, BLOCK_ROWS):
                stop = min(last, start + BLOCK_ROWS)
                rows, labels = block(start, stop)
                if rows_out is None:
                    rows_out = np.lib.format.open_memmap(
                        rows_file, "w+", rows.dtype, (last - first, rows.shape[1])
                    )
                rows_out[start - first : stop - first] = rows
                if labels is not None:
                    if labels_out is None:
                        labels_out = np.lib.format.open_memmap(
                            rows_file.with_name(rows_file.name[:-4] + LABELS_SUFFIX),
                            "w+",
                            labels.dtype,
                            (last - first,),
                        )
                    labels_out[start - first : stop - first] = labels
            for out in (rows_out, labels_out):
                if out is not None:
                    out.flush()
            del rows_out, labels_out
    return folder


def mixture(
    folder: Path,
    rows: int,
    dim: int,
    clusters: int,
    seed: int,
    dtype: str = "float32",
    shard_rows: int = DEFAULT_SHARD_ROWS,
    spread: float = 10.0,
    first_row: int = 0,
) -> Path:
    """``rows`` rows of a Gaussian mixture with ``clusters`` components, labels = component.

    Centres are drawn from the seed alone; every block of ``BLOCK_ROWS`` rows from (seed, its
    first row + ``first_row``), so the rows do not depend on the shard size, and a test split
    written with ``first_row`` = the training rows shares the centres but not the rows.
    float32: N(centre, 1) with centres N(0, spread²). uint8: centres
    uniform in [32, 223] and noise uniform in [-16, 16] (an image-like byte range).
    """
    if rows < 1 or dim < 1 or clusters < 1:
        raise DataError(f"--rows {rows} --dim {dim} --clusters {clusters}: expected each >= 1")
    centre_rng = np.random.default_rng([seed, 0])
    if dtype == "uint8":
        centres = centre_rng.integers(32, 224, size=(clusters, dim), dtype=np.int16)
    elif dtype == "float32":
        centres = centre_rng.normal(0.0, spread, size=(clusters, dim)).astype(np.float32)
    else:
        raise DataError(f"--dtype {dtype}: expected float32 or uint8")
    label_dtype = np.uint16 if clusters <= 2**16 else np.int32

    @functools.lru_cache(maxsize=2)
    def aligned(first: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``first:first + BLOCK_ROWS`` (``first`` a multiple of it), drawn from the seed
        and ``first``: the same rows whatever the shard size."""
        rng = np.random.default_rng([seed, 1, first_row + first])
        size = min(BLOCK_ROWS, rows - first)
        labels = rng.integers(0, clusters, size=size)
        if dtype == "uint8":
            noise = rng.integers(-16, 17, size=(size, dim), dtype=np.int16)
            values = (centres[labels] + noise).astype(np.uint8)
        else:
            values = rng.standard_normal((size, dim), dtype=np.float32)
            values += centres[labels]
        return values, labels.astype(label_dtype)

    def block(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        pieces = []
        for first in range(start - start % BLOCK_ROWS, stop, BLOCK_ROWS):
            values, labels = aligned(first)
            cut = slice(max(start, first) - first, min(stop, first + BLOCK_ROWS) - first)
            pieces.append((values[cut], labels[cut]))
        if len(pieces) == 1:
            return pieces[0]
        return tuple(np.concatenate(p) for p in zip(*pieces, strict=True))

    return write_blocks(folder, rows, shard_rows, block)
